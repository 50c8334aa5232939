//! ADD's local archives: a regular file that is a tar (plain, gzip, bzip2,
//! xz or zstd, recognised by content as BuildKit's `isArchivePath` does) is
//! extracted into the destination instead of copied. Entries keep the
//! archive's owners, modes and mtimes (`--chown` and `--chmod` do not apply
//! to them, as in BuildKit); names that climb out of the destination are
//! refused, and so are entries below a symlink.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::path::Path;

use kiln_oci::tree::TreeFile;
use kiln_oci::{EntryKind, FileSource, LayerEntry};

use super::dest::Layer;
use super::paths::{clean_components, join};
use super::tree::{ancestors, Tree};
use super::ErrorKind;

/// Extracts `src` into `dest` if it is an archive; `Ok(false)` when it is
/// not one (the caller copies it instead).
pub(crate) fn try_extract(
    layer: &mut Layer,
    tree: &dyn Tree,
    src: &str,
    name: &str,
    dest: &str,
    scratch: &Path,
) -> Result<bool, ErrorKind> {
    let Some(node) = tree.node(src)? else {
        return Ok(false);
    };
    let Some(file) = node.content.filter(|_| node.kind.is_file()) else {
        return Ok(false);
    };
    let fail = |reason: String| ErrorKind::Archive {
        path: name.to_string(),
        reason,
    };
    let io = |e: io::Error| fail(e.to_string());
    let Some(mut archive) = open(&file, scratch).map_err(io)? else {
        return Ok(false);
    };
    let is_tar = matches!(archive.entries().map(|mut e| e.next()), Ok(Some(Ok(_))));
    if !is_tar {
        return Ok(false);
    }
    let mut archive = open(&file, scratch)
        .map_err(io)?
        .ok_or_else(|| fail("the file changed while it was read".into()))?;

    let dest_dir = layer.resolve(dest.trim_matches('/'), true)?;
    layer.mkdir_all(&dest_dir)?;
    let now = layer.options().now;
    let mut count = 0usize;
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let comps = clean_components(&raw)
            .ok_or_else(|| fail(format!("entry {raw:?} points outside the destination")))?;
        if comps.is_empty() {
            continue;
        }
        let rel = comps.join("/");
        let target = join(&dest_dir, &rel);
        for dir in ancestors(&rel) {
            layer.mkdir_plain(&join(&dest_dir, dir), now).map_err(|_| {
                fail(format!(
                    "entry {raw:?} is below {dir:?}, which is not a directory in the archive"
                ))
            })?;
        }
        let header = entry.header().clone();
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                count += 1;
                let file = scratch.join(format!("entry-{count}"));
                let mut out = File::create(&file).map_err(io)?;
                io::copy(&mut entry, &mut out).map_err(io)?;
                EntryKind::File(FileSource::Path(file))
            }
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink(link_name(&entry)),
            tar::EntryType::Link => {
                let link = link_name(&entry);
                let comps = clean_components(&link)
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| {
                        fail(format!(
                            "hard link {raw:?} points outside the destination: {link:?}"
                        ))
                    })?;
                EntryKind::Hardlink(join(&dest_dir, &comps.join("/")))
            }
            tar::EntryType::Char => EntryKind::CharDevice {
                major: header.device_major().ok().flatten().unwrap_or(0),
                minor: header.device_minor().ok().flatten().unwrap_or(0),
            },
            tar::EntryType::Block => EntryKind::BlockDevice {
                major: header.device_major().ok().flatten().unwrap_or(0),
                minor: header.device_minor().ok().flatten().unwrap_or(0),
            },
            tar::EntryType::Fifo => EntryKind::Fifo,
            _ => continue,
        };
        let mut xattrs = Vec::new();
        if let Ok(Some(pax)) = entry.pax_extensions() {
            for ext in pax.flatten() {
                if let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        // Go's tar reads an empty numeric field as 0; so does kiln.
        let mut e = LayerEntry::new(target, kind)
            .with_mode(header.mode().unwrap_or(0o644) & 0o7777)
            .with_owner(
                header.uid().unwrap_or(0) as u32,
                header.gid().unwrap_or(0) as u32,
            )
            .with_mtime(header.mtime().unwrap_or(0) as i64);
        e.xattrs = xattrs;
        layer.put(e)?;
    }
    Ok(true)
}

fn link_name<R: Read>(entry: &tar::Entry<R>) -> String {
    entry
        .link_name_bytes()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Opens `file` as a tar stream, decompressing by magic bytes; `None` when
/// it is compressed data that does not decompress (so not an archive).
fn open(file: &TreeFile, scratch: &Path) -> io::Result<Option<tar::Archive<Box<dyn Read>>>> {
    let mut reader = BufReader::new(file.open().map_err(io::Error::other)?);
    let head = reader.fill_buf()?.to_vec();
    let stream: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::bufread::MultiBzDecoder::new(reader))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(reader)?)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        // lzma-rs decodes whole streams only: through a temporary file.
        let mut out = tempfile::tempfile_in(scratch)?;
        if lzma_rs::xz_decompress(&mut reader, &mut out).is_err() {
            return Ok(None);
        }
        out.rewind()?;
        Box::new(BufReader::new(out))
    } else {
        Box::new(reader)
    };
    Ok(Some(tar::Archive::new(stream)))
}
