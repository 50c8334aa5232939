//! `--squash` (podman's and buildah's): the layers a build added on top of
//! its base image become one; the base's layers stay as they are.
//!
//! The new layers are merged as a container would see them: the image
//! view of the new layers alone, extracted, gives every file they leave
//! behind (a file one step made and a later one deleted is gone); each
//! directory keeps the metadata the whole image has for it, so a base
//! directory the steps only wrote into is not redefined; and every base
//! path the whole image no longer has is listed as a whiteout.

use crate::imagefs::ImageFs;
use crate::stage::{LazyFs, StageOutput};
use kiln_backend::BuildError;
use kiln_oci::{
    entries_from_dir, write_layer, Compression, EntryKind, LayerEntry, LayerFormat, LayerOptions,
    MtimePolicy,
};
use kiln_store::{Descriptor, Store};
use serde_json::{json, Value};
use std::path::Path;

/// `target` with the layers after its first `base_layers` squashed into
/// one (nothing changes with fewer than two of them).
pub(crate) fn squash(
    store: &Store,
    scratch: &Path,
    target: &StageOutput,
    compression: Compression,
    epoch: Option<i64>,
) -> Result<StageOutput, BuildError> {
    let n = target.base_layers;
    if target.layers.len() < n + 2 {
        return Ok(target.clone());
    }
    if target.config.layer_format() == LayerFormat::Windows {
        return Err(BuildError::Request(
            "NotSupported: --squash of a Windows image; build it without --squash".into(),
        ));
    }
    let fail = |e: String| BuildError::Request(format!("--squash: {e}"));
    let all = ImageFs::open(store, &target.layers).map_err(|e| fail(e.to_string()))?;
    let base = ImageFs::open(store, &target.layers[..n]).map_err(|e| fail(e.to_string()))?;
    let added = ImageFs::open(store, &target.layers[n..]).map_err(|e| {
        fail(format!(
            "{e} (a link in the new layers to a file of the base cannot be squashed)"
        ))
    })?;
    let dir = tempfile::Builder::new()
        .prefix("squash-")
        .tempdir_in(scratch)
        .map_err(|e| fail(format!("a scratch directory: {e}")))?;
    added
        .extract(store, "/", dir.path())
        .map_err(|e| fail(e.to_string()))?;
    let mut entries = entries_from_dir(dir.path())
        .map_err(|e| fail(format!("reading the merged layers: {e}")))?;
    for e in &mut entries {
        if e.kind == EntryKind::Dir {
            if let Some(found) = all.lookup(&format!("/{}", e.path)) {
                e.mode = found.mode & 0o7777;
                e.uid = found.uid;
                e.gid = found.gid;
                e.mtime = found.mtime;
                e.xattrs = found.xattrs.clone();
            }
        }
    }
    // What the base had and the image has not: deleted by a step.
    let mut gone: Vec<String> = Vec::new();
    for (path, _) in base.walk("/") {
        let under_gone = gone.iter().any(|g| {
            path.strip_prefix(g.as_str())
                .is_some_and(|r| r.starts_with('/'))
        });
        if all.lookup(path).is_none() && !under_gone {
            gone.push(path.to_string());
        }
    }
    entries.extend(gone.iter().map(|p| LayerEntry {
        kind: EntryKind::Whiteout,
        ..LayerEntry::dir(&p[1..])
    }));
    let options = LayerOptions {
        compression,
        mtime: epoch.map_or(MtimePolicy::Keep, MtimePolicy::Clamp),
        ..LayerOptions::default()
    };
    let writer = store.ingest_prehashed()?;
    let (layer, writer) =
        write_layer(entries, &options, writer).map_err(|e| fail(e.to_string()))?;
    writer.commit(Some(layer.digest))?;
    let mut layers = target.layers[..n].to_vec();
    layers.push(Descriptor::new(layer.media_type, layer.digest, layer.size));
    let config = squashed_config(
        &target.config,
        n,
        &layer.diff_id.to_string(),
        target.created,
    )
    .map_err(fail)?;
    Ok(StageOutput {
        fs: LazyFs::of_layers(layers.clone(), LayerFormat::Linux),
        layers,
        config,
        ..target.clone()
    })
}

/// The config of the squashed image: the base's diff_ids and the new one;
/// the steps' history entries kept, as empty ones, and one entry for the
/// squashed layer, so the history still has a non-empty entry per layer.
fn squashed_config(
    config: &kiln_oci::ImageConfig,
    base_layers: usize,
    diff_id: &str,
    created: i64,
) -> Result<kiln_oci::ImageConfig, String> {
    let mut doc = config.as_json().clone();
    if let Some(rootfs) = doc.get_mut("rootfs").and_then(Value::as_object_mut) {
        let mut ids: Vec<Value> = rootfs
            .get("diff_ids")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        ids.truncate(base_layers);
        ids.push(json!(diff_id));
        rootfs.insert("diff_ids".into(), Value::Array(ids));
    }
    if let Some(history) = doc.get_mut("history").and_then(Value::as_array_mut) {
        let mut layers_seen = 0;
        for entry in history.iter_mut() {
            let Some(e) = entry.as_object_mut() else {
                continue;
            };
            let empty = e.get("empty_layer").and_then(Value::as_bool) == Some(true);
            if layers_seen >= base_layers && !empty {
                e.insert("empty_layer".into(), json!(true));
            }
            if !empty {
                layers_seen += 1;
            }
        }
        history.push(json!({
            "created": kiln_oci::config::rfc3339(created),
            "created_by": "kiln build --squash",
            "comment": format!("the layers of {} steps, squashed", layers_seen.saturating_sub(base_layers)),
        }));
    }
    let bytes = serde_json::to_vec(&Value::Object(doc)).map_err(|e| e.to_string())?;
    kiln_oci::ImageConfig::from_json(&bytes).map_err(|e| e.to_string())
}
