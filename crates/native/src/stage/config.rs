//! Config edits that are not Dockerfile instructions, so they write no
//! history: the base config a stage starts from (scratch, a default
//! `PATH`, inherited ONBUILD triggers dropped) and `--label`s.

use kiln_frontend::stages::Platform;
use kiln_oci::config::set_config_field;
use kiln_oci::ImageConfig;
use serde_json::{json, Map, Value};

/// The `PATH` BuildKit gives an image whose config has none.
pub(crate) const DEFAULT_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// BuildKit's empty image for FROM scratch: the platform, the default
/// `PATH` (not on Windows) and `WorkingDir` `/`.
pub(crate) fn scratch(platform: &Platform) -> ImageConfig {
    let mut config = Map::new();
    if platform.os != "windows" {
        config.insert("Env".into(), json!([DEFAULT_PATH]));
    }
    config.insert("WorkingDir".into(), json!("/"));
    let mut doc = Map::new();
    doc.insert("architecture".into(), json!(platform.architecture));
    doc.insert("config".into(), Value::Object(config));
    doc.insert("os".into(), json!(platform.os));
    doc.insert("rootfs".into(), json!({"type": "layers", "diff_ids": []}));
    if let Some(v) = &platform.variant {
        doc.insert("variant".into(), json!(v));
    }
    // A Windows image says which build it is for; with no base, only
    // `--platform windows/amd64:10.0.20348.1` can tell.
    if let Some(v) = &platform.os_version {
        doc.insert("os.version".into(), json!(v));
    }
    if !platform.os_features.is_empty() {
        doc.insert("os.features".into(), json!(platform.os_features));
    }
    from_doc(doc)
}

/// A base config as a stage starts from it: ONBUILD triggers dropped (the
/// stage runs them; BuildKit clears them) and `PATH` added when missing.
pub(crate) fn for_stage(base: &ImageConfig, platform: &Platform) -> ImageConfig {
    edit(base, |config| {
        config.shift_remove("OnBuild");
        let has_path = config
            .get("Env")
            .and_then(Value::as_array)
            .is_some_and(|env| {
                env.iter()
                    .any(|e| e.as_str().is_some_and(|e| e.starts_with("PATH=")))
            });
        if !has_path && platform.os != "windows" {
            let mut env = config
                .get("Env")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            env.push(json!(DEFAULT_PATH));
            set_config_field(config, "Env", Value::Array(env));
        }
    })
}

/// `--label`s: set on the final config, winning over the Dockerfile's
/// LABELs, with no history entry (as BuildKit's `label:` options).
pub(crate) fn with_labels(
    base: &ImageConfig,
    labels: &std::collections::BTreeMap<String, String>,
) -> ImageConfig {
    if labels.is_empty() {
        return base.clone();
    }
    edit(base, |config| {
        let mut map = config
            .get("Labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in labels {
            map.insert(k.clone(), json!(v));
        }
        let mut sorted: Vec<(String, Value)> = map.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        set_config_field(
            config,
            "Labels",
            Value::Object(sorted.into_iter().collect()),
        );
    })
}

fn edit(base: &ImageConfig, f: impl FnOnce(&mut Map<String, Value>)) -> ImageConfig {
    let mut doc = base.as_json().clone();
    let mut config = doc
        .get("config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    f(&mut config);
    if doc.contains_key("config") {
        doc.insert("config".into(), Value::Object(config));
    } else {
        // Keep the top level in docker's (sorted) key order.
        let mut sorted: Vec<(String, Value)> = doc.into_iter().collect();
        sorted.push(("config".into(), Value::Object(config)));
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        doc = sorted.into_iter().collect();
    }
    from_doc(doc)
}

fn from_doc(doc: Map<String, Value>) -> ImageConfig {
    let bytes = serde_json::to_vec(&Value::Object(doc)).unwrap_or_default();
    // The document came from a valid config with only known-good edits.
    ImageConfig::from_json(&bytes).unwrap_or_else(|_| ImageConfig::new("linux", "amd64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_is_buildkits_empty_image() {
        let p = Platform::parse("linux/arm64").unwrap();
        assert_eq!(
            String::from_utf8(scratch(&p).to_json()).unwrap(),
            r#"{"architecture":"arm64","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/"},"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
        );
    }

    #[test]
    fn stage_base_drops_onbuild_and_adds_path() {
        let base = ImageConfig::from_json(
            br#"{"architecture":"amd64","config":{"User":"x","Cmd":["a"],"OnBuild":["COPY a b"]},"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let got = for_stage(&base, &Platform::parse("linux/amd64").unwrap());
        assert_eq!(
            String::from_utf8(got.to_json()).unwrap(),
            format!(
                r#"{{"architecture":"amd64","config":{{"User":"x","Env":["{DEFAULT_PATH}"],"Cmd":["a"]}},"os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
            )
        );
    }

    #[test]
    fn labels_merge_sorted_without_history() {
        let base = ImageConfig::from_json(
            br#"{"architecture":"amd64","config":{"Cmd":["a"],"Labels":{"b":"1"},"Shell":["sh"]},"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let labels = [
            ("a".to_string(), "2".to_string()),
            ("b".to_string(), "3".to_string()),
        ]
        .into_iter()
        .collect();
        let got = with_labels(&base, &labels);
        assert_eq!(
            String::from_utf8(got.to_json()).unwrap(),
            r#"{"architecture":"amd64","config":{"Cmd":["a"],"Labels":{"a":"2","b":"3"},"Shell":["sh"]},"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
        );
    }
}
