//! Build contexts across the wire: the client's walk ([`scan`]), the
//! daemon's content-addressed cache of context files ([`BlobCache`]) and
//! the directory a build runs on ([`materialise`]).
//!
//! Only `.dockerignore` filters what is sent: the daemon's engine resolves
//! COPY and ADD sources (globs, `--parents`, ONBUILD triggers of base
//! images the client has never seen) itself, so the client cannot know
//! which files a build reads without running the engine's plan against
//! the daemon's base images. Unchanged files cost a digest each: the cache
//! keeps contents by digest across builds and clients.

use crate::proto::{check_digest, check_path, ContextEntry, EntryKind, ErrorBody, ErrorKind};
use crate::Error;
use kiln_frontend::dockerignore::{self, Matcher};
use kiln_oci::name::to_path;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// A context as the client found it.
#[derive(Clone, Debug, Default)]
pub struct LocalContext {
    /// Its entries, sorted by path.
    pub entries: Vec<ContextEntry>,
    /// Each distinct file content: digest → a file holding it and its size.
    pub files: BTreeMap<String, (PathBuf, u64)>,
}

/// Walks `dir` as a build with `dockerfile` would see it: entries that
/// `.dockerignore` (or `<dockerfile>.dockerignore`) excludes are left out,
/// and each regular file is hashed. Sockets, FIFOs and devices are left
/// out too: a context cannot carry them (BuildKit's COPY skips them).
///
/// With `reads` (what the build reads, from the daemon), only those paths,
/// their parent directories and what lies under them are walked and hashed;
/// a symlink among them brings its target in too, as COPY follows a
/// source's links within the context.
pub fn scan(
    dir: &Path,
    dockerfile: &Path,
    reads: Option<&[String]>,
) -> Result<LocalContext, Error> {
    let matcher = dockerignore::load(dir, dockerfile).map_err(|e| Error::Config(e.to_string()))?;
    let mut wanted: Option<Vec<String>> = reads.map(<[String]>::to_vec);
    loop {
        let mut out = LocalContext::default();
        walk(dir, "", &matcher, wanted.as_deref(), &mut out)?;
        out.entries.sort_by(|a, b| a.path.cmp(&b.path));
        let Some(list) = &mut wanted else {
            return Ok(out);
        };
        let before = list.len();
        for entry in &out.entries {
            if let Some(target) = entry
                .target
                .as_deref()
                .and_then(|t| link_target(&entry.path, t))
            {
                if !wants(list, &target) {
                    list.push(target);
                }
            }
        }
        if list.len() == before {
            return Ok(out);
        }
    }
}

/// `path` is read (or leads to what is): it is one of `reads`, under one,
/// or a directory above one.
fn wants(reads: &[String], path: &str) -> bool {
    reads.iter().any(|r| {
        r.is_empty()
            || path == r
            || path
                .strip_prefix(r.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
            || r.strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Where the link at `path` (context-relative) with `target` points, as a
/// context-relative path: the engine resolves links inside the context,
/// so an absolute target starts at its root and `..` stops there.
fn link_target(path: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = match (target.starts_with('/'), path.rsplit_once('/')) {
        (true, _) | (false, None) => Vec::new(),
        (false, Some((parent, _))) => parent.split('/').collect(),
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn walk(
    dir: &Path,
    rel: &str,
    matcher: &Matcher,
    reads: Option<&[String]>,
    out: &mut LocalContext,
) -> Result<(), Error> {
    let here = if rel.is_empty() {
        dir.to_path_buf()
    } else {
        dir.join(to_path(rel))
    };
    let mut names: Vec<_> = fs::read_dir(&here)
        .map_err(Error::io("reading the directory", &here))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(Error::io("reading the directory", &here))?;
    names.sort();
    for name in names {
        // Names that are not UTF-8 travel spelled as `kiln_oci::name`
        // spells them; the daemon turns them back into their bytes.
        let name =
            kiln_oci::name::from_os_string(name).map_err(|e| Error::Config(e.to_string()))?;
        let path = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        if reads.is_some_and(|r| !wants(r, &path)) {
            continue;
        }
        let full = dir.join(to_path(&path));
        let meta = fs::symlink_metadata(&full).map_err(Error::io("reading", &full))?;
        let excluded = matcher.is_excluded(&path);
        let entry = |kind, size, digest, target| ContextEntry {
            path: path.clone(),
            kind,
            mode: kiln_oci::tree::mode_of(&meta),
            mtime: kiln_oci::tree::mtime_of(&meta),
            size,
            digest,
            target,
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            if matcher.may_skip_dir(&path) {
                continue;
            }
            if !excluded {
                out.entries.push(entry(EntryKind::Dir, 0, None, None));
            }
            walk(dir, &path, matcher, reads, out)?;
        } else if excluded {
            continue;
        } else if ft.is_symlink() {
            let target = fs::read_link(&full).map_err(Error::io("reading the link", &full))?;
            let target = kiln_oci::name::from_os_string(target.into_os_string())
                .map_err(|e| Error::Config(e.to_string()))?;
            out.entries
                .push(entry(EntryKind::Symlink, 0, None, Some(target)));
        } else if ft.is_file() {
            let (digest, size) = hash_file(&full)?;
            out.files.insert(digest.clone(), (full.clone(), size));
            out.entries
                .push(entry(EntryKind::File, size, Some(digest), None));
        }
    }
    Ok(())
}

fn hash_file(path: &Path) -> Result<(String, u64), Error> {
    let mut file = File::open(path).map_err(Error::io("reading", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(Error::io("reading", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), size))
}

/// The daemon's content-addressed cache of context files:
/// `DIR/sha256/<hex>`, each written whole under a temporary name and
/// renamed once its digest is checked, so a client vanishing mid-upload
/// leaves no partial blob.
#[derive(Clone, Debug)]
pub struct BlobCache {
    dir: PathBuf,
}

impl BlobCache {
    /// Opens (making it if need be) the cache in `dir`, removing uploads an
    /// earlier daemon left unfinished.
    pub fn open(dir: &Path) -> Result<BlobCache, Error> {
        let cache = BlobCache {
            dir: dir.to_path_buf(),
        };
        let _ = fs::remove_dir_all(cache.tmp());
        for d in [cache.dir.join("sha256"), cache.tmp()] {
            fs::create_dir_all(&d).map_err(Error::io("creating", &d))?;
        }
        Ok(cache)
    }

    fn tmp(&self) -> PathBuf {
        self.dir.join("uploading")
    }

    /// Where the blob `hex` lives.
    pub fn path(&self, hex: &str) -> PathBuf {
        self.dir.join("sha256").join(hex)
    }

    /// The digests among `digests` that the cache lacks.
    pub fn missing(&self, digests: &[String]) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for d in digests {
            let hex = check_digest(d).map_err(bad_request)?;
            if !self.path(hex).is_file() {
                out.push(d.clone());
            }
        }
        Ok(out)
    }

    /// Starts an upload of the blob `digest`.
    pub fn upload(&self, digest: &str) -> Result<Upload, Error> {
        let hex = check_digest(digest).map_err(bad_request)?.to_string();
        let file = tempfile::NamedTempFile::new_in(self.tmp())
            .map_err(Error::io("creating a file in", &self.tmp()))?;
        Ok(Upload {
            file,
            hasher: Sha256::new(),
            size: 0,
            hex,
            dest: self.dir.join("sha256"),
        })
    }
}

/// A blob being received; dropped unfinished, it leaves nothing.
pub struct Upload {
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    size: u64,
    hex: String,
    dest: PathBuf,
}

impl Upload {
    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        let path = self.file.path().to_path_buf();
        self.file
            .write_all(bytes)
            .map_err(Error::io("writing", &path))
    }

    /// Checks the digest and puts the blob in the cache; returns its size.
    pub fn finish(self) -> Result<u64, Error> {
        let got = hex::encode(self.hasher.finalize());
        if got != self.hex {
            return Err(bad_request(format!(
                "the upload of sha256:{} has digest sha256:{got}; nothing was stored",
                self.hex
            )));
        }
        let dest = self.dest.join(&self.hex);
        let tmp = self.file.path().to_path_buf();
        self.file
            .as_file()
            .sync_all()
            .map_err(Error::io("syncing", &tmp))?;
        self.file
            .persist(&dest)
            .map_err(|e| Error::io("storing", &dest)(e.error))?;
        Ok(self.size)
    }
}

fn bad_request(message: String) -> Error {
    Error::Remote(ErrorBody {
        kind: ErrorKind::BadRequest,
        message,
    })
}

/// Makes the context `entries` describe in the empty directory `dest`,
/// files copied from `cache`. Every path is checked first ([`check_path`]),
/// and an entry below a symlink of the context is refused, so nothing is
/// ever written outside `dest`.
pub fn materialise(cache: &BlobCache, entries: &[ContextEntry], dest: &Path) -> Result<(), Error> {
    let mut seen = BTreeSet::new();
    let mut links = BTreeSet::new();
    for e in entries {
        check_path(&e.path).map_err(bad_request)?;
        if !seen.insert(e.path.as_str()) {
            return Err(bad_request(format!(
                "the context path {:?} is listed twice",
                e.path
            )));
        }
        if e.kind == EntryKind::Symlink {
            links.insert(e.path.as_str());
        }
        match e.kind {
            EntryKind::File => {
                let digest = e.digest.as_deref().unwrap_or_default();
                let hex =
                    check_digest(digest).map_err(|m| bad_request(format!("{}: {m}", e.path)))?;
                if !cache.path(hex).is_file() {
                    return Err(bad_request(format!(
                        "{}: the daemon has no blob {digest}; upload it first (PUT /v1/blobs/{digest})",
                        e.path
                    )));
                }
            }
            EntryKind::Symlink if e.target.as_deref().unwrap_or_default().is_empty() => {
                return Err(bad_request(format!(
                    "{}: a symlink without a target",
                    e.path
                )));
            }
            _ => {}
        }
    }
    for e in entries {
        let mut parent = Path::new(&e.path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            if links.contains(p.to_str().unwrap_or_default()) {
                return Err(bad_request(format!(
                    "the context path {:?} is below the symlink {:?}, which would lead outside the context",
                    e.path,
                    p.display()
                )));
            }
            parent = p.parent();
        }
    }
    let mut sorted: Vec<&ContextEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for e in &sorted {
        let path = dest.join(to_path(&e.path));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(Error::io("creating", parent))?;
        }
        match e.kind {
            EntryKind::Dir => fs::create_dir_all(&path).map_err(Error::io("creating", &path))?,
            EntryKind::File => {
                let hex =
                    check_digest(e.digest.as_deref().unwrap_or_default()).map_err(bad_request)?;
                // A copy, not a hard link: the entry's mode and mtime are
                // its own, and a build must not change the cached blob.
                fs::copy(cache.path(hex), &path).map_err(Error::io("writing", &path))?;
            }
            EntryKind::Symlink => symlink(to_path(e.target.as_deref().unwrap_or_default()), &path)
                .map_err(Error::io("creating the symlink", &path))?,
        }
    }
    // Modes and times last, deepest first, so making a directory's
    // entries neither needs its write bit nor moves its mtime.
    for e in sorted.iter().rev() {
        if e.kind == EntryKind::Symlink {
            continue;
        }
        let path = dest.join(to_path(&e.path));
        set_times(&path, e.mtime)?;
        set_mode(&path, e.mode & 0o7777).map_err(Error::io("setting the mode of", &path))?;
    }
    Ok(())
}

#[cfg(unix)]
fn symlink(target: impl AsRef<Path>, path: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, path)
}

/// A file symlink: the context's symlinks are read as links by the build,
/// never followed into, so which kind Windows makes matters not.
#[cfg(windows)]
fn symlink(target: impl AsRef<Path>, path: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_file(target, path)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// NTFS keeps only "read-only" of a mode; the build reads it back as
/// BuildKit does a Windows context (0555 or 0755).
#[cfg(windows)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    let mut permissions = fs::metadata(path)?.permissions();
    permissions.set_readonly(mode & 0o222 == 0);
    fs::set_permissions(path, permissions)
}

fn set_times(path: &Path, mtime: i64) -> Result<(), Error> {
    let when = if mtime >= 0 {
        UNIX_EPOCH + Duration::from_secs(mtime as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(mtime.unsigned_abs())
    };
    let file = File::open(path).map_err(Error::io("opening", path))?;
    file.set_times(fs::FileTimes::new().set_modified(when).set_accessed(when))
        .map_err(|e| Error::io("setting the times of", path)(io::Error::new(e.kind(), e)))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn file_entry(path: &str, digest: &str) -> ContextEntry {
        ContextEntry {
            path: path.into(),
            kind: EntryKind::File,
            mode: 0o644,
            mtime: 1_700_000_000,
            size: 3,
            digest: Some(digest.into()),
            target: None,
        }
    }

    #[test]
    fn scan_then_materialise_gives_the_tree_back() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("app/sub")).unwrap();
        fs::create_dir_all(s.join("skip")).unwrap();
        fs::write(s.join("app/a.txt"), "aaa").unwrap();
        fs::write(s.join("app/sub/b.sh"), "bbb").unwrap();
        fs::set_permissions(s.join("app/sub/b.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(s.join("skip/x"), "x").unwrap();
        fs::write(s.join(".dockerignore"), "skip\n*.log\n").unwrap();
        fs::write(s.join("debug.log"), "log").unwrap();
        std::os::unix::fs::symlink("a.txt", s.join("app/link")).unwrap();
        let ctx = scan(s, &s.join("Dockerfile"), None).unwrap();
        let paths: Vec<&str> = ctx.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".dockerignore",
                "app",
                "app/a.txt",
                "app/link",
                "app/sub",
                "app/sub/b.sh"
            ]
        );

        let cache_dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(cache_dir.path()).unwrap();
        let wanted: Vec<String> = ctx.files.keys().cloned().collect();
        assert_eq!(cache.missing(&wanted).unwrap(), wanted);
        for (digest, (path, _)) in &ctx.files {
            let mut up = cache.upload(digest).unwrap();
            up.write(&fs::read(path).unwrap()).unwrap();
            up.finish().unwrap();
        }
        assert!(cache.missing(&wanted).unwrap().is_empty());

        let out = tempfile::tempdir().unwrap();
        materialise(&cache, &ctx.entries, out.path()).unwrap();
        let o = out.path();
        assert_eq!(fs::read_to_string(o.join("app/sub/b.sh")).unwrap(), "bbb");
        assert_eq!(
            fs::metadata(o.join("app/sub/b.sh")).unwrap().mode() & 0o7777,
            0o755
        );
        assert_eq!(
            fs::read_link(o.join("app/link")).unwrap(),
            Path::new("a.txt")
        );
        assert_eq!(
            fs::metadata(o.join("app/a.txt")).unwrap().mtime(),
            fs::metadata(s.join("app/a.txt")).unwrap().mtime()
        );
        assert!(!o.join("skip").exists() && !o.join("debug.log").exists());
    }

    /// Names and link targets that are not UTF-8 reach the daemon's copy
    /// of the context with their bytes (the protocol carries them spelled
    /// as `kiln_oci::name` spells them).
    #[test]
    fn names_that_are_not_utf8_travel_with_their_bytes() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        let raw = |root: &Path, b: &[u8]| root.join(OsStr::from_bytes(b));
        fs::create_dir(raw(s, b"d\xe9r")).unwrap();
        fs::write(raw(s, b"d\xe9r/f\xff"), "bytes").unwrap();
        std::os::unix::fs::symlink(OsStr::from_bytes(b"d\xe9r"), raw(s, b"l\xe9")).unwrap();
        let ctx = scan(s, &s.join("Dockerfile"), None).unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(cache_dir.path()).unwrap();
        for (digest, (path, _)) in &ctx.files {
            let mut up = cache.upload(digest).unwrap();
            up.write(&fs::read(path).unwrap()).unwrap();
            up.finish().unwrap();
        }
        let out = tempfile::tempdir().unwrap();
        materialise(&cache, &ctx.entries, out.path()).unwrap();
        let o = out.path();
        assert_eq!(
            fs::read_to_string(raw(o, b"d\xe9r/f\xff")).unwrap(),
            "bytes"
        );
        assert_eq!(
            fs::read_link(raw(o, b"l\xe9"))
                .unwrap()
                .as_os_str()
                .as_bytes(),
            b"d\xe9r"
        );
    }

    #[test]
    fn a_scan_for_what_a_build_reads_walks_that_its_parents_and_link_targets() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("app/sub")).unwrap();
        fs::create_dir_all(s.join("big")).unwrap();
        fs::create_dir_all(s.join("shared")).unwrap();
        fs::write(s.join("app/sub/main.rs"), "fn main() {}").unwrap();
        fs::write(s.join("big/unused.bin"), vec![7u8; 4096]).unwrap();
        fs::write(s.join("shared/lib.rs"), "lib").unwrap();
        fs::write(s.join("top.txt"), "top").unwrap();
        std::os::unix::fs::symlink("../shared/lib.rs", s.join("app/lib.rs")).unwrap();
        let reads = ["app".to_string()];
        let ctx = scan(s, &s.join("Dockerfile"), Some(&reads)).unwrap();
        let paths: Vec<&str> = ctx.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "app",
                "app/lib.rs",
                "app/sub",
                "app/sub/main.rs",
                "shared",
                "shared/lib.rs"
            ]
        );
        assert_eq!(ctx.files.len(), 2);
        // Without a list, everything goes.
        let all = scan(s, &s.join("Dockerfile"), None).unwrap();
        assert_eq!(all.entries.len(), 9);
    }

    #[test]
    fn link_targets_stay_inside_the_context() {
        assert_eq!(link_target("a/b/l", "../c").as_deref(), Some("a/c"));
        assert_eq!(link_target("a/l", "/etc/x").as_deref(), Some("etc/x"));
        assert_eq!(link_target("l", "../../x").as_deref(), Some("x"));
        assert_eq!(link_target("a/l", ".."), None);
        assert!(wants(&["a/b".into()], "a"));
        assert!(wants(&["a/b".into()], "a/b/c"));
        assert!(!wants(&["a/b".into()], "a/bc"));
        assert!(!wants(&["a/b".into()], "c"));
    }

    #[test]
    fn a_wrong_digest_stores_nothing() {
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(cache_dir.path()).unwrap();
        let digest = format!("sha256:{}", "0".repeat(64));
        let mut up = cache.upload(&digest).unwrap();
        up.write(b"not it").unwrap();
        assert!(up.finish().unwrap_err().to_string().contains("has digest"));
        assert_eq!(
            cache.missing(std::slice::from_ref(&digest)).unwrap(),
            [digest]
        );
    }

    #[test]
    fn paths_escaping_the_context_are_refused() {
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(cache_dir.path()).unwrap();
        let out = tempfile::tempdir().unwrap();
        let digest = format!("sha256:{}", "0".repeat(64));
        for bad in ["../evil", "/etc/evil", "a/../../evil"] {
            let err = materialise(&cache, &[file_entry(bad, &digest)], out.path()).unwrap_err();
            assert!(err.to_string().contains("context path"), "{err}");
        }
        // A file below a symlink of the context would be written wherever
        // the link points.
        let link = ContextEntry {
            path: "l".into(),
            kind: EntryKind::Symlink,
            mode: 0o777,
            mtime: 0,
            size: 0,
            digest: None,
            target: Some("/etc".into()),
        };
        let mut up = cache
            .upload(&format!("sha256:{}", hex::encode(Sha256::digest(b"abc"))))
            .unwrap();
        up.write(b"abc").unwrap();
        up.finish().unwrap();
        let abc = format!("sha256:{}", hex::encode(Sha256::digest(b"abc")));
        let err =
            materialise(&cache, &[link, file_entry("l/passwd", &abc)], out.path()).unwrap_err();
        assert!(err.to_string().contains("below the symlink"), "{err}");
        assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0);
    }
}
