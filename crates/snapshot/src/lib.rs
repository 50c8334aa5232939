//! Snapshots for RUN steps: unpacked layers, writable roots on top of them,
//! and what a step changed, as layer entries.
//!
//! Like containerd's snapshotters, this only prepares, commits and removes;
//! it knows nothing of Dockerfiles or stores. Everything lives under one
//! root (the engine passes `$KILN_ROOT/snapshots`):
//!
//! - `layers/<hex>/`: each layer unpacked once, keyed by its diff_id, in
//!   overlayfs' format (whiteouts are 0/0 character devices, opaque
//!   directories carry `trusted.overlay.opaque=y`, or `user.overlay.opaque`
//!   where the overlay needs `userxattr`), so overlay can use it as a lower
//!   directory as is;
//! - `active/<id>/`: a writable root in use, with an `owner` file (pid and
//!   process start time) that lets [`Snapshotter::open`] tell a killed
//!   build's leftovers from a live one; `upper`, `work` and `merged` for
//!   overlay, `merged` alone for the copy driver;
//! - `tmp/`: work in flight (layers being unpacked, snapshots being set up),
//!   named after the owning process and renamed into place when complete;
//! - `verified/<hex>`: how the layer `layers/<hex>/` was checked (see
//!   `verify.rs`); a layer without one is not used;
//! - `xattr-namespace`: which xattr namespace the layers' opaque markers use.
//!
//! Two drivers share that layout. [`DriverKind::Overlay`] mounts overlayfs;
//! [`DriverKind::Copy`] works anywhere by copying the merged layers, which
//! it resolves the way overlayfs would, straight from the layer
//! directories: each file is copied once from the layer that shows it, and
//! the blobs (which this crate never keeps) are not needed again.
//!
//! ```no_run
//! use kiln_snapshot::Snapshotter;
//! # fn demo(base: kiln_oci::Digest, blob: &[u8], layer_tar_diff_id: kiln_oci::Digest)
//! #     -> Result<(), kiln_snapshot::Error> {
//! let snapshots = Snapshotter::open("/var/lib/kiln/snapshots".as_ref(), None)?;
//! snapshots.ensure_layer(&base, blob)?;
//! let active = snapshots.prepare(&[base])?;
//! // ... run the step with active.rootfs() as its root ...
//! let changes = active.changes()?; // -> kiln_oci::write_layer
//! active.commit(&layer_tar_diff_id)?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod copy;
mod diff;
mod error;
mod fsutil;
mod mount;
mod owner;
mod verify;
mod view;

pub use error::Error;

use copy::Format;
use kiln_oci::{extract_layer, Digest, ExtractOptions, LayerEntry, Whiteouts};
use owner::Owner;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use tempfile::TempDir;
use verify::Record;

/// How writable roots are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverKind {
    /// An overlayfs mount over the layer directories: instant, and the
    /// upper directory is the change set.
    Overlay,
    /// A full copy of the merged layers, diffed against them afterwards:
    /// slower, but needs no mount permission.
    Copy,
}

/// The snapshots under one root directory.
#[derive(Debug)]
pub struct Snapshotter {
    root: PathBuf,
    driver: DriverKind,
    userxattr: bool,
    restore_owners: bool,
    owner: Owner,
}

const XATTR_NAMESPACE_FILE: &str = "xattr-namespace";

impl Snapshotter {
    /// Opens (creating) `root`. `driver: None` picks overlay when a probe
    /// overlay mount works here, else copy; `Some(kind)` forces one (and
    /// forcing overlay where it cannot work is an error saying why).
    ///
    /// Also cleans what killed builds left: active snapshots whose owner
    /// process is gone are unmounted (detached) and removed, and their
    /// half-unpacked layers in `tmp/` too. This is best effort: what cannot
    /// be removed now is tried again by the next `open`.
    pub fn open(root: &Path, driver: Option<DriverKind>) -> Result<Snapshotter, Error> {
        for dir in [
            root.to_path_buf(),
            root.join("layers"),
            root.join("verified"),
            root.join("active"),
            root.join("tmp"),
        ] {
            fs::create_dir_all(&dir).map_err(Error::io("creating the directory", &dir))?;
        }
        let is_root = rustix::process::geteuid().is_root();
        let mut s = Snapshotter {
            root: root.to_path_buf(),
            driver: DriverKind::Copy,
            userxattr: false,
            restore_owners: is_root,
            owner: Owner::current(),
        };
        s.userxattr = s.xattr_namespace(is_root && mount::in_initial_user_namespace())?;
        remove_stale(&s.root);
        s.driver = match driver {
            Some(DriverKind::Copy) => DriverKind::Copy,
            Some(DriverKind::Overlay) => {
                s.probe().map_err(|e| Error::OverlayUnavailable {
                    root: s.root.clone(),
                    source: Box::new(e),
                })?;
                DriverKind::Overlay
            }
            None if s.probe().is_ok() => DriverKind::Overlay,
            None => DriverKind::Copy,
        };
        Ok(s)
    }

    /// The driver in use.
    pub fn driver(&self) -> DriverKind {
        self.driver
    }

    /// Whether the layer `diff_id` is unpacked and vouched for.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).is_dir() && Record::read(&self.record_path(diff_id)).is_some()
    }

    /// Unpacks the layer blob (gzip, zstd or plain tar; `blob` gives its
    /// bytes) as the layer `diff_id`, unless it already is. It goes through
    /// kiln_oci's extractor, which refuses entries escaping the layer, into
    /// `tmp/`, and is renamed into place only once the blob's uncompressed
    /// digest is `diff_id`, so a layer is never seen half unpacked or under
    /// another layer's name, and processes racing on the same diff_id all
    /// succeed (the first rename wins, the others drop their copy).
    pub fn ensure_layer(&self, diff_id: &Digest, blob: impl Read + Send) -> Result<(), Error> {
        if self.has_layer(diff_id) {
            return Ok(());
        }
        let dest = self.layer_dir(diff_id);
        let stage = self.stage()?;
        let options = ExtractOptions {
            whiteouts: Whiteouts::Overlay {
                userxattr: self.userxattr,
            },
            restore_owners: self.restore_owners,
            replace_in_the_way: false,
        };
        let got = extract_layer(blob, stage.path(), diff_id, &options).map_err(|source| {
            Error::Extract {
                path: stage.path().to_path_buf(),
                source,
            }
        })?;
        if got != *diff_id {
            return Err(Error::DiffIdMismatch {
                expected: *diff_id,
                got,
            });
        }
        let tree = verify::tree_digest(stage.path())
            .map_err(Error::io("hashing the unpacked layer in", stage.path()))?;
        if self.has_layer(diff_id) {
            // Another process finished first.
            return Ok(());
        }
        // A directory without a record was unpacked by a kiln that did not
        // verify diff_ids (a published layer always has its record first):
        // set it aside (mounts using it keep it) for tmp/'s cleaning.
        let unverified = dest.is_dir() && Record::read(&self.record_path(diff_id)).is_none();
        self.write_record(diff_id, &Record::Unpacked(tree))?;
        if unverified {
            let aside = self.stage()?.keep();
            fs::rename(&dest, aside.join("unverified"))
                .map_err(Error::io("setting aside the unverified layer", &dest))?;
        }
        publish(stage, &dest)
    }

    /// Checks every unpacked layer against its record: a layer without one
    /// (unpacked before kiln verified diff_ids) or whose tree changed since
    /// it was unpacked is a problem, worded for `kiln fsck`.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for dir in list_dirs(&self.root.join("layers")) {
            let Some(hex) = dir.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let record = self.root.join("verified").join(hex);
            match Record::read(&record) {
                None => problems.push(format!(
                    "snapshot layer {} was never checked against its diff_id sha256:{hex}; \
                     kiln unpacks it again before using it (remove the directory to reclaim its space)",
                    dir.display()
                )),
                Some(Record::Committed) => {}
                Some(Record::Unpacked(tree)) => match verify::tree_digest(&dir) {
                    Ok(now) if now == tree => {}
                    Ok(_) => problems.push(format!(
                        "snapshot layer {} (diff_id sha256:{hex}) changed on disk since it was unpacked; \
                         remove it and {} so kiln unpacks it again",
                        dir.display(),
                        record.display()
                    )),
                    Err(e) => problems.push(format!(
                        "snapshot layer {} (diff_id sha256:{hex}) cannot be read: {e}",
                        dir.display()
                    )),
                },
            }
        }
        problems
    }

    fn record_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("verified").join(diff_id.hex())
    }

    /// Writes a layer's record atomically (through `tmp/`).
    fn write_record(&self, diff_id: &Digest, record: &Record) -> Result<(), Error> {
        write_record_in(&self.root, self.owner, diff_id, record)
    }

    /// A writable root on top of the layers `parents` (bottom first; all
    /// must have been ensured; none for `FROM scratch`). A layer found
    /// more than once (two steps that made the same change) is stacked
    /// only where it is top-most: overlayfs refuses one directory twice
    /// (ELOOP), and the lower copy changes nothing, since the upper one has
    /// the last word on every path either names.
    pub fn prepare(&self, parents: &[Digest]) -> Result<Active, Error> {
        let mut lowers = Vec::with_capacity(parents.len());
        let mut seen = std::collections::HashSet::new();
        for diff_id in parents.iter().rev() {
            if !seen.insert(diff_id) {
                continue;
            }
            let dir = self.layer_dir(diff_id);
            if !dir.is_dir() {
                return Err(Error::MissingLayer {
                    diff_id: *diff_id,
                    layers: self.root.join("layers"),
                });
            }
            lowers.push(dir);
        }
        let stage = self.stage()?;
        let staged = stage.path();
        let owner_file = staged.join("owner");
        fs::write(&owner_file, self.owner.record())
            .map_err(Error::io("writing the owner of", &owner_file))?;
        let mut subdirs = vec!["merged"];
        if self.driver == DriverKind::Overlay {
            subdirs.extend(["upper", "work"]);
            if lowers.is_empty() {
                subdirs.push("lower");
            }
        }
        for sub in subdirs {
            let p = staged.join(sub);
            fsutil::mkdir_0755(&p).map_err(Error::io("creating the directory", &p))?;
        }
        let name = staged.file_name().unwrap_or_default().to_owned();
        let dir = self.root.join("active").join(name);
        let staged = stage.keep();
        if let Err(e) = fs::rename(&staged, &dir) {
            // Best effort: a leftover in tmp/ is cleaned by the next open.
            let _ = fsutil::remove_all(&staged);
            return Err(Error::Io {
                action: "moving the new snapshot to",
                path: dir,
                source: e,
            });
        }
        let mut active = Active {
            rootfs: dir.join("merged"),
            dir,
            driver: self.driver,
            lowers,
            format_key: opaque_key(self.userxattr),
            restore_owners: self.restore_owners,
            root: self.root.clone(),
            owner: self.owner,
            mounted: false,
            prepared: (0, 0),
        };
        match self.driver {
            DriverKind::Overlay => {
                let empty = [active.dir.join("lower")];
                let lowers = if active.lowers.is_empty() {
                    &empty[..]
                } else {
                    &active.lowers[..]
                };
                mount::Overlay {
                    lowers,
                    upper: &active.dir.join("upper"),
                    work: &active.dir.join("work"),
                    target: &active.rootfs,
                    userxattr: self.userxattr,
                }
                .mount()?;
                active.mounted = true;
            }
            DriverKind::Copy => {
                copy::copy_tree(&active.lowers, &active.rootfs, active.format())?;
                let mark = active.dir.join("prepared");
                fs::write(&mark, b"").map_err(Error::io("writing", &mark))?;
                let md =
                    fs::metadata(&mark).map_err(Error::io("reading the metadata of", &mark))?;
                active.prepared = (md.ctime(), md.ctime_nsec());
            }
        }
        Ok(active)
    }

    fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    /// A new directory in `tmp/` named after this process, mode 0755.
    fn stage(&self) -> Result<TempDir, Error> {
        stage_in(&self.root, self.owner)
    }

    /// Reads (or, for a new root, records) which xattr namespace the
    /// layers' opaque markers use, and returns whether it is `user` (the
    /// overlay then needs `userxattr`). `trusted` is overlayfs' default but
    /// needs real root; `user` works for everyone, real root included.
    fn xattr_namespace(&self, trusted_ok: bool) -> Result<bool, Error> {
        let file = self.root.join(XATTR_NAMESPACE_FILE);
        match fs::read_to_string(&file) {
            Ok(stored) => match stored.trim() {
                "user" => Ok(true),
                "trusted" if trusted_ok => Ok(false),
                other => Err(Error::XattrNamespace {
                    root: self.root.clone(),
                    stored: other.to_string(),
                    needed: "user",
                    why: if rustix::process::geteuid().is_root() {
                        "runs in a user namespace"
                    } else {
                        "is not root"
                    },
                }),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let chosen = if trusted_ok { "trusted" } else { "user" };
                // Unique within the process too: several builds of one
                // process (a pipeline's) open snapshotters at once, and the
                // owner prefix names the process only.
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let stage = self.root.join("tmp").join(format!(
                    "{}{n}-{XATTR_NAMESPACE_FILE}",
                    self.owner.name_prefix()
                ));
                fs::write(&stage, format!("{chosen}\n")).map_err(Error::io("writing", &stage))?;
                // Another process may have recorded it first: theirs stands.
                let placed =
                    fsutil::rename_noreplace(&stage, &file).map_err(Error::io("writing", &file))?;
                if placed {
                    Ok(!trusted_ok)
                } else {
                    let _ = fs::remove_file(&stage);
                    self.xattr_namespace(trusted_ok)
                }
            }
            Err(e) => Err(Error::Io {
                action: "reading",
                path: file,
                source: e,
            }),
        }
    }

    /// Removes what killed processes left under the snapshot root `root`
    /// (what [`Snapshotter::open`] does first), without opening it: no
    /// directory is created and no overlay probed, so any kiln command can
    /// afford it. Snapshots of live processes are left alone. Returns the
    /// bytes of the files removed.
    pub fn remove_stale(root: &Path) -> u64 {
        remove_stale(root)
    }

    /// Mounts (and unmounts) a one-layer overlay with the options snapshots
    /// use, in `tmp/`.
    fn probe(&self) -> Result<(), Error> {
        let stage = self.stage()?;
        let p = stage.path();
        for sub in ["lower", "upper", "work", "merged"] {
            let d = p.join(sub);
            fs::create_dir(&d).map_err(Error::io("creating the directory", &d))?;
        }
        let target = p.join("merged");
        mount::Overlay {
            lowers: &[p.join("lower")],
            upper: &p.join("upper"),
            work: &p.join("work"),
            target: &target,
            userxattr: self.userxattr,
        }
        .mount()?;
        mount::unmount(&target, true)
    }
}

fn opaque_key(userxattr: bool) -> &'static str {
    if userxattr {
        "user.overlay.opaque"
    } else {
        "trusted.overlay.opaque"
    }
}

fn stage_in(root: &Path, owner: Owner) -> Result<TempDir, Error> {
    let tmp = root.join("tmp");
    let stage = tempfile::Builder::new()
        .prefix(&owner.name_prefix())
        .tempdir_in(&tmp)
        .map_err(Error::io("creating a work directory in", &tmp))?;
    fsutil::chmod_0755(stage.path()).map_err(Error::io("setting the mode of", stage.path()))?;
    Ok(stage)
}

/// Renames the finished `stage` to `dest`; when another process got there
/// first, its copy stands and ours goes.
fn write_record_in(
    root: &Path,
    owner: Owner,
    diff_id: &Digest,
    record: &Record,
) -> Result<(), Error> {
    let stage = stage_in(root, owner)?;
    let tmp = stage.path().join("record");
    fs::write(&tmp, record.text()).map_err(Error::io("writing", &tmp))?;
    let dest = root.join("verified").join(diff_id.hex());
    fs::rename(&tmp, &dest).map_err(Error::io("moving the layer record to", &dest))
}

fn publish(stage: TempDir, dest: &Path) -> Result<(), Error> {
    let staged = stage.keep();
    let placed = fsutil::rename_noreplace(&staged, dest);
    if placed.as_ref().map_or(true, |placed| !placed) {
        // Best effort: a leftover in tmp/ is cleaned by the next open.
        let _ = fsutil::remove_all(&staged);
    }
    placed
        .map(drop)
        .map_err(Error::io("moving the finished layer to", dest))
}

/// Removes what dead processes left in `active/` and `tmp/` of `root`.
fn remove_stale(root: &Path) -> u64 {
    let mut removed = 0;
    for dir in list_dirs(&root.join("active")) {
        let owner = fs::read_to_string(dir.join("owner"))
            .ok()
            .and_then(|t| Owner::parse_record(&t));
        if !owner.is_some_and(|o| o.is_alive()) {
            removed += remove_leftover(&dir);
        }
    }
    for path in list_dirs(&root.join("tmp")) {
        let owner = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(Owner::from_name);
        if owner.is_some_and(|o| !o.is_alive()) {
            removed += remove_leftover(&path);
        }
    }
    removed
}

fn list_dirs(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect()
}

/// Unmounts and removes a dead snapshot or work directory, unless its mount
/// cannot be taken away (then removing would fail on the mount point).
/// Returns the bytes of the files removed.
fn remove_leftover(dir: &Path) -> u64 {
    let merged = dir.join("merged");
    if mount::is_mount_point(&merged) {
        let _ = mount::unmount(&merged, true);
        if mount::is_mount_point(&merged) {
            return 0;
        }
    }
    // Measured once nothing is mounted in it, so only its own files count.
    let size = fsutil::tree_size(dir);
    match fsutil::remove_all(dir) {
        Ok(()) => size,
        Err(_) => 0,
    }
}

/// A writable root in use. Dropping it unmounts and removes it (errors
/// ignored: the next [`Snapshotter::open`] retries).
#[derive(Debug)]
pub struct Active {
    dir: PathBuf,
    rootfs: PathBuf,
    driver: DriverKind,
    /// Layer directories, top-most first.
    lowers: Vec<PathBuf>,
    format_key: &'static str,
    restore_owners: bool,
    root: PathBuf,
    owner: Owner,
    mounted: bool,
    /// For the copy driver: the ctime of a file written once the copy was
    /// complete; files with older ctimes are untouched since.
    prepared: (i64, i64),
}

impl Active {
    /// The directory to use as the container's root file system (the
    /// overlay mount point, or the copy).
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// What changed since [`Snapshotter::prepare`], as layer entries in
    /// layer order, ready for `kiln_oci::write_layer`: deleted paths as
    /// [`kiln_oci::EntryKind::Whiteout`], directories that hide everything
    /// the layers had in them followed by a
    /// [`kiln_oci::EntryKind::Opaque`] entry, every changed path's parent
    /// directories, hard links among the changed files as
    /// [`kiln_oci::EntryKind::Hardlink`]. Files are
    /// [`kiln_oci::FileSource::Tree`]s into this snapshot, valid while it
    /// lives and unchanged.
    ///
    /// With overlay this is a walk of the upper directory. The copy driver
    /// compares the copy with the layers (type, mode, owner, size, mtime,
    /// link target, xattrs; contents only of files touched since prepare
    /// whose metadata all match) and gives the same entries, with one
    /// difference: a directory whose every lower entry was deleted is
    /// recorded opaque, whether or not it was removed and made again.
    pub fn changes(&self) -> Result<Vec<LayerEntry>, Error> {
        match self.driver {
            DriverKind::Overlay => {
                diff::upper_changes(&self.dir.join("upper"), &self.lowers, self.format_key)
            }
            DriverKind::Copy => {
                copy::changes(&self.rootfs, &self.lowers, self.prepared, self.format())
            }
        }
    }

    /// Unmounts and keeps this snapshot's changes as the unpacked layer
    /// `diff_id` (the engine writes the layer tar from [`Active::changes`]
    /// first, then commits with the tar's diff_id), so the next step on top
    /// of it needs no extraction. For overlay the upper directory is that
    /// layer already and is renamed into place; the copy driver moves the
    /// changed files into a new layer directory. When the layer exists
    /// already, it stays and this snapshot is just removed.
    pub fn commit(mut self, diff_id: &Digest) -> Result<(), Error> {
        let dest = self.root.join("layers").join(diff_id.hex());
        if dest.is_dir() {
            return Ok(());
        }
        match self.driver {
            DriverKind::Overlay => {
                mount::unmount(&self.rootfs, false)?;
                self.mounted = false;
                let upper = self.dir.join("upper");
                write_record_in(&self.root, self.owner, diff_id, &Record::Committed)?;
                fsutil::rename_noreplace(&upper, &dest)
                    .map(drop)
                    .map_err(Error::io("moving the committed layer to", &dest))
            }
            DriverKind::Copy => {
                let entries = self.changes()?;
                let stage = stage_in(&self.root, self.owner)?;
                copy::write_layer_dir(&entries, stage.path(), self.format())?;
                write_record_in(&self.root, self.owner, diff_id, &Record::Committed)?;
                publish(stage, &dest)
            }
        }
    }

    fn format(&self) -> Format<'static> {
        Format {
            opaque_key: self.format_key,
            restore_owners: self.restore_owners,
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if self.mounted && mount::unmount(&self.rootfs, true).is_err() {
            // Removing would go through the mount into the container's files.
            return;
        }
        let _ = fsutil::remove_all(&self.dir);
    }
}
