//! OCI image layouts on disk (`oci-layout`, `index.json`, `blobs/sha256/`):
//! the one implementation behind the store's content directory, OCI layout
//! bases (`oci-layout://`), `-o type=oci` directories and the shared cache's
//! `type=local` directories.
//!
//! Every write is atomic and durable: the bytes go to a uniquely named
//! temporary file in the destination's directory, are flushed to disk,
//! renamed into place, and the directory is flushed too, so a crash leaves
//! the old file or the new one, never a torn one, and two writers never
//! share a temporary name.

use crate::descriptor::Descriptor;
use crate::digest::{Digest, DigestWriter};
use crate::manifest::{Index, ManifestFormat};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The `oci-layout` file's contents.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// A layout operation that failed; the text names the file.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file-system call failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A file is not what the layout format says it must be.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A blob's bytes do not hash to its name.
    #[error("blob {expected} written to {}: its contents are {actual}", path.display())]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes.
        actual: Digest,
        /// The layout.
        path: PathBuf,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LayoutError + 'a {
    move |source| LayoutError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// An OCI image layout directory.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout at `root`, which must hold an `index.json`.
    pub fn open(root: &Path) -> Result<Layout, LayoutError> {
        if !root.is_dir() {
            return Err(LayoutError::Invalid {
                path: root.to_path_buf(),
                reason: "no such directory".into(),
            });
        }
        let index = root.join("index.json");
        if !index.is_file() {
            return Err(LayoutError::Invalid {
                path: root.to_path_buf(),
                reason: "not an OCI layout: it has no index.json".into(),
            });
        }
        Ok(Layout {
            root: root.to_path_buf(),
        })
    }

    /// The layout at `root`, made (with an empty index) if it is not one
    /// yet.
    pub fn create(root: &Path) -> Result<Layout, LayoutError> {
        let blobs = root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(io_err("creating", &blobs))?;
        let layout = Layout {
            root: root.to_path_buf(),
        };
        if !root.join("oci-layout").is_file() {
            write_atomic(&root.join("oci-layout"), OCI_LAYOUT)?;
        }
        if !root.join("index.json").is_file() {
            layout.write_index(&Index::new(ManifestFormat::OciIndex, Vec::new()))?;
        }
        Ok(layout)
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` is (or would be).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, LayoutError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                LayoutError::Invalid {
                    path: self.root.clone(),
                    reason: format!("the layout is missing blob {digest}"),
                }
            } else {
                LayoutError::Io {
                    action: "opening",
                    path,
                    source,
                }
            }
        })
    }

    /// Reads a blob whole, checking it hashes to its name: for manifests
    /// and configs, which are small.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, LayoutError> {
        let mut bytes = Vec::new();
        let path = self.blob_path(digest);
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(io_err("reading", &path))?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(LayoutError::DigestMismatch {
                expected: *digest,
                actual,
                path: self.root.clone(),
            });
        }
        Ok(bytes)
    }

    /// Writes the blob `digest` from `src` unless it is present, checking
    /// the bytes hash to `digest` before the blob appears.
    pub fn write_blob(&self, digest: &Digest, mut src: impl Read) -> Result<(), LayoutError> {
        let path = self.blob_path(digest);
        if path.is_file() {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(io_err("creating a temporary file in", &dir))?;
        let mut w = DigestWriter::new(tmp);
        io::copy(&mut src, &mut w).map_err(io_err("writing", &path))?;
        let (actual, _, tmp) = w.finish();
        if actual != *digest {
            return Err(LayoutError::DigestMismatch {
                expected: *digest,
                actual,
                path: self.root.clone(),
            });
        }
        tmp.as_file()
            .sync_all()
            .map_err(io_err("flushing", &path))?;
        tmp.persist(&path).map_err(|e| LayoutError::Io {
            action: "moving into place",
            path: path.clone(),
            source: e.error,
        })?;
        sync_dir(&dir)
    }

    /// Writes bytes as a blob and returns its descriptor of `media_type`.
    pub fn put_bytes(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor, LayoutError> {
        let digest = Digest::of(bytes);
        self.write_blob(&digest, bytes)?;
        Ok(Descriptor::new(media_type, digest, bytes.len() as u64))
    }

    /// The layout's `index.json`.
    pub fn read_index(&self) -> Result<Index, LayoutError> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(io_err("reading", &path))?;
        serde_json::from_slice(&bytes).map_err(|e| LayoutError::Invalid {
            path,
            reason: format!("not an OCI index: {e}"),
        })
    }

    /// Replaces `index.json`.
    pub fn write_index(&self, index: &Index) -> Result<(), LayoutError> {
        let mut bytes = serde_json::to_vec_pretty(index).expect("an index is always JSON");
        bytes.push(b'\n');
        write_atomic(&self.root.join("index.json"), &bytes)
    }
}

/// Replaces `path` with `bytes` atomically and durably (see the module
/// docs), through a temporary file beside it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    write_atomic_via(&parent_dir(path), path, bytes)
}

/// [`write_atomic`] with the temporary file in `tmp_dir` (on the same file
/// system as `path`), for a directory that must never show stray files,
/// as a store's content directory. The file ends world-readable (0644),
/// as any image layout's files are, though temporary files start 0600 (on
/// Windows, where access is an ACL, it keeps the one its directory gives).
pub fn write_atomic_via(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(tmp_dir)
        .map_err(io_err("creating a temporary file in", tmp_dir))?;
    tmp.write_all(bytes)
        .and_then(|_| crate::sys::make_world_readable(tmp.as_file()))
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(io_err("writing", path))?;
    tmp.persist(path).map_err(|e| LayoutError::Io {
        action: "moving into place",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    sync_dir(&parent_dir(path))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Flushes a directory, so a rename in it survives a crash.
fn sync_dir(dir: &Path) -> Result<(), LayoutError> {
    crate::sys::sync_dir(dir).map_err(io_err("flushing the directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_type;

    #[test]
    fn blobs_and_index_round_trip_and_bad_blobs_never_appear() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        assert_eq!(fs::read(dir.path().join("oci-layout")).unwrap(), OCI_LAYOUT);
        assert!(layout.read_index().unwrap().manifests.is_empty());

        let desc = layout.put_bytes(media_type::OCI_CONFIG, b"{}").unwrap();
        assert_eq!(layout.read_blob(&desc.digest).unwrap(), b"{}");
        let wrong = Digest::of(b"other");
        let err = layout.write_blob(&wrong, &b"{}"[..]).unwrap_err();
        assert!(matches!(err, LayoutError::DigestMismatch { .. }), "{err}");
        assert!(!layout.has_blob(&wrong));
        let left: Vec<_> = fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from(desc.digest.hex())]);

        let index = Index::new(ManifestFormat::OciIndex, vec![desc.clone()]);
        layout.write_index(&index).unwrap();
        let again = Layout::open(dir.path()).unwrap();
        assert_eq!(again.read_index().unwrap(), index);
        assert!(Layout::open(&dir.path().join("blobs")).is_err());
    }
}
