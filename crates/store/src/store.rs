//! The store handle, blob access and blob ingestion.

use crate::descriptor::IndexFile;
use crate::error::{Error, Result};
use crate::fsutil::{self, Lock, Mode};
use crate::lease::{self, Lease, LeaseUsage};
use kiln_oci::{Digest, DigestWriter};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const OCI_LAYOUT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";

/// A local content store: an OCI image layout in `<root>/content`, work in
/// flight in `<root>/tmp/<lease>`, leases in `<root>/leases`, and a lock
/// file in `<root>`.
///
/// Several processes may use one store at once. `index.lock` is taken shared
/// by readers and by blob commits, and exclusive by index updates and GC.
/// Each `Store` holds a lease from [`Store::open`] until it is dropped (see
/// the `lease` module): its temporary files, and the blobs it wrote or
/// [held](Store::hold) and has not tagged, are its lease's, and GC keeps
/// them while the lease lives.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    content: PathBuf,
    pub(crate) lease: Lease,
    reclaimed: LeaseUsage,
}

/// A blob's digest and size, as committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
}

impl Store {
    /// Opens the store at `root`, creating an empty one if there is none,
    /// and takes this `Store`'s lease.
    ///
    /// First it removes what processes that died with the store open left
    /// (their temporary files and leases; [`Store::reclaimed`] says how
    /// much). That never waits on another process and never touches the
    /// work of a live one.
    ///
    /// A relative `root` is made absolute against the working directory
    /// first: everything kiln derives from the root (snapshots, a RUN
    /// step's rootfs in its bundle, the runtime's state) must name the
    /// same place from wherever it is read.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        let root = std::path::absolute(&root).map_err(Error::io("resolving", &root))?;
        let content = root.join("content");
        for dir in [
            &root,
            &content.join("blobs").join("sha256"),
            &root.join("tmp"),
            &root.join("leases"),
        ] {
            fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        }
        let reclaimed = lease::reclaim(&root);
        let store = Store {
            lease: Lease::create(&root)?,
            root,
            content,
            reclaimed,
        };
        let layout = store.content.join("oci-layout");
        let index = store.index_path();
        if !layout.exists() || !index.exists() {
            // Re-checked under the lock: two processes creating the store at
            // once must not write an empty index over a freshly tagged one.
            let _lock = store.lock(Mode::Exclusive)?;
            if !layout.exists() {
                fsutil::write_atomic(store.tmp_dir(), &layout, OCI_LAYOUT.as_bytes())?;
            }
            if !index.exists() {
                store.write_index(&IndexFile::default())?;
            }
        }
        Ok(store)
    }

    /// The root kiln uses when none is given, from the values of the
    /// variables that move it (the caller reads its environment; this crate
    /// reads none): `kiln_root` (`$KILN_ROOT`) if set, else `/var/lib/kiln`
    /// for root, else `xdg_data_home/kiln` or `~/.local/share/kiln`.
    ///
    /// On Windows there is no root whose store is the system's (an
    /// elevated administrator has its own profile), and the home fallback
    /// is `home\AppData\Local\kiln`, where Windows programs keep local data
    /// (`home` being the profile directory, `%USERPROFILE%`).
    pub fn default_root(
        kiln_root: Option<PathBuf>,
        xdg_data_home: Option<PathBuf>,
        home: Option<PathBuf>,
    ) -> Result<PathBuf> {
        if let Some(root) = kiln_root {
            return Ok(root);
        }
        if let Some(root) = crate::sys::system_root() {
            return Ok(root);
        }
        if let Some(data) = xdg_data_home {
            return Ok(data.join("kiln"));
        }
        match home {
            Some(home) => Ok(crate::sys::home_root(&home)),
            None => Err(Error::invalid(
                "store location",
                "neither KILN_ROOT, XDG_DATA_HOME nor HOME is set; set KILN_ROOT or pass --root",
            )),
        }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The OCI image layout directory (`<root>/content`).
    pub fn layout_dir(&self) -> &Path {
        &self.content
    }

    /// The directory for this store's work in flight, `tmp/<lease>`: it is
    /// on the same file system as the layout, so finished files can be
    /// renamed into place, and it belongs to this `Store`'s lease, so GC
    /// leaves it alone while the `Store` lives and removes it once the
    /// process is gone, however it ended.
    pub fn tmp_dir(&self) -> &Path {
        self.lease.tmp()
    }

    /// This `Store`'s lease id: other components name what they own after
    /// it (kiln's RUN containers do), and [`Store::lease_is_live`] tells
    /// whether its owner still runs.
    pub fn lease_id(&self) -> &str {
        self.lease.id()
    }

    /// Whether the lease `id` of the store at `root` is held by a running
    /// process. Takes no lock that could make anyone wait.
    pub fn lease_is_live(root: &Path, id: &str) -> bool {
        lease::is_live(root, id)
    }

    /// What [`Store::open`] removed that dead processes had left.
    pub fn reclaimed(&self) -> LeaseUsage {
        self.reclaimed
    }

    /// The other processes using the store now, and the bytes of their
    /// temporary files.
    pub fn in_flight(&self) -> LeaseUsage {
        lease::in_flight(&self.root, self.lease.id())
    }

    /// Adds the blob `digest` to this `Store`'s lease, so GC keeps it until
    /// the `Store` is dropped even when no image uses it (a layer a build
    /// takes from its cache, a base image's blobs); returns whether the
    /// blob is in the store. Blobs this `Store` commits are held already.
    pub fn hold(&self, digest: &Digest) -> Result<bool> {
        // Under the index lock, which GC holds exclusively: the blob is
        // either gone before this looks, or kept.
        let _lock = self.lock(Mode::Shared)?;
        self.lease.hold(digest)?;
        Ok(self.has_blob(digest))
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// True if the blob is in the store.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::BlobNotFound {
                digest: *digest,
                root: self.root.clone(),
            },
            _ => Error::io("opening", &path)(e),
        })
    }

    /// Reads a whole blob; meant for manifests and configs, not layers.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut out)
            .map_err(Error::io("reading", &self.blob_path(digest)))?;
        Ok(out)
    }

    /// Stores `bytes` as a blob.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<BlobInfo> {
        let mut w = self.ingest()?;
        w.write_all(bytes).map_err(Error::io("writing", &w.path))?;
        w.commit(Some(Digest::of(bytes)))
    }

    /// Starts writing a blob: write its bytes, then [`BlobWriter::commit`].
    /// A writer dropped without committing leaves nothing behind.
    pub fn ingest(&self) -> Result<BlobWriter<'_>> {
        self.start_blob(true)
    }

    /// Like [`Store::ingest`], for a writer that hashes the bytes it writes
    /// itself (kiln-oci's layer writer does, in the same pass that
    /// compresses them): the store does not hash them again, and
    /// [`BlobWriter::commit`] must be given the digest, which it trusts.
    /// That saves a sha256 pass over every new layer (~0.5 s per GiB).
    pub fn ingest_prehashed(&self) -> Result<BlobWriter<'_>> {
        self.start_blob(false)
    }

    fn start_blob(&self, hash: bool) -> Result<BlobWriter<'_>> {
        let tmp = tempfile::Builder::new()
            .prefix("ingest-")
            .tempfile_in(self.tmp_dir())
            .map_err(Error::io("creating a temporary file in", self.tmp_dir()))?;
        let path = tmp.path().to_path_buf();
        let buf = BufWriter::with_capacity(256 * 1024, tmp);
        Ok(BlobWriter {
            store: self,
            inner: if hash {
                Sink::Hashed(DigestWriter::new(buf))
            } else {
                Sink::Counted(buf, 0)
            },
            path,
        })
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.content.join("blobs").join("sha256")
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.content.join("index.json")
    }

    pub(crate) fn lock(&self, mode: Mode) -> Result<Lock> {
        Lock::acquire(&self.root.join("index.lock"), mode)
    }

    /// Reads `index.json`; the caller holds the index lock.
    pub(crate) fn read_index(&self) -> Result<IndexFile> {
        let path = self.index_path();
        let bytes = fs::read(&path).map_err(Error::io("reading", &path))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::invalid(
                path.display().to_string(),
                format!("not a valid OCI index: {e}"),
            )
        })
    }

    /// Replaces `index.json`; the caller holds the index lock exclusively.
    pub(crate) fn write_index(&self, index: &IndexFile) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(index)
            .map_err(|e| Error::invalid("index.json", format!("cannot be written: {e}")))?;
        bytes.push(b'\n');
        fsutil::write_atomic(self.tmp_dir(), &self.index_path(), &bytes)
    }
}

/// A blob being written. Bytes go to a temp file in `<root>/tmp` while
/// being hashed; [`BlobWriter::commit`] makes the blob durable and visible.
pub struct BlobWriter<'a> {
    store: &'a Store,
    inner: Sink,
    path: PathBuf,
}

/// Where a blob's bytes go: through a hasher, or (pre-hashed) only counted.
enum Sink {
    Hashed(DigestWriter<BufWriter<tempfile::NamedTempFile>>),
    Counted(BufWriter<tempfile::NamedTempFile>, u64),
}

impl BlobWriter<'_> {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        match &self.inner {
            Sink::Hashed(w) => w.len(),
            Sink::Counted(_, n) => *n,
        }
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Finishes the blob: checks it against `expected` (if given), fsyncs
    /// it, and renames it into `blobs/sha256/` (unless it was there
    /// already). Either way the blob is held by the store's lease from then
    /// on, so GC keeps it until it is tagged or the `Store` is dropped.
    pub fn commit(self, expected: Option<Digest>) -> Result<BlobInfo> {
        let (digest, size, buf) = match self.inner {
            Sink::Hashed(w) => w.finish(),
            Sink::Counted(buf, size) => match expected {
                Some(digest) => (digest, size, buf),
                None => {
                    return Err(Error::invalid(
                        self.path.display().to_string(),
                        "a blob written with ingest_prehashed needs its digest to commit",
                    ))
                }
            },
        };
        let tmp = buf
            .into_inner()
            .map_err(|e| Error::io("writing", &self.path)(e.into_error()))?;
        if let Some(expected) = expected {
            if expected != digest {
                return Err(Error::DigestMismatch {
                    what: format!("blob being written ({size} bytes)"),
                    expected,
                    actual: digest,
                });
            }
        }
        let dest = self.store.blob_path(&digest);
        // Held before it is looked for or placed, under the lock GC takes
        // exclusively: a GC sees the blob held, or runs before it exists.
        let _lock = self.store.lock(Mode::Shared)?;
        self.store.lease.hold(&digest)?;
        if dest.is_file() {
            return Ok(BlobInfo { digest, size });
        }
        tmp.as_file()
            .sync_all()
            .map_err(Error::io("syncing", &self.path))?;
        fsutil::set_readable(tmp.as_file(), &self.path)?;
        tmp.persist(&dest)
            .map_err(|e| Error::io("renaming a blob into", &dest)(e.error))?;
        fsutil::sync_dir(&self.store.blobs_dir())?;
        Ok(BlobInfo { digest, size })
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Sink::Hashed(w) => w.write(buf),
            Sink::Counted(w, n) => {
                let written = w.write(buf)?;
                *n += written as u64;
                Ok(written)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Sink::Hashed(w) => w.flush(),
            Sink::Counted(w, _) => w.flush(),
        }
    }
}
