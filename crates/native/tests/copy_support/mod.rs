//! Helpers shared by the COPY and ADD tests: contexts on disk with exact
//! modes and times, image file systems in a temporary store, and a
//! one-line-per-entry rendering of layer entries.
#![allow(dead_code)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kiln_oci::tree::FileIdentity;

use kiln_frontend::dockerignore::Matcher;
use kiln_frontend::instructions::{AddInstruction, CopyInstruction, Source};
use kiln_native::copy::{add, copy, CopyContext, CopyOutput, CopySource, Error};
use kiln_native::imagefs::ImageFs;
use kiln_oci::{write_layer, Compression, EntryKind, FileSource, LayerEntry, LayerOptions};
use kiln_store::{Descriptor, Store};

/// The SOURCE_DATE_EPOCH every harness uses: directories COPY creates and
/// inline files get it as their mtime.
pub const EPOCH: i64 = 1_700_000_000;

pub struct Harness {
    pub context: std::path::PathBuf,
    pub ignore: Matcher,
    pub dest_fs: ImageFs,
    pub workdir: String,
    pub env: Vec<(String, String)>,
    pub scratch: tempfile::TempDir,
    pub hashed: Option<std::sync::Arc<HashMap<std::path::PathBuf, FileIdentity>>>,
}

impl Harness {
    pub fn new(context: &Path) -> Harness {
        Harness {
            context: context.to_path_buf(),
            ignore: Matcher::default(),
            dest_fs: ImageFs::empty(),
            workdir: "/".into(),
            env: Vec::new(),
            scratch: tempfile::tempdir().unwrap(),
            hashed: None,
        }
    }

    fn ctx(&self) -> CopyContext<'_> {
        CopyContext {
            context_dir: &self.context,
            ignore: &self.ignore,
            dest_fs: &self.dest_fs,
            workdir: &self.workdir,
            env: &self.env,
            source_date_epoch: Some(EPOCH),
            scratch_dir: self.scratch.path(),
            hashed: self.hashed.clone(),
        }
    }

    pub fn copy(&self, instr: &CopyInstruction) -> Result<CopyOutput, Error> {
        copy(&self.ctx(), CopySource::Context, instr)
    }

    pub fn copy_from(
        &self,
        instr: &CopyInstruction,
        fs: &ImageFs,
        store: &Store,
    ) -> Result<CopyOutput, Error> {
        copy(&self.ctx(), CopySource::Stage(fs, store), instr)
    }

    pub fn add(&self, instr: &AddInstruction) -> Result<CopyOutput, Error> {
        add(&self.ctx(), instr)
    }
}

pub fn cp(sources: &[&str], dest: &str) -> CopyInstruction {
    CopyInstruction {
        sources: sources
            .iter()
            .map(|s| Source::Path(s.to_string()))
            .collect(),
        dest: dest.into(),
        from: None,
        chown: None,
        chmod: None,
        link: false,
        excludes: Vec::new(),
        parents: false,
        json_form: false,
    }
}

pub fn add_instr(sources: &[&str], dest: &str) -> AddInstruction {
    AddInstruction {
        sources: sources
            .iter()
            .map(|s| Source::Path(s.to_string()))
            .collect(),
        dest: dest.into(),
        chown: None,
        chmod: None,
        link: false,
        excludes: Vec::new(),
        keep_git_dir: false,
        checksum: None,
        unpack: None,
        json_form: false,
    }
}

/// `path kind mode uid:gid @mtime`; file contents are shown inline and
/// symlinks leave out their mtime (the host sets it).
pub fn list(entries: &[LayerEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            let kind = match &e.kind {
                EntryKind::File(FileSource::Path(p)) => {
                    format!(
                        "file({})",
                        String::from_utf8_lossy(&std::fs::read(p).unwrap())
                    )
                }
                EntryKind::File(FileSource::Tree(t)) => {
                    format!(
                        "file({})",
                        String::from_utf8_lossy(&std::fs::read(t.full_path()).unwrap())
                    )
                }
                EntryKind::File(FileSource::Bytes(b)) => {
                    format!("file({})", String::from_utf8_lossy(b))
                }
                EntryKind::Dir => "dir".into(),
                EntryKind::Symlink(t) => format!("symlink({t})"),
                EntryKind::Hardlink(t) => format!("hardlink({t})"),
                other => format!("{other:?}"),
            };
            let time = match (&e.kind, e.uid) {
                (EntryKind::Symlink(_), 0) if e.mtime > EPOCH => String::new(),
                _ => format!(" @{}", e.mtime),
            };
            format!("{} {kind} {:o} {}:{}{time}", e.path, e.mode, e.uid, e.gid)
        })
        .collect()
}

pub fn set_mtime(path: &Path, mtime: i64) {
    let ts = rustix::fs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

pub fn file(root: &Path, path: &str, contents: &str, mode: u32, mtime: i64) {
    let p = root.join(path);
    std::fs::write(&p, contents).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(&p, mtime);
}

pub fn mkdir(root: &Path, path: &str, mode: u32, mtime: i64) {
    let p = root.join(path);
    std::fs::create_dir(&p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(&p, mtime);
}

pub fn symlink(root: &Path, path: &str, target: &str) {
    std::os::unix::fs::symlink(target, root.join(path)).unwrap();
}

pub fn hardlink(root: &Path, existing: &str, new: &str) {
    std::fs::hard_link(root.join(existing), root.join(new)).unwrap();
}

/// Gives everything under `root` to uid:gid when running as root, so the
/// tests see COPY reset context owners.
pub fn chown_tree(root: &Path, uid: u32, gid: u32) {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).unwrap();
        if path.symlink_metadata().unwrap().is_dir() {
            chown_tree(&path, uid, gid);
        }
    }
}

pub fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

pub fn layer(store: &Store, entries: Vec<LayerEntry>) -> Descriptor {
    let options = LayerOptions {
        compression: Compression::Gzip(1),
        threads: 1,
        ..LayerOptions::default()
    };
    let (desc, writer) = write_layer(entries, &options, store.ingest().unwrap()).unwrap();
    writer.commit(Some(desc.digest)).unwrap();
    Descriptor::new(desc.media_type, desc.digest, desc.size)
}
