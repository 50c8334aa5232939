//! The image config fields the corpus compares, normalised so that the two
//! builders' harmless spelling differences (an empty list versus no field,
//! map order, zero healthcheck durations) do not count.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The `config` fields of an image config that a Dockerfile sets.
pub const FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
];

/// Labels a builder stamps on every image it makes.
const BUILDER_LABELS: &[&str] = &["io.buildah.version"];

/// The compared fields of `config` (the object under an image config's
/// `"config"` key); absent and empty values are left out.
pub fn normalize(config: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for field in FIELDS {
        let Some(v) = config.get(*field) else {
            continue;
        };
        let v = match (*field, v) {
            ("Labels", Value::Object(m)) => Value::Object(
                m.iter()
                    .filter(|(k, _)| !BUILDER_LABELS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            ("Healthcheck", Value::Object(m)) => Value::Object(
                m.iter()
                    .filter(|(_, v)| !is_empty(v) && v.as_u64() != Some(0))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            _ => v.clone(),
        };
        if !is_empty(&v) {
            out.insert(field.to_string(), sorted(v));
        }
    }
    out
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Objects with their keys in sorted order, so the rendering in a report is
/// stable.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let b: BTreeMap<String, Value> = m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(b.into_iter().collect::<Map<_, _>>())
        }
        other => other,
    }
}

/// Applies a case's `config` overrides (from expect.json) to the reference:
/// a value replaces the field, `null` removes it.
pub fn apply_overrides(reference: &mut BTreeMap<String, Value>, overrides: &Map<String, Value>) {
    for (k, v) in overrides {
        if is_empty(v) {
            reference.remove(k);
        } else {
            reference.insert(k.clone(), sorted(v.clone()));
        }
    }
}

/// One line per field that differs.
pub fn diff(expected: &BTreeMap<String, Value>, actual: &BTreeMap<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for field in FIELDS {
        let want = expected.get(*field);
        let got = actual.get(*field);
        if want != got {
            let show = |v: Option<&Value>| v.map_or("(absent)".to_string(), |v| v.to_string());
            out.push(format!(
                "config {field}: got {}, want {}",
                show(got),
                show(want)
            ));
        }
    }
    out
}
