//! Applying Dockerfile instructions to an image config, as BuildKit does.
//!
//! History entries carry BuildKit's `created_by` text and its
//! `buildkit.dockerfile.v0` comment, so `docker history` reads the same for
//! a kiln image as for a BuildKit one. Their `created` times follow
//! BuildKit's exporter (`normalizeLayersAndHistory`): a layer's entry is
//! when its layer was made ([`ConfigBuilder::layer_time`]; a cached
//! layer keeps its first build's), an entry without a layer takes the
//! time of the nearest new layer before it (the first new layer's when
//! none is before it, the base's last entry's when the build made no
//! layer), and `SOURCE_DATE_EPOCH` replaces them all.
//!
//! ENTRYPOINT and CMD follow BuildKit's rule (dockerfile2llb
//! `dispatchEntrypoint`): ENTRYPOINT clears `Cmd` unless a CMD instruction
//! already ran in the *current stage*. A `Cmd` inherited from the base image
//! or the parent stage is therefore dropped by ENTRYPOINT; `CMD x` then
//! `ENTRYPOINT y` in one stage keeps `x`; `ENTRYPOINT y` then `CMD x` sets
//! both. Each [`ConfigBuilder`] is one stage, so the rule needs no flag from
//! the caller.

use super::golang;
use super::time::rfc3339;
use super::ImageConfig;
use crate::windows::{self, path::fold_case};
use crate::{Digest, ImageOs};
use serde_json::{json, Map, Value};

/// The `comment` BuildKit puts on every history entry it writes.
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// Why `SOURCE_DATE_EPOCH` cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("SOURCE_DATE_EPOCH={value:?} is not a whole number of seconds since 1970-01-01; set it to e.g. $(git log -1 --format=%ct)")]
pub struct SourceDateEpochError {
    value: String,
}

/// A HEALTHCHECK, in docker's units (durations in nanoseconds; zero means
/// "docker's default" and is omitted from the config).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args…]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// Time between checks.
    pub interval_ns: i64,
    /// Time a check may take.
    pub timeout_ns: i64,
    /// Grace period after start.
    pub start_period_ns: i64,
    /// Time between checks during the start period.
    pub start_interval_ns: i64,
    /// Consecutive failures before unhealthy.
    pub retries: i64,
}

/// Builds one stage's image config from its base.
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    config: ImageConfig,
    cmd_set: bool,
    epoch: Option<i64>,
    /// When the layers now being added were made (seconds).
    layer_time: Option<i64>,
}

impl ConfigBuilder {
    /// Starts a stage FROM `base` (use [`ImageConfig::new`] for scratch).
    /// The base's history, layers and settings are inherited.
    pub fn new(base: ImageConfig) -> ConfigBuilder {
        ConfigBuilder {
            config: base,
            cmd_set: false,
            epoch: None,
            layer_time: None,
        }
    }

    /// Uses `epoch` (seconds) for `created` and every new history entry, to
    /// make builds reproducible.
    pub fn with_source_date_epoch(mut self, epoch: Option<i64>) -> ConfigBuilder {
        self.epoch = epoch;
        self
    }

    /// Says when the layers added from now on were made (seconds since
    /// the Unix epoch): the time of the step that made them, or for a
    /// step taken from the cache, of the build that first made its layer.
    pub fn layer_time(&mut self, secs: i64) {
        self.layer_time = Some(secs);
    }

    /// The config as built so far.
    pub fn config(&self) -> &ImageConfig {
        &self.config
    }

    /// `ENV k=v …`: replaces existing keys in place and appends new ones.
    /// A Windows image's names are case-insensitive, as Windows reads
    /// them: `ENV Path=x` replaces `PATH=y` (taking the new spelling)
    /// rather than leaving both for the container to choose between.
    pub fn env(&mut self, vars: &[(&str, &str)]) {
        let mut msg = String::from("ENV");
        let windows = self.config.image_os() == ImageOs::Windows;
        // Whether the entry `e` sets `name`; a prefix test first, since
        // every ENV scans the whole list.
        let sets = |e: &str, name: &str| {
            if windows {
                fold_case(e.split_once('=').map_or(e, |(n, _)| n)) == fold_case(name)
            } else {
                e.strip_prefix(name)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
            }
        };
        // In place: copying the whole list at every ENV made ENV-heavy
        // Dockerfiles quadratic in copies.
        let env = self.config.config_array_mut("Env");
        for (k, v) in vars {
            let entry = format!("{k}={v}");
            msg.push(' ');
            msg.push_str(&entry);
            let slot = env
                .iter_mut()
                .find(|e| sets(e.as_str().unwrap_or_default(), k));
            match slot {
                Some(slot) => *slot = Value::String(entry),
                None => env.push(Value::String(entry)),
            }
        }
        self.history(msg, false);
    }

    /// `ARG k[=v] …`: only recorded in history; arguments are not kept in the
    /// config.
    pub fn arg(&mut self, args: &[(&str, Option<&str>)]) {
        let parts: Vec<String> = args
            .iter()
            .map(|(k, v)| v.map_or_else(|| k.to_string(), |v| format!("{k}={v}")))
            .collect();
        self.history(format!("ARG {}", parts.join(" ")), false);
    }

    /// `WORKDIR dir`: a relative `dir` is joined to the current one. Returns
    /// the absolute directory. BuildKit creates the directory as a layer
    /// step; pass that layer's `diff_id` when the engine made one.
    ///
    /// A Windows image's directory is resolved by [`windows::path::resolve`]
    /// and stored as docker on Windows stores it, `C:\app`, in the
    /// spelling given (HCS would start a process in `C:\Windows\System32`
    /// for an empty one). A path it refuses (another drive, UNC) is an
    /// error the caller reports before calling this; here it is kept as
    /// written.
    pub fn workdir(&mut self, dir: &str, layer: Option<Digest>) -> String {
        let wd = if self.config.image_os() == ImageOs::Windows {
            match windows::path::resolve(dir, self.config.working_dir()) {
                Ok(components) => windows::path::display(&components),
                Err(_) => dir.to_string(),
            }
        } else {
            let joined = if dir.starts_with('/') {
                dir.to_string()
            } else {
                format!("/{}/{dir}", self.config.working_dir())
            };
            crate::path::clean_absolute(&joined)
        };
        self.config.set_config("WorkingDir", json!(wd));
        match layer {
            Some(diff_id) => {
                self.config.diff_ids_mut().push(json!(diff_id));
                self.history(format!("WORKDIR {wd}"), true);
            }
            None => self.history(format!("WORKDIR {wd}"), false),
        }
        wd
    }

    /// `USER user[:group]`.
    pub fn user(&mut self, user: &str) {
        self.config.set_config("User", json!(user));
        self.history(format!("USER {user}"), false);
    }

    /// `EXPOSE port[/proto] …`: ports like `80`, `53/udp`, `8000-8002`.
    pub fn expose(&mut self, ports: &[&str]) -> Result<(), String> {
        let mut expanded = Vec::new();
        for p in ports {
            expanded.extend(parse_port(p)?);
        }
        let mut map = self.object("ExposedPorts");
        for p in &expanded {
            map.insert(p.clone(), json!({}));
        }
        self.set_sorted("ExposedPorts", map);
        self.history(format!("EXPOSE [{}]", expanded.join(" ")), false);
        Ok(())
    }

    /// `VOLUME path …`.
    pub fn volume(&mut self, paths: &[&str]) -> Result<(), String> {
        if paths.iter().any(|p| p.is_empty()) {
            return Err("VOLUME specified can not be an empty string".into());
        }
        let mut map = self.object("Volumes");
        for p in paths {
            map.insert(p.to_string(), json!({}));
        }
        self.set_sorted("Volumes", map);
        self.history(format!("VOLUME [{}]", paths.join(" ")), false);
        Ok(())
    }

    /// `LABEL k=v …`.
    pub fn label(&mut self, labels: &[(&str, &str)]) {
        let mut map = self.object("Labels");
        let mut msg = String::from("LABEL");
        for (k, v) in labels {
            map.insert(k.to_string(), json!(v));
            msg.push_str(&format!(" {k}={v}"));
        }
        self.set_sorted("Labels", map);
        self.history(msg, false);
    }

    /// `MAINTAINER name` (sets `author`).
    pub fn maintainer(&mut self, name: &str) {
        self.config.set_top("author", json!(name));
        self.history(format!("MAINTAINER {name}"), false);
    }

    /// `CMD`: `shell_form` wraps `args` in the configured SHELL
    /// (default `/bin/sh -c`).
    pub fn cmd(&mut self, args: &[String], shell_form: bool) {
        let args = self.with_shell(args, shell_form);
        self.config.set_config("Cmd", json!(args));
        self.config.set_config("ArgsEscaped", json!(true));
        self.cmd_set = true;
        self.history(format!("CMD {}", golang::quote_list(&args)), false);
    }

    /// `ENTRYPOINT`: clears `Cmd` unless CMD ran earlier in this stage (see
    /// the module docs).
    pub fn entrypoint(&mut self, args: &[String], shell_form: bool) {
        let args = self.with_shell(args, shell_form);
        self.config.set_config("Entrypoint", json!(args));
        if !self.cmd_set {
            self.config.remove_config("Cmd");
        }
        self.history(format!("ENTRYPOINT {}", golang::quote_list(&args)), false);
    }

    /// `SHELL ["exe", "arg"…]`.
    pub fn shell(&mut self, shell: &[String]) {
        self.config.set_config("Shell", json!(shell));
        self.history(format!("SHELL [{}]", shell.join(" ")), false);
    }

    /// `STOPSIGNAL sig`.
    pub fn stop_signal(&mut self, signal: &str) {
        self.config.set_config("StopSignal", json!(signal));
        self.history(format!("STOPSIGNAL {signal}"), false);
    }

    /// `HEALTHCHECK`.
    pub fn healthcheck(&mut self, hc: &Healthcheck) {
        let mut obj = Map::new();
        obj.insert("Test".into(), json!(hc.test));
        for (key, v) in [
            ("Interval", hc.interval_ns),
            ("Timeout", hc.timeout_ns),
            ("StartPeriod", hc.start_period_ns),
            ("StartInterval", hc.start_interval_ns),
            ("Retries", hc.retries),
        ] {
            if v != 0 {
                obj.insert(key.into(), json!(v));
            }
        }
        self.config.set_config("Healthcheck", Value::Object(obj));
        // BuildKit formats the struct with %+v (since Dockerfile 1.24; it
        // was %q before): field names, strings bare, durations through
        // their String method, the retry count as a number.
        let msg = format!(
            "HEALTHCHECK {{Test:[{}] Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
            hc.test.join(" "),
            golang::duration(hc.interval_ns),
            golang::duration(hc.timeout_ns),
            golang::duration(hc.start_period_ns),
            golang::duration(hc.start_interval_ns),
            hc.retries,
        );
        self.history(msg, false);
    }

    /// `ONBUILD instruction`. BuildKit writes no history entry for it.
    pub fn onbuild(&mut self, trigger: &str) {
        let mut triggers = self.config.on_build();
        triggers.push(trigger.to_string());
        self.config.set_config("OnBuild", json!(triggers));
    }

    /// The `created_by` text BuildKit writes for a RUN (without the
    /// ` # buildkit` suffix [`ConfigBuilder::add_layer`] adds): build
    /// arguments in use as `|N k=v …`, then the command, shell-wrapped for
    /// the shell form.
    pub fn run_created_by(
        &self,
        args: &[String],
        shell_form: bool,
        build_args: &[(&str, &str)],
    ) -> String {
        let mut parts = Vec::new();
        if !build_args.is_empty() {
            parts.push(format!("|{}", build_args.len()));
            parts.extend(build_args.iter().map(|(k, v)| format!("{k}={v}")));
        }
        parts.extend(self.with_shell(args, shell_form));
        format!("RUN {}", parts.join(" "))
    }

    /// Records a step that produced a layer (RUN, COPY, ADD): appends its
    /// `diff_id` and a history entry `"<created_by> # buildkit"`.
    pub fn add_layer(&mut self, diff_id: Digest, created_by: &str) {
        self.config.diff_ids_mut().push(json!(diff_id));
        self.history(format!("{created_by} # buildkit"), true);
    }

    /// Finishes the stage: history entries without a time take their
    /// neighbour's, and `created` is the source date epoch when set, else
    /// the last history entry's time, else `now` (seconds since the Unix
    /// epoch).
    pub fn build(mut self, now: i64) -> ImageConfig {
        if self.config.as_json().get("history").is_some() {
            fill_history_times(self.config.top_array_mut("history"));
        }
        // BuildKit's exporter takes `created` from the last history entry
        // with a time (a stage of config-only steps keeps its base's),
        // else the source date epoch or now.
        let last = self
            .config
            .as_json()
            .get("history")
            .and_then(Value::as_array)
            .and_then(|h| h.iter().rev().find_map(|e| e.get("created").cloned()))
            .filter(Value::is_string);
        let created = match (self.epoch, last) {
            (Some(epoch), _) => json!(rfc3339(epoch)),
            (None, Some(last)) => last,
            (None, None) => json!(rfc3339(now)),
        };
        self.config.set_top("created", created);
        self.config
    }

    /// The command a RUN, CMD or ENTRYPOINT `args` stand for: as given in
    /// exec form; in shell form joined and put after the SHELL (default
    /// `/bin/sh -c`, `cmd /S /C` for Windows images).
    pub fn with_shell(&self, args: &[String], shell_form: bool) -> Vec<String> {
        if !shell_form {
            return args.to_vec();
        }
        let mut shell = self
            .config
            .shell()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                if self.config.os() == Some("windows") {
                    vec!["cmd".into(), "/S".into(), "/C".into()]
                } else {
                    vec!["/bin/sh".into(), "-c".into()]
                }
            });
        shell.push(args.join(" "));
        shell
    }

    fn history(&mut self, created_by: String, with_layer: bool) {
        let mut entry = Map::new();
        let at = match self.epoch {
            Some(epoch) => Some(epoch),
            None if with_layer => self.layer_time,
            None => None,
        };
        if let Some(at) = at {
            entry.insert("created".into(), json!(rfc3339(at)));
        }
        entry.insert("created_by".into(), json!(created_by));
        entry.insert("comment".into(), json!(HISTORY_COMMENT));
        if !with_layer {
            entry.insert("empty_layer".into(), json!(true));
        }
        self.config
            .top_array_mut("history")
            .push(Value::Object(entry));
    }

    fn object(&self, key: &str) -> Map<String, Value> {
        self.config
            .as_json()
            .get("config")
            .and_then(|c| c.get(key))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    /// Go marshals maps with sorted keys; so do we, to match its bytes.
    fn set_sorted(&mut self, key: &str, map: Map<String, Value>) {
        let mut entries: Vec<(String, Value)> = map.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        self.config
            .set_config(key, Value::Object(entries.into_iter().collect()));
    }
}

/// Parses a `SOURCE_DATE_EPOCH` value (the caller reads the variable;
/// kiln-oci reads no environment): `Ok(None)` when unset or empty.
pub fn parse_source_date_epoch(value: Option<&str>) -> Result<Option<i64>, SourceDateEpochError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| SourceDateEpochError {
            value: v.to_string(),
        }),
    }
}

/// `port[-end][/proto]` to `port/proto` strings, as BuildKit's EXPOSE does.
fn parse_port(raw: &str) -> Result<Vec<String>, String> {
    let container = raw.rsplit(':').next().unwrap_or(raw);
    let (ports, proto) = container.split_once('/').unwrap_or((container, ""));
    let proto = match proto.to_ascii_lowercase().as_str() {
        "" => "tcp".to_string(),
        p @ ("tcp" | "udp" | "sctp") => p.to_string(),
        p => {
            return Err(format!(
                "invalid port {raw:?}: protocol {p:?} is not tcp, udp or sctp"
            ))
        }
    };
    let number = |s: &str| -> Result<u32, String> {
        s.parse::<u32>()
            .ok()
            .filter(|n| *n <= 65535)
            .ok_or_else(|| format!("invalid port {raw:?}: {s:?} is not a port number (0-65535)"))
    };
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => (number(ports)?, number(ports)?),
    };
    if end < start {
        return Err(format!("invalid port {raw:?}: range ends before it starts"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Gives every history entry without a `created` time one, as BuildKit's
/// exporter does: the first time found after an entry without one (the
/// first new layer's), else the last time there is; then, walking on, the
/// time of the latest entry that has one once an entry without one was
/// seen. Entries stay without a time only when no entry has one.
fn fill_history_times(history: &mut [Value]) {
    let time = |e: &Value| e.get("created").filter(|c| c.is_string()).cloned();
    let mut fill = None;
    let mut gap = false;
    for entry in history.iter() {
        match time(entry) {
            Some(t) => {
                fill = Some(t);
                if gap {
                    break;
                }
            }
            None => gap = true,
        }
    }
    let Some(mut fill) = fill else {
        return;
    };
    gap = false;
    for entry in history.iter_mut() {
        match time(entry) {
            Some(t) if gap => fill = t,
            Some(_) => {}
            None => {
                gap = true;
                if let Value::Object(map) = entry {
                    map.insert("created".into(), fill.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_date_epoch_parsing() {
        assert_eq!(parse_source_date_epoch(None), Ok(None));
        assert_eq!(parse_source_date_epoch(Some("")), Ok(None));
        assert_eq!(
            parse_source_date_epoch(Some("1700000000")),
            Ok(Some(1_700_000_000))
        );
        let err = parse_source_date_epoch(Some("yesterday")).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("SOURCE_DATE_EPOCH=\"yesterday\" is not"));
    }

    #[test]
    fn ports_and_paths() {
        assert_eq!(parse_port("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_port("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            parse_port("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(parse_port("80/http")
            .unwrap_err()
            .contains("protocol \"http\""));
        assert!(parse_port("99999").is_err());
    }
}
