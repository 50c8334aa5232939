//! An unpacked root file system as a comparable map: path → metadata and a
//! content digest. Mtimes are left out on purpose: the two builders stamp
//! files at different times, and the reproducibility test checks them
//! separately.

use kiln_oci::Digest;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// What a path is, with what identifies its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// sha256 and size of the content.
    File(String, u64),
    Symlink(String),
    CharDevice(u64),
    BlockDevice(u64),
    Fifo,
    Socket,
}

/// One path of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits with setuid/setgid/sticky, no type bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// For a file with more than one link: the first path (in sorted
    /// order) of the same inode, so hard-link groups are compared too.
    pub hardlink_of: Option<String>,
}

/// A whole tree, keyed by absolute path ("/" is the root itself).
pub type Tree = BTreeMap<String, Node>;

/// Reads the tree under `root` without following symlinks.
pub fn scan(root: &Path) -> Result<Tree, String> {
    let mut tree = Tree::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    walk(root, "/", &mut tree, &mut inodes)?;
    Ok(tree)
}

fn walk(
    path: &Path,
    name: &str,
    tree: &mut Tree,
    inodes: &mut HashMap<(u64, u64), String>,
) -> Result<(), String> {
    let meta = fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        let target = fs::read_link(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Kind::Symlink(target.to_string_lossy().into_owned())
    } else if ft.is_file() {
        let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Kind::File(Digest::of(&bytes).hex(), meta.len())
    } else if ft.is_char_device() {
        Kind::CharDevice(meta.rdev())
    } else if ft.is_block_device() {
        Kind::BlockDevice(meta.rdev())
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        Kind::Socket
    };
    let hardlink_of = if ft.is_file() && meta.nlink() > 1 {
        let first = inodes
            .entry((meta.dev(), meta.ino()))
            .or_insert_with(|| name.to_string());
        (first != name).then(|| first.clone())
    } else {
        None
    };
    tree.insert(
        name.to_string(),
        Node {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            xattrs: xattrs(path),
            hardlink_of,
        },
    );
    if ft.is_dir() {
        let mut children: Vec<_> = fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        children.sort();
        for child in children {
            let child_name = if name == "/" {
                format!("/{}", child.to_string_lossy())
            } else {
                format!("{name}/{}", child.to_string_lossy())
            };
            walk(&path.join(&child), &child_name, tree, inodes)?;
        }
    }
    Ok(())
}

/// Extended attributes, sorted; SELinux labels are the host's business, not
/// the image's.
fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 65536];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if name == "security.selinux" {
            continue;
        }
        let mut value = vec![0u8; 65536];
        if let Ok(len) = rustix::fs::lgetxattr(path, name.as_str(), &mut value) {
            out.push((name, value[..len].to_vec()));
        }
    }
    out.sort();
    out
}

impl Node {
    /// A node written in a case's expect.json:
    /// `{"type": "file", "mode": "0644", "uid": 0, "gid": 0, "content": "…"}`,
    /// `{"type": "dir", …}` or `{"type": "symlink", "target": "…", …}`.
    pub fn from_json(path: &str, v: &Value) -> Result<Node, String> {
        let field = |k: &str| v.get(k).ok_or_else(|| format!("{path}: missing {k:?}"));
        let mode_str = field("mode")?
            .as_str()
            .ok_or_else(|| format!("{path}: mode must be an octal string"))?;
        let mode = u32::from_str_radix(mode_str, 8)
            .map_err(|e| format!("{path}: mode {mode_str:?}: {e}"))?;
        let id = |k: &str| -> Result<u32, String> {
            field(k)?
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("{path}: {k} must be a number"))
        };
        let kind = match field("type")?.as_str() {
            Some("dir") => Kind::Dir,
            Some("file") => {
                let content = field("content")?
                    .as_str()
                    .ok_or_else(|| format!("{path}: content must be a string"))?;
                Kind::File(Digest::of(content.as_bytes()).hex(), content.len() as u64)
            }
            Some("symlink") => Kind::Symlink(
                field("target")?
                    .as_str()
                    .ok_or_else(|| format!("{path}: target must be a string"))?
                    .to_string(),
            ),
            other => return Err(format!("{path}: unknown type {other:?}")),
        };
        Ok(Node {
            kind,
            mode,
            uid: id("uid")?,
            gid: id("gid")?,
            xattrs: Vec::new(),
            hardlink_of: None,
        })
    }

    fn describe(&self) -> String {
        let kind = match &self.kind {
            Kind::Dir => "dir".to_string(),
            Kind::File(sha, size) => format!("file sha256:{} size {size}", &sha[..12]),
            Kind::Symlink(t) => format!("symlink -> {t}"),
            Kind::CharDevice(d) => format!("char device {d:#x}"),
            Kind::BlockDevice(d) => format!("block device {d:#x}"),
            Kind::Fifo => "fifo".to_string(),
            Kind::Socket => "socket".to_string(),
        };
        let mut s = format!("{kind} {:04o} {}:{}", self.mode, self.uid, self.gid);
        if !self.xattrs.is_empty() {
            let names: Vec<_> = self.xattrs.iter().map(|(n, _)| n.as_str()).collect();
            s.push_str(&format!(" xattrs {names:?}"));
        }
        if let Some(first) = &self.hardlink_of {
            s.push_str(&format!(" (hard link of {first})"));
        }
        s
    }
}

/// Every path where `actual` differs from `expected`, one line each.
pub fn diff(expected: &Tree, actual: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (path, want) in expected {
        match actual.get(path) {
            None => out.push(format!("{path}: missing (want {})", want.describe())),
            Some(got) if got != want => out.push(format!(
                "{path}: got {}, want {}",
                got.describe(),
                want.describe()
            )),
            Some(_) => {}
        }
    }
    for (path, got) in actual {
        if !expected.contains_key(path) {
            out.push(format!("{path}: unexpected {}", got.describe()));
        }
    }
    out
}
