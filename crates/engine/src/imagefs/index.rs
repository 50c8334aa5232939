//! Reading layer blobs: indexing their tar headers into the tree, and
//! finding one entry's bytes again later.

use super::tree::{join, Layer, Tree};
use super::{DataRef, Error, FsEntry, FsKind};
use kiln_oci::Digest;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use tar::EntryType as T;

/// Decompresses a layer blob by its magic bytes: gzip, zstd, or a plain
/// tar.
pub(super) fn decompress<'a, R: Read + 'a>(blob: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(256 * 1024, blob);
    let head = buf.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buf))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buf)?)
    } else {
        Box::new(buf)
    })
}

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
    let fail = |reason: String| Error::Layer {
        layer: layer.digest,
        entry: None,
        reason,
    };
    let blob = decompress(open_layer(layer)?).map_err(|e| fail(format!("reading: {e}")))?;
    let mut archive = tar::Archive::new(blob);
    let entries = archive
        .entries()
        .map_err(|e| fail(format!("not a tar archive: {e}")))?;
    for (i, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| fail(format!("corrupt tar: {e}")))?;
        if i as u64 == ordinal {
            return read(&mut entry).map_err(|e| fail(format!("reading entry {ordinal}: {e}")));
        }
    }
    Err(fail(format!(
        "the blob has no entry {ordinal} any more; it changed since it was indexed"
    )))
}

/// Indexes the blob of layer number `layer` into `tree`.
pub(super) fn read_layer<R: Read>(
    tree: &mut Tree,
    layer: usize,
    digest: &Digest,
    blob: R,
) -> Result<(), Error> {
    let fail = |entry: Option<String>, reason: String| Error::Layer {
        layer: *digest,
        entry,
        reason,
    };
    let reader = decompress(blob).map_err(|e| fail(None, format!("reading the blob: {e}")))?;
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| fail(None, format!("not a tar archive: {e}")))?;
    for (ordinal, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| fail(None, format!("corrupt tar: {e}")))?;
        let data = DataRef {
            layer,
            ordinal: ordinal as u64,
        };
        apply(tree, data, &mut entry).map_err(|reason| {
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            fail(Some(name), reason)
        })?;
    }
    Ok(())
}

/// Applies one tar entry.
fn apply<R: Read>(
    tree: &mut Tree,
    at: DataRef,
    entry: &mut tar::Entry<'_, R>,
) -> Result<(), String> {
    let ty = entry.header().entry_type();
    if ty == T::XGlobalHeader {
        return Ok(());
    }
    let name = String::from_utf8(entry.path_bytes().into_owned())
        .map_err(|_| "the file name is not UTF-8, which kiln does not support".to_string())?;
    let comps = components(&name)?;
    let key = join(&comps);

    if let Some(hidden) = comps.last().and_then(|n| n.strip_prefix(".wh.")) {
        let dir = join(&comps[..comps.len() - 1]);
        tree.ensure_dir(&dir, at.layer)?;
        if hidden == ".wh..opq" {
            tree.make_opaque(&dir, at.layer)?;
        } else if !hidden.starts_with(".wh.") {
            let mut target = comps[..comps.len() - 1].to_vec();
            target.push(hidden);
            tree.whiteout(&join(&target), at.layer)?;
        }
        // Other `.wh..wh.*` names are aufs bookkeeping, not content.
        return Ok(());
    }

    let mut e = metadata(entry, at.layer)?;
    e.kind = match ty {
        // Pre-POSIX tars mark directories only by the trailing slash.
        T::Regular | T::Continuous if name.ends_with('/') => FsKind::Dir,
        T::Regular | T::Continuous => {
            e.size = entry.size();
            e.data = Some(at);
            FsKind::File
        }
        T::Directory => FsKind::Dir,
        T::Symlink => FsKind::Symlink(link_name(entry)?),
        T::Link => return link(tree, &key, &link_name(entry)?, e),
        T::Char | T::Block => {
            let h = entry.header();
            let major = h.device_major().ok().flatten().unwrap_or(0);
            let minor = h.device_minor().ok().flatten().unwrap_or(0);
            if ty == T::Char {
                FsKind::CharDevice { major, minor }
            } else {
                FsKind::BlockDevice { major, minor }
            }
        }
        T::Fifo => FsKind::Fifo,
        other => {
            return Err(format!(
                "tar entry type {other:?} is not supported in layers"
            ))
        }
    };
    if key == "/" {
        if !e.is_dir() {
            return Err("the layer root must be a directory".into());
        }
        tree.set_root(e);
        return Ok(());
    }
    tree.insert(&key, e)
}

/// A hard link at `key` to the entry at `target`: it shares that entry's
/// contents and metadata.
fn link(tree: &mut Tree, key: &str, target: &str, header: FsEntry) -> Result<(), String> {
    // Tar link names are relative to the archive root; docker accepts a
    // leading '/' as the same thing.
    let target_key = join(&components(target)?);
    let Some(t) = tree.get(&target_key) else {
        return Err(format!(
            "hard link target {target:?} does not exist in this or a lower layer"
        ));
    };
    let kind = match &t.kind {
        FsKind::Dir => return Err(format!("hard link target {target:?} is a directory")),
        FsKind::File | FsKind::Hardlink(_) => FsKind::Hardlink(target_key.clone()),
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

/// The header's metadata, with PAX records applied; the kind is set by
/// the caller.
fn metadata<R: Read>(entry: &mut tar::Entry<'_, R>, layer: usize) -> Result<FsEntry, String> {
    let h = entry.header();
    let mut uid = h.uid().map_err(|e| format!("bad uid: {e}"))?;
    let mut gid = h.gid().map_err(|e| format!("bad gid: {e}"))?;
    let mut mtime = h.mtime().map_err(|e| format!("bad mtime: {e}"))? as i64;
    let mode = h.mode().map_err(|e| format!("bad mode: {e}"))? & 0o7777;
    let mut xattrs = Vec::new();
    let pax = entry
        .pax_extensions()
        .map_err(|e| format!("bad PAX header: {e}"))?;
    for ext in pax.into_iter().flatten() {
        let ext = ext.map_err(|e| format!("bad PAX record: {e}"))?;
        let Ok(key) = ext.key() else { continue };
        let text = || ext.value().map_err(|_| format!("PAX {key} is not text"));
        match key {
            "uid" => uid = text()?.parse().map_err(|_| "bad PAX uid".to_string())?,
            "gid" => gid = text()?.parse().map_err(|_| "bad PAX gid".to_string())?,
            "mtime" => {
                let whole = text()?.split('.').next().unwrap_or_default();
                mtime = whole.parse().map_err(|_| "bad PAX mtime".to_string())?;
            }
            k => {
                if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    let id = |v: u64, what: &str| {
        u32::try_from(v).map_err(|_| format!("{what} {v} does not fit in 32 bits"))
    };
    Ok(FsEntry {
        kind: FsKind::File,
        mode,
        uid: id(uid, "uid")?,
        gid: id(gid, "gid")?,
        size: 0,
        mtime,
        xattrs,
        layer,
        data: None,
    })
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, String> {
    let target = entry
        .link_name_bytes()
        .ok_or("link without a target")?
        .into_owned();
    String::from_utf8(target)
        .map_err(|_| "the link target is not UTF-8, which kiln does not support".to_string())
}

/// A tar name's components: leading `/` and `./`, empty and `.`
/// components dropped; `..` refused, as the layer extractor does.
fn components(name: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err("path contains \"..\", which would escape the layer root".to_string())
            }
            c => out.push(c),
        }
    }
    Ok(out)
}
