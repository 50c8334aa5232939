//! What vouches for an unpacked layer: a record, written before the layer
//! is published, saying how its contents were checked.
//!
//! A layer unpacked from a blob is published only after the blob's
//! uncompressed digest matched the diff_id it is keyed by (an image whose
//! config claims another image's diff_id would otherwise poison every later
//! RUN on that diff_id). Its record holds a digest of the unpacked tree, so
//! `kiln fsck` can tell when the directory changed afterwards. A layer a
//! RUN step committed is the step's own change set, which the engine wrote
//! and hashed itself; its record says so. A layer directory without a
//! record was unpacked by a kiln that did not verify diff_ids: it is not
//! trusted, and unpacked again when next needed.

use kiln_oci::{read_xattrs, Digest};
use sha2::{Digest as _, Sha256};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// How a layer directory came to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// Unpacked from a blob whose diff_id matched; the tree's digest then.
    Unpacked(Digest),
    /// A RUN step's committed changes.
    Committed,
}

impl Record {
    pub fn read(path: &Path) -> Option<Record> {
        let text = fs::read_to_string(path).ok()?;
        let mut lines = text.lines();
        match lines.next()? {
            "unpacked" => lines.next()?.parse().ok().map(Record::Unpacked),
            "committed" => Some(Record::Committed),
            _ => None,
        }
    }

    pub fn text(&self) -> String {
        match self {
            Record::Unpacked(tree) => format!("unpacked\n{tree}\n"),
            Record::Committed => "committed\n".to_string(),
        }
    }
}

/// A digest of everything overlayfs would show from `dir`: names, types,
/// modes, owners, sizes, link targets, device numbers, xattrs and file
/// contents, walked in sorted order without following any symlink.
pub(crate) fn tree_digest(dir: &Path) -> io::Result<Digest> {
    let mut h = Sha256::new();
    walk(dir, b"", &mut h)?;
    Ok(Digest::from_bytes(h.finalize().into()))
}

fn walk(dir: &Path, rel: &[u8], h: &mut Sha256) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let md = fs::symlink_metadata(&path)?;
        let mut child = rel.to_vec();
        child.push(b'/');
        child.extend_from_slice(name.as_bytes());
        field(h, &child);
        field(
            h,
            format!(
                "{:o} {} {} {}",
                md.mode(),
                md.uid(),
                md.gid(),
                if md.is_dir() { 0 } else { md.size() }
            )
            .as_bytes(),
        );
        let ft = md.file_type();
        if ft.is_char_device() || ft.is_block_device() {
            field(h, &md.rdev().to_le_bytes());
        }
        for (k, v) in read_xattrs(&path)? {
            field(h, k.as_bytes());
            field(h, &v);
        }
        if ft.is_symlink() {
            field(h, fs::read_link(&path)?.as_os_str().as_bytes());
        } else if ft.is_file() {
            let mut f = File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        } else if ft.is_dir() {
            walk(&path, &child, h)?;
        }
    }
    field(h, b"end");
    Ok(())
}

/// A length-prefixed field, so no two trees hash the same bytes.
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}
