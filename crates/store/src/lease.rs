//! Leases, as containerd has them: each process that opens the store holds
//! one from its first moment to its last, and everything it has in flight
//! belongs to it, so that GC and the cleanup of killed processes can tell
//! work in progress from leftovers without guessing from pids or ages.
//!
//! A lease `ID` is the directory `leases/ID/` with a `lock` file the owner
//! holds an exclusive flock on, and a `blobs` file listing (one digest a
//! line) the blobs the owner wrote or uses but may not have tagged yet; its
//! work in flight is under `tmp/ID/`. An flock ends with its process however
//! that dies, so a lease whose lock can be taken is dead, and whatever it
//! owned can go.
//!
//! A lease is made as `leases/.new-ID/`, locked, and only then renamed into
//! place, so a visible lease is always locked by a live owner or dead; its
//! `tmp/ID/` is made after the rename, so an entry of `tmp/` with no
//! visible, locked lease is a leftover.
//!
//! On Windows the lock is the `lock` file held open without sharing, and a
//! lease is made in place, as a directory cannot be renamed there while a
//! file in it is open: see the `sys` module's Windows side.

use crate::error::{Error, Result};
use crate::sys;
use kiln_oci::Digest;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const LEASES: &str = "leases";
const LOCK: &str = "lock";
use crate::sys::{BLOBS, NEW};

/// What the cleanup of dead leases removed, or what live ones hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseUsage {
    /// How many leases.
    pub leases: usize,
    /// The bytes of their files in `tmp/`.
    pub bytes: u64,
}

/// This process's lease on a store; dropping it ends the lease and removes
/// its work directory.
#[derive(Debug)]
pub(crate) struct Lease {
    id: String,
    tmp: PathBuf,
    /// The `blobs` file, and how many holds each blob has: a process
    /// running several builds (`kiln serve`) may hold one blob for each.
    held: Mutex<(File, HashMap<Digest, usize>)>,
    _lock: File,
    /// Last, so that on Windows, where it is removed when dropped, the
    /// files above are closed by then (fields drop in order).
    dir: sys::LeaseDir,
}

impl Lease {
    /// Takes a new lease on the store at `root` and makes its `tmp/` directory.
    pub(crate) fn create(root: &Path) -> Result<Lease> {
        let leases = root.join(LEASES);
        let mut last = None;
        // Another process reclaiming `.new-` directories may take ours
        // between its creation and its lock; a fresh id then does it.
        for _ in 0..8 {
            let id = new_id();
            match sys::make_lease(&leases, &id, LOCK, BLOBS) {
                Ok((dir, lock, blobs)) => {
                    let tmp = root.join("tmp").join(&id);
                    fs::create_dir(&tmp).map_err(Error::io("creating", &tmp))?;
                    return Ok(Lease {
                        id,
                        tmp,
                        held: Mutex::new((blobs, HashMap::new())),
                        _lock: lock,
                        dir: sys::LeaseDir(dir),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::invalid(leases.display().to_string(), "no lease")))
    }

    /// The lease's id, which names its directories.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The lease's work directory, `tmp/ID`.
    pub(crate) fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// Adds `digest` to the blobs GC keeps while the lease lives (once
    /// more, if it holds it already).
    pub(crate) fn hold(&self, digest: &Digest) -> Result<()> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.1.get_mut(digest) {
            *n += 1;
            return Ok(());
        }
        let path = self.dir.0.join(BLOBS);
        writeln!(held.0, "{digest}").map_err(Error::io("writing", &path))?;
        held.1.insert(*digest, 1);
        Ok(())
    }

    /// Gives back one hold of `digest`; true when none is left. The
    /// `blobs` file keeps its line: it only ever makes GC keep a blob while
    /// the lease lives.
    pub(crate) fn release(&self, digest: &Digest) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match held.1.get_mut(digest) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                held.1.remove(digest);
                true
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // The work directory first: one left without its lease is reclaimed.
        let _ = fs::remove_dir_all(&self.tmp);
        self.dir.remove_while_held();
    }
}

fn new_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{}.{nanos:x}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether the lease `id` of the store at `root` is held by a live process.
/// A lease being reclaimed counts as live for that moment, which only ever
/// errs on the side of keeping things.
pub fn is_live(root: &Path, id: &str) -> bool {
    if id.starts_with('.') || id.contains('/') {
        return false;
    }
    sys::is_held(&root.join(LEASES).join(id).join(LOCK))
}

/// Removes what dead leases left: their `tmp/` directories (unmounting
/// anything mounted in them first), their lease directories, and entries
/// of `tmp/` no live lease owns. Never waits on a lock and never touches a
/// live lease; what cannot be removed now is tried again next time.
pub(crate) fn reclaim(root: &Path) -> LeaseUsage {
    let leases = root.join(LEASES);
    let tmp = root.join("tmp");
    let mut usage = LeaseUsage::default();
    for name in names(&leases) {
        let dir = leases.join(&name);
        if name.starts_with(NEW) {
            match sys::take_if_free(&dir.join(LOCK)) {
                // Its maker is between mkdir and creating the lock; it
                // retries if the directory goes.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let _ = fs::remove_dir(&dir);
                }
                Err(_) => {}
                Ok(Some(taken)) => sys::remove_taken(&dir, taken),
                Ok(None) => {}
            }
            continue;
        }
        let lock = sys::take_if_free(&dir.join(LOCK));
        let dead = match &lock {
            Ok(taken) => taken.is_some(),
            Err(e) => {
                e.kind() == io::ErrorKind::NotFound && sys::lockless_lease_is_dead(&dir, BLOBS)
            }
        };
        if dead {
            usage.leases += 1;
            usage.bytes += remove_work(&tmp.join(&name));
            match lock {
                Ok(Some(taken)) => sys::remove_taken(&dir, taken),
                _ => {
                    let _ = fs::remove_dir_all(&dir);
                }
            }
        }
    }
    for name in names(&tmp) {
        if !is_live(root, &name) {
            usage.bytes += remove_work(&tmp.join(&name));
        }
    }
    usage
}

/// The blobs live leases hold, but for those of the lease `except`.
pub(crate) fn held_blobs(root: &Path, except: Option<&str>) -> HashSet<Digest> {
    let leases = root.join(LEASES);
    let mut held = HashSet::new();
    for name in names(&leases) {
        if Some(name.as_str()) == except || !is_live(root, &name) {
            continue;
        }
        let text = fs::read_to_string(leases.join(&name).join(BLOBS)).unwrap_or_default();
        held.extend(text.lines().filter_map(|l| l.parse::<Digest>().ok()));
    }
    held
}

/// The live leases other than `own`, and the bytes of their work in flight.
pub(crate) fn in_flight(root: &Path, own: &str) -> LeaseUsage {
    let mut usage = LeaseUsage::default();
    for name in names(&root.join(LEASES)) {
        if name != own && is_live(root, &name) {
            usage.leases += 1;
            usage.bytes += tree_size(&root.join("tmp").join(&name));
        }
    }
    usage
}

fn names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Removes a dead lease's work, returning the bytes it took.
fn remove_work(path: &Path) -> u64 {
    sys::unmount_under(path);
    let size = tree_size(path);
    let removed = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => return 0,
    };
    if removed.is_ok() {
        size
    } else {
        0
    }
}

/// The bytes of the files under `path`, not following symlinks.
fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| tree_size(&e.path()))
        .sum()
}
