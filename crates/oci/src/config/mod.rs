//! Image configs (`application/vnd.oci.image.config.v1+json` and docker's
//! `application/vnd.docker.container.image.v1+json`).
//!
//! A config is kept as the JSON object it was read from, in its key order,
//! so that docker-only fields (`Healthcheck`, `OnBuild`, `Shell`,
//! `StopTimeout`, `ArgsEscaped`, …) and fields no spec knows survive a
//! read-modify-write, and an unmodified config serialises to the very bytes
//! it came from. Typed views are read from the object on demand.

mod builder;
mod golang;
mod time;
pub use golang::quote as go_quote;
pub use time::rfc3339;

pub use builder::{parse_source_date_epoch, ConfigBuilder, Healthcheck, SourceDateEpochError};

use crate::json::to_go_json;
use crate::{Digest, ImageOs, LayerFormat};
use serde_json::{Map, Value};

/// Why bytes are not an image config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The bytes are not JSON.
    #[error("image config is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is not an object.
    #[error("image config must be a JSON object, found {0}")]
    NotAnObject(&'static str),
    /// A field has the wrong type or an invalid value.
    #[error("image config field {field:?} is invalid: {reason}")]
    Field {
        /// The JSON path of the field, like `rootfs.diff_ids`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Top-level keys in the order docker and BuildKit write them (sorted:
/// both marshal the top level through a Go map).
const TOP_ORDER: &[&str] = &[
    "architecture",
    "author",
    "config",
    "container",
    "container_config",
    "created",
    "docker_version",
    "history",
    "os",
    "os.features",
    "os.version",
    "rootfs",
    "variant",
];

/// Keys of the `config` object in the order BuildKit writes them (the OCI
/// `ImageConfig` struct, then docker's extensions).
const CONFIG_ORDER: &[&str] = &[
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "ArgsEscaped",
    "Healthcheck",
    "OnBuild",
    "Shell",
    "StopTimeout",
];

/// An image config, as an ordered JSON object with typed accessors.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageConfig {
    doc: Map<String, Value>,
}

impl ImageConfig {
    /// An empty config for `os`/`architecture` (a `FROM scratch` image):
    /// no layers, no history.
    pub fn new(os: &str, architecture: &str) -> ImageConfig {
        let mut c = ImageConfig { doc: Map::new() };
        c.set_top("architecture", Value::from(architecture));
        c.set_top("os", Value::from(os));
        c.set_top("config", Value::Object(Map::new()));
        c.set_top(
            "rootfs",
            serde_json::json!({"type": "layers", "diff_ids": []}),
        );
        c
    }

    /// Reads a config blob. Everything in it is kept.
    pub fn from_json(bytes: &[u8]) -> Result<ImageConfig, ConfigError> {
        match serde_json::from_slice::<Value>(bytes)? {
            Value::Object(doc) => {
                let c = ImageConfig { doc };
                // Fail early on a malformed rootfs so later reads can trust it.
                c.diff_ids()?;
                Ok(c)
            }
            other => Err(ConfigError::NotAnObject(json_kind(&other))),
        }
    }

    /// The config blob: compact JSON with Go's escaping, keys in the order
    /// they were read (new keys where docker would put them).
    pub fn to_json(&self) -> Vec<u8> {
        to_go_json(&Value::Object(self.doc.clone()))
    }

    /// The digest of [`ImageConfig::to_json`], which is the image id.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.to_json())
    }

    /// The whole object, for fields without an accessor.
    pub fn as_json(&self) -> &Map<String, Value> {
        &self.doc
    }

    /// The config in `oci-spec`'s types (docker-only fields are dropped).
    pub fn to_oci(&self) -> Result<oci_spec::image::ImageConfiguration, ConfigError> {
        Ok(serde_json::from_value(Value::Object(self.doc.clone()))?)
    }

    /// `architecture`, like `amd64`.
    pub fn architecture(&self) -> Option<&str> {
        self.doc.get("architecture").and_then(Value::as_str)
    }

    /// `os`, like `linux`.
    pub fn os(&self) -> Option<&str> {
        self.doc.get("os").and_then(Value::as_str)
    }

    /// `os` as an [`ImageOs`]; an image without one is taken for Linux,
    /// as every tool does.
    pub fn image_os(&self) -> ImageOs {
        match self.os() {
            Some(os) => os.parse().unwrap_or(ImageOs::Linux),
            None => ImageOs::Linux,
        }
    }

    /// How the image's layers lay out their files.
    pub fn layer_format(&self) -> LayerFormat {
        LayerFormat::for_os(&self.image_os())
    }

    /// `variant`, like `v8` for arm64.
    pub fn variant(&self) -> Option<&str> {
        self.doc.get("variant").and_then(Value::as_str)
    }

    /// `os.version` (Windows images carry their build number here).
    pub fn os_version(&self) -> Option<&str> {
        self.doc.get("os.version").and_then(Value::as_str)
    }

    /// `created`, an RFC 3339 timestamp.
    pub fn created(&self) -> Option<&str> {
        self.doc.get("created").and_then(Value::as_str)
    }

    /// `config.Env`, `KEY=value` strings in order.
    pub fn env(&self) -> Vec<String> {
        self.string_list("Env").unwrap_or_default()
    }

    /// The value of environment variable `key`, if set.
    pub fn env_var(&self, key: &str) -> Option<String> {
        self.env().into_iter().find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            (k == key).then(|| v.to_string())
        })
    }

    /// `config.Cmd`; `None` when unset or null.
    pub fn cmd(&self) -> Option<Vec<String>> {
        self.string_list("Cmd")
    }

    /// `config.Entrypoint`; `None` when unset or null.
    pub fn entrypoint(&self) -> Option<Vec<String>> {
        self.string_list("Entrypoint")
    }

    /// `config.Shell` (docker-only), the shell for shell-form commands.
    pub fn shell(&self) -> Option<Vec<String>> {
        self.string_list("Shell")
    }

    /// `config.OnBuild` (docker-only), triggers for images built FROM this one.
    pub fn on_build(&self) -> Vec<String> {
        self.string_list("OnBuild").unwrap_or_default()
    }

    /// `config.WorkingDir`; empty when unset.
    pub fn working_dir(&self) -> &str {
        self.config_str("WorkingDir")
    }

    /// `config.User`; empty when unset.
    pub fn user(&self) -> &str {
        self.config_str("User")
    }

    /// `config.StopSignal`; empty when unset.
    pub fn stop_signal(&self) -> &str {
        self.config_str("StopSignal")
    }

    /// `config.Labels`, in stored order.
    pub fn labels(&self) -> Vec<(String, String)> {
        self.config_map("Labels")
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `config.ExposedPorts` keys, like `80/tcp`.
    pub fn exposed_ports(&self) -> Vec<String> {
        self.config_map("ExposedPorts")
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// `config.Volumes` keys.
    pub fn volumes(&self) -> Vec<String> {
        self.config_map("Volumes")
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// `config.Healthcheck` (docker-only) as stored.
    pub fn healthcheck(&self) -> Option<&Value> {
        self.config_obj()
            .and_then(|c| c.get("Healthcheck"))
            .filter(|v| !v.is_null())
    }

    /// `rootfs.diff_ids`: the uncompressed digest of each layer, bottom first.
    pub fn diff_ids(&self) -> Result<Vec<Digest>, ConfigError> {
        let Some(rootfs) = self.doc.get("rootfs") else {
            return Ok(Vec::new());
        };
        let bad = |reason: String| ConfigError::Field {
            field: "rootfs.diff_ids",
            reason,
        };
        match rootfs.get("diff_ids") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|id| {
                    id.as_str()
                        .ok_or_else(|| bad("expected strings".into()))?
                        .parse()
                        .map_err(|e| bad(format!("{e}")))
                })
                .collect(),
            Some(other) => Err(bad(format!(
                "expected an array, found {}",
                json_kind(other)
            ))),
        }
    }

    /// `history`, oldest first.
    pub fn history(&self) -> Result<Vec<oci_spec::image::History>, ConfigError> {
        match self.doc.get("history") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(h) => serde_json::from_value(h.clone()).map_err(|e| ConfigError::Field {
                field: "history",
                reason: e.to_string(),
            }),
        }
    }

    fn config_obj(&self) -> Option<&Map<String, Value>> {
        self.doc.get("config").and_then(Value::as_object)
    }

    fn config_str(&self, key: &str) -> &str {
        self.config_obj()
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn config_map(&self, key: &str) -> Option<&Map<String, Value>> {
        self.config_obj()
            .and_then(|c| c.get(key))
            .and_then(Value::as_object)
    }

    fn string_list(&self, key: &str) -> Option<Vec<String>> {
        let list = self.config_obj()?.get(key)?.as_array()?;
        Some(
            list.iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect(),
        )
    }

    /// Sets a top-level key, keeping its place if present.
    pub(crate) fn set_top(&mut self, key: &str, value: Value) {
        insert_ordered(&mut self.doc, TOP_ORDER, key, value);
    }

    /// Sets a key of the `config` object, keeping its place if present.
    pub(crate) fn set_config(&mut self, key: &str, value: Value) {
        set_config_field(self.config_mut(), key, value);
    }

    /// Removes a key of the `config` object (Go omits empty fields).
    pub(crate) fn remove_config(&mut self, key: &str) {
        self.config_mut().shift_remove(key);
    }

    /// The `config` object, created (or replaced, if it was null) on demand.
    pub(crate) fn config_mut(&mut self) -> &mut Map<String, Value> {
        if !self.doc.get("config").is_some_and(Value::is_object) {
            self.set_top("config", Value::Object(Map::new()));
        }
        match self.doc.get_mut("config") {
            Some(Value::Object(m)) => m,
            _ => unreachable!("config was just made an object"),
        }
    }

    /// The array `key` of the `config` object, created (or replaced, if it
    /// is not an array) on demand.
    pub(crate) fn config_array_mut(&mut self, key: &str) -> &mut Vec<Value> {
        if !self
            .config_obj()
            .and_then(|c| c.get(key))
            .is_some_and(Value::is_array)
        {
            self.set_config(key, Value::Array(Vec::new()));
        }
        match self.config_mut().get_mut(key) {
            Some(Value::Array(a)) => a,
            _ => unreachable!("{key} was just made an array"),
        }
    }

    /// The top-level array `key`, created on demand.
    pub(crate) fn top_array_mut(&mut self, key: &str) -> &mut Vec<Value> {
        if !self.doc.get(key).is_some_and(Value::is_array) {
            self.set_top(key, Value::Array(Vec::new()));
        }
        match self.doc.get_mut(key) {
            Some(Value::Array(a)) => a,
            _ => unreachable!("{key} was just made an array"),
        }
    }

    /// `rootfs.diff_ids`, created on demand.
    pub(crate) fn diff_ids_mut(&mut self) -> &mut Vec<Value> {
        if !self.doc.get("rootfs").is_some_and(Value::is_object) {
            self.set_top("rootfs", serde_json::json!({"type": "layers"}));
        }
        let Some(Value::Object(rootfs)) = self.doc.get_mut("rootfs") else {
            unreachable!("rootfs was just made an object")
        };
        if !rootfs.get("diff_ids").is_some_and(Value::is_array) {
            rootfs.insert("diff_ids".into(), Value::Array(Vec::new()));
        }
        match rootfs.get_mut("diff_ids") {
            Some(Value::Array(a)) => a,
            _ => unreachable!("diff_ids was just made an array"),
        }
    }
}

/// Inserts `key` keeping an existing key's position; a new key goes before
/// the first present key that `order` puts after it, else at the end.
/// Sets `key` of an image config's `config` object: in place when it is
/// there, otherwise where BuildKit writes it, so edited configs serialise
/// as BuildKit's do.
pub fn set_config_field(config: &mut Map<String, Value>, key: &str, value: Value) {
    insert_ordered(config, CONFIG_ORDER, key, value);
}

fn insert_ordered(map: &mut Map<String, Value>, order: &[&str], key: &str, value: Value) {
    if let Some(slot) = map.get_mut(key) {
        *slot = value;
        return;
    }
    let rank = |k: &str| order.iter().position(|o| *o == k);
    let index = rank(key).and_then(|mine| {
        map.keys()
            .position(|k| rank(k).is_some_and(|theirs| theirs > mine))
    });
    match index {
        Some(i) => {
            map.shift_insert(i, key.to_string(), value);
        }
        None => {
            map.insert(key.to_string(), value);
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
