//! Reading layer blobs: indexing their tar headers into the tree, and
//! finding one entry's bytes again later.

use super::tree::{join, Layer, Tree};
use super::{DataRef, Error, FsEntry, FsKind};
use kiln_oci::layer::read::{Entry, LayerReader, Node, ReadError};
use kiln_oci::{Digest, LayerFormat};
use std::fs::File;
use std::io::{self, Read};

/// Opens the blob of a layer indexed earlier.
pub(super) fn open_layer(layer: &Layer) -> Result<File, Error> {
    File::open(&layer.blob).map_err(|e| Error::Layer {
        layer: layer.digest,
        entry: None,
        reason: if e.kind() == io::ErrorKind::NotFound {
            format!(
                "the blob {} is no longer in the store (was it garbage-collected?); pull or build the image again",
                layer.blob.display()
            )
        } else {
            format!("opening {}: {e}", layer.blob.display())
        },
    })
}

/// Streams the layer to its `ordinal`-th entry and hands `read` that
/// entry's contents.
pub(super) fn with_entry(
    layer: &Layer,
    ordinal: u64,
    read: impl FnOnce(&mut dyn Read) -> io::Result<()>,
) -> Result<(), Error> {
    let fail = |e: ReadError| Error::Layer {
        layer: layer.digest,
        entry: e.entry,
        reason: e.reason,
    };
    let mut reader = LayerReader::new(open_layer(layer)?).map_err(fail)?;
    while let Some(entry) = reader.next_entry().map_err(fail)? {
        if entry.ordinal == ordinal {
            return read(&mut reader).map_err(|e| Error::Layer {
                layer: layer.digest,
                entry: Some(entry.display_name()),
                reason: format!("reading entry {ordinal}: {e}"),
            });
        }
    }
    Err(Error::Layer {
        layer: layer.digest,
        entry: None,
        reason: format!(
            "the blob has no entry {ordinal} any more; it changed since it was indexed"
        ),
    })
}

/// Indexes the blob of layer number `layer` into `tree`, by the rules of
/// [`kiln_oci::layer::read`] (the ones RUN's snapshots follow too).
/// Each entry read is also pushed to `keep`, when given.
pub(super) fn read_layer<R: Read + Send>(
    tree: &mut Tree,
    layer: usize,
    digest: &Digest,
    blob: R,
    mut keep: Option<&mut Vec<Entry>>,
) -> Result<(), Error> {
    let fail = |e: ReadError| Error::Layer {
        layer: *digest,
        entry: e.entry,
        reason: e.reason,
    };
    let mut reader = LayerReader::new(blob).map_err(fail)?;
    while let Some(entry) = reader.next_entry().map_err(fail)? {
        apply_one(tree, layer, digest, &entry)?;
        if let Some(keep) = keep.as_deref_mut() {
            keep.push(entry);
        }
    }
    reader.finish().map_err(fail)?;
    Ok(())
}

/// Indexes layer number `layer` from the entries a [`read_layer`] of the
/// same blob kept.
pub(super) fn apply_entries(
    tree: &mut Tree,
    layer: usize,
    digest: &Digest,
    entries: &[Entry],
) -> Result<(), Error> {
    entries
        .iter()
        .try_for_each(|e| apply_one(tree, layer, digest, e))
}

fn apply_one(tree: &mut Tree, layer: usize, digest: &Digest, entry: &Entry) -> Result<(), Error> {
    apply(tree, layer, entry).map_err(|reason| Error::Layer {
        layer: *digest,
        entry: Some(entry.display_name()),
        reason,
    })
}

/// Applies one layer entry.
fn apply(tree: &mut Tree, layer: usize, entry: &Entry) -> Result<(), String> {
    let windows = tree.format == LayerFormat::Windows;
    let Some(key) = container_key(tree, &entry.path)? else {
        return Ok(());
    };
    let parent = || match key.rsplit_once('/') {
        Some((p, _)) if !p.is_empty() => p.to_string(),
        _ => "/".to_string(),
    };
    let mut e = FsEntry {
        kind: FsKind::File,
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        size: 0,
        mtime: entry.mtime,
        mtime_nanos: entry.mtime_nanos,
        xattrs: entry.xattrs.clone(),
        // Only a Windows layer's records mean anything to kiln (a new
        // layer replays a base directory's security descriptor and
        // attributes); a Linux layer's atime/ctime are not kept.
        records: if windows {
            entry.records.clone()
        } else {
            Vec::new()
        },
        layer,
        data: None,
    };
    e.kind = match &entry.node {
        Node::Whiteout => {
            tree.ensure_dir(&parent(), layer)?;
            return tree.whiteout(&key, layer);
        }
        Node::Opaque => {
            tree.ensure_dir(&key, layer)?;
            return tree.make_opaque(&key, layer);
        }
        Node::File { size } => {
            e.size = *size;
            e.data = Some(DataRef {
                layer,
                ordinal: entry.ordinal,
            });
            FsKind::File
        }
        Node::Dir => FsKind::Dir,
        Node::Symlink(target) if windows => {
            FsKind::Symlink(posix_target(&text(target, "link target")?))
        }
        Node::Symlink(target) => FsKind::Symlink(text(target, "link target")?),
        Node::Hardlink(target) => {
            let Some(target) = container_key(tree, target)? else {
                return Err("hard link target is outside Files/".into());
            };
            return link(tree, &key, &target, e);
        }
        Node::CharDevice { major, minor } => FsKind::CharDevice {
            major: *major,
            minor: *minor,
        },
        Node::BlockDevice { major, minor } => FsKind::BlockDevice {
            major: *major,
            minor: *minor,
        },
        Node::Fifo => FsKind::Fifo,
    };
    if key == "/" {
        tree.set_root(e);
        return Ok(());
    }
    tree.insert(&key, e)
}

/// A hard link at `key` to the entry at `target`: it shares that entry's
/// contents and metadata.
fn link(tree: &mut Tree, key: &str, target: &str, header: FsEntry) -> Result<(), String> {
    let Some(t) = tree.get(target) else {
        return Err(format!("hard link target {target:?} does not exist"));
    };
    let kind = match &t.kind {
        FsKind::Dir => return Err(format!("hard link target {target:?} is a directory")),
        FsKind::File | FsKind::Hardlink(_) => FsKind::Hardlink(target.to_string()),
        // A link to a symlink or device node is just another one of those.
        other => other.clone(),
    };
    let entry = FsEntry {
        kind,
        layer: header.layer,
        ..t.clone()
    };
    tree.insert(key, entry)
}

/// The tree key of the layer path `path` (cleaned, relative), spelled as
/// the tree spells what exists; `None` for an entry outside the container's
/// file system (see [`LayerFormat::container_path`]).
fn container_key(tree: &Tree, path: &[u8]) -> Result<Option<String>, String> {
    let comps: Vec<&[u8]> = path
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    if comps.is_empty() {
        return Ok(Some("/".to_string()));
    }
    let Some(inside) = tree.format.container_path(&comps) else {
        return Ok(None);
    };
    let names = inside
        .iter()
        .map(|c| text(c, "file name"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(tree.spell(&join(&names))))
}

/// A Windows link target (`C:\x\y`, `\x`, `..\y`) in the tree's POSIX
/// form (`/x/y`, `/x`, `../y`), so resolution follows it inside the image.
/// A target on another drive or a UNC share keeps its text and resolves
/// to nothing inside the image.
fn posix_target(target: &str) -> String {
    let t = target.replace('\\', "/");
    let t = t.strip_prefix("//?/").unwrap_or(&t);
    match t.as_bytes() {
        [d, b':', rest @ ..] if d.eq_ignore_ascii_case(&b'c') => {
            format!("/{}", String::from_utf8_lossy(rest).trim_start_matches('/'))
        }
        _ => t.to_string(),
    }
}

/// A name or link target from a tar header, spelled as `kiln_oci::name`
/// spells bytes that are not UTF-8.
fn text(bytes: &[u8], what: &str) -> Result<String, String> {
    kiln_oci::name::from_bytes(bytes)
        .map(std::borrow::Cow::into_owned)
        .map_err(|e| format!("the {what}: {e}"))
}
