//! ADD's local archives: a regular file that is a tar (plain, gzip, bzip2,
//! xz or zstd, recognised by content as BuildKit's `isArchivePath` does) is
//! extracted into the destination instead of copied. Entries keep the
//! archive's owners, modes and mtimes (`--chown` and `--chmod` do not apply
//! to them, as in BuildKit); names that climb out of the destination are
//! refused, and so are entries below a symlink and hard links to anything
//! but a file earlier in the archive. The archive is read with kiln-oci's
//! bounded tar reader (long names and PAX headers capped, PAX records read
//! by their length).

use kiln_oci::compression::Magic;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::path::Path;

use kiln_oci::layer::read::TarReader;
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
    let Some(FileSource::Tree(file)) = node.content.filter(|_| node.kind.is_file()) else {
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
    if !matches!(archive.next_header(), Ok(Some(_))) {
        return Ok(false);
    }
    let mut archive = open(&file, scratch)
        .map_err(io)?
        .ok_or_else(|| fail("the file changed while it was read".into()))?;

    let dest_dir = layer.resolve(dest.trim_matches('/'), true)?;
    layer.mkdir_all_for_archive(&dest_dir)?;
    let now = layer.options().now;
    let mut count = 0usize;
    // Files this archive wrote: the only targets a hard link in it may
    // have, as a link to anything else would dangle in the layer.
    let mut files: HashSet<String> = HashSet::new();
    while let Some(header) = archive.next_header().map_err(|e| fail(e.to_string()))? {
        let spelled = |bytes: &[u8]| {
            kiln_oci::name::from_bytes(bytes)
                .map(std::borrow::Cow::into_owned)
                .map_err(|e| fail(e.to_string()))
        };
        let raw = spelled(&header.name)?;
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
        let link = spelled(&header.linkname)?;
        let kind = match header.typeflag {
            // Pre-POSIX tars mark directories only by a trailing slash.
            b'0' | b'\0' | b'7' if raw.ends_with('/') => EntryKind::Dir,
            b'0' | b'\0' | b'7' => {
                count += 1;
                let file = scratch.join(format!("entry-{count}"));
                let mut out = File::create(&file).map_err(io)?;
                io::copy(&mut archive, &mut out)
                    .map_err(|e| fail(format!("entry {raw:?}: {e}")))?;
                EntryKind::File(FileSource::Path(file))
            }
            b'5' => EntryKind::Dir,
            b'2' => EntryKind::Symlink(link),
            b'1' => {
                let comps = clean_components(&link)
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| {
                        fail(format!(
                            "hard link {raw:?} points outside the destination: {link:?}"
                        ))
                    })?;
                let to = join(&dest_dir, &comps.join("/"));
                if !files.contains(&to) {
                    return Err(fail(format!(
                        "hard link {raw:?} points at {link:?}, which is not a file earlier in the archive"
                    )));
                }
                EntryKind::Hardlink(to)
            }
            b'3' => EntryKind::CharDevice {
                major: header.devmajor,
                minor: header.devminor,
            },
            b'4' => EntryKind::BlockDevice {
                major: header.devmajor,
                minor: header.devminor,
            },
            b'6' => EntryKind::Fifo,
            other => {
                return Err(fail(format!(
                    "entry {raw:?} has tar type {:?} (0x{other:02x}), which ADD cannot extract",
                    other as char
                )))
            }
        };
        if matches!(kind, EntryKind::Dir) {
            files.remove(&target);
        } else {
            files.insert(target.clone());
        }
        let xattrs = header
            .pax
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("SCHILY.xattr.")?.to_string(), v.clone())))
            .collect();
        let id = |v: u64, what: &str| {
            u32::try_from(v)
                .map_err(|_| fail(format!("entry {raw:?}: {what} {v} does not fit 32 bits")))
        };
        // A symlink's mode is 0777 on Linux whatever the header says; that
        // is what BuildKit and buildah record.
        let mode = if matches!(kind, EntryKind::Symlink(_)) {
            0o777
        } else {
            header.mode
        };
        let mut e = LayerEntry::new(target, kind)
            .with_mode(mode)
            .with_owner(id(header.uid, "uid")?, id(header.gid, "gid")?)
            .with_mtime(header.mtime);
        e.xattrs = xattrs;
        layer.put(e)?;
    }
    Ok(true)
}

/// Opens `file` as a tar stream, decompressing by magic bytes; `None` when
/// it is compressed data that does not decompress (so not an archive).
fn open(file: &TreeFile, scratch: &Path) -> io::Result<Option<TarReader<Box<dyn Read>>>> {
    let mut reader = BufReader::new(file.open().map_err(io::Error::other)?);
    let head = reader.fill_buf()?.to_vec();
    Ok(decompress(&head, reader, scratch)?.map(TarReader::new))
}

/// `stream` decompressed as its first bytes, `head`, say: gzip, bzip2,
/// zstd, xz, or none; `None` when it is xz that does not decompress. The
/// one reading of the compressions ADD and a context archive may use
/// (layers take only gzip and zstd: `kiln_oci::compression::decompress`).
pub(crate) fn decompress<'a>(
    head: &[u8],
    stream: impl BufRead + 'a,
    scratch: &Path,
) -> io::Result<Option<Box<dyn Read + 'a>>> {
    Ok(Some(match Magic::of(head) {
        Magic::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(stream)),
        Magic::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(stream)),
        Magic::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(stream)?),
        Magic::Xz => {
            // lzma-rs decodes whole streams only: through a temporary file.
            let mut stream = stream;
            let mut out = tempfile::tempfile_in(scratch)?;
            if lzma_rs::xz_decompress(&mut stream, &mut out).is_err() {
                return Ok(None);
            }
            out.rewind()?;
            Box::new(BufReader::new(out))
        }
        Magic::None => Box::new(stream),
    }))
}
