//! COPY and ADD as BuildKit 1.26 runs them (the Dockerfile frontend's
//! `dispatchCopy` and fsutil's `copy`), producing the entries of the
//! step's layer instead of writing to a snapshot.
//!
//! The rules, from BuildKit:
//!
//! * Sources are relative to the context root; a leading `/` is dropped
//!   and `..` that would leave the context is refused (BuildKit silently
//!   stays at the root instead). Wildcards (`*`, `?`, `[…]`, Go's
//!   `filepath.Match`) are matched below the first component that has one;
//!   a wildcard matching nothing copies nothing and is not an error. Paths
//!   `.dockerignore` excludes do not exist for COPY.
//! * A source symlink is followed (inside the context; a link that leads
//!   out of it is an error); symlinks inside copied directories are copied
//!   as links. A directory's contents are copied, not the directory.
//! * The destination is relative to WORKDIR. It is a directory when it ends
//!   in `/` (or is `.`), or when it already is one (through symlinks,
//!   resolved inside the image's root); otherwise a file source becomes
//!   that path. BuildKit does not insist on a trailing `/` for several
//!   sources or wildcards: each is copied in turn, so a later file replaces
//!   an earlier one at a file destination (the classic builder refused).
//!   Missing parent directories are created root-owned with mode 0755, or
//!   with the `--chown` owner and the `--chmod` mode; existing ones are put
//!   in the layer as they are.
//! * Files from the context keep mode, mtime and xattrs and are owned by
//!   root; from a stage or image they keep their owners. `--chown` and
//!   `--chmod` (octal, or symbolic like `u+x,g-w`) apply to every copied
//!   file and directory; an octal `--chmod` keeps setuid/setgid/sticky bits
//!   of the source, as fsutil masks it with 0777. A destination directory
//!   that already existed keeps its metadata.
//! * Directories COPY creates itself (the destination of a directory copy
//!   such as `COPY site/ /www/`, and missing parents) get the build's time,
//!   or `SOURCE_DATE_EPOCH`, not the source directory's: fsutil's `Copy`
//!   makes them with `MkdirAll` before copying into them and then keeps
//!   their times (`copyDirectoryOnly` finds them present, so
//!   `copyFileInfo` is skipped); dockerd 20.10's BuildKit gives the same.
//!   Two `--no-cache` builds give the same layer only with
//!   `SOURCE_DATE_EPOCH`, as with BuildKit.
//! * `--link` (without `--chmod`, which BuildKit then ignores `--link` for)
//!   builds the layer as if on an empty file system: destination symlinks
//!   are not followed, parent directories are created in the layer, and
//!   `--chown` takes numeric ids or `root` only.
//! * `--parents` keeps each source's path below the context root, or below
//!   a `/./` pivot in the source.
//! * ADD extracts local tar archives (plain, gzip, bzip2, xz, zstd, found
//!   by content) into the destination with the archive's own owners and
//!   modes; URLs are downloaded (mode 0600, mtime from `Last-Modified`,
//!   named after the URL path) and git repositories checked out.

pub(crate) mod archive;
mod dest;
mod mode;
pub(crate) mod paths;
pub(crate) mod remote;
mod tree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kiln_frontend::dockerignore::Matcher;
use kiln_frontend::instructions::{AddInstruction, CopyInstruction, Heredoc, Source};
use kiln_frontend::shell::Lexer;
use kiln_oci::tree::FileIdentity;
use kiln_oci::{Digest, LayerEntry};
use kiln_store::Store;

use crate::imagefs::ImageFs;
use dest::{CopyJob, Layer, Options};
use paths::{clean_clamped, clean_components, normalize_dest, parent, split_wildcards};
use tree::{walk_matches, DiskTree, ImageTree, NodeKind, Tree};

/// What a COPY or ADD step works with besides the instruction.
pub struct CopyContext<'a> {
    /// The build context (or a named `--build-context` directory).
    pub context_dir: &'a Path,
    /// The context's `.dockerignore` rules.
    pub ignore: &'a Matcher,
    /// The stage's file system so far: destination symlinks, existing
    /// directories and `--chown` names are looked up here.
    pub dest_fs: &'a ImageFs,
    /// The current WORKDIR (absolute), for relative destinations.
    pub workdir: &'a str,
    /// The step's variables, for heredoc bodies that expand.
    pub env: &'a [(String, String)],
    /// `SOURCE_DATE_EPOCH`: used as the mtime of what COPY creates itself
    /// (parent directories, inline files) instead of the current time.
    pub source_date_epoch: Option<i64>,
    /// A directory the step may use; the caller deletes it afterwards.
    pub scratch_dir: &'a Path,
    /// The context's regular files as the build cache hashed them for the
    /// step's key, by path relative to `context_dir`: a source that is not
    /// the file hashed fails the step rather than go into a layer that
    /// would be found by another file's digest. `None` when not keyed.
    pub hashed: Option<Arc<HashMap<PathBuf, FileIdentity>>>,
}

/// Where `COPY --from` points, already resolved by the engine.
#[derive(Clone, Copy)]
pub enum CopySource<'a> {
    /// The build context.
    Context,
    /// A stage's or an image's file system, and the store with its layers.
    Stage(&'a ImageFs, &'a Store),
}

/// What a COPY or ADD adds.
#[derive(Debug)]
pub struct CopyOutput {
    /// The layer's entries in layer order, parent directories included.
    pub entries: Vec<LayerEntry>,
    /// A digest of the sources, for the build cache (not computed yet).
    pub source_digest: Option<Digest>,
}

/// A COPY or ADD that failed; the message names the instruction and what
/// is wrong with which path.
#[derive(Debug, thiserror::Error)]
#[error("{instruction} failed: {kind}")]
pub struct Error {
    /// `COPY` or `ADD`.
    pub instruction: &'static str,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// What went wrong in a COPY or ADD.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A source does not exist.
    #[error("{}", not_found(path, place))]
    NotFound {
        /// The source, relative to its root.
        path: String,
        /// Where it was looked for.
        place: String,
    },
    /// A source path climbs out of the build context with `..`.
    #[error("source path {path:?} escapes the build context: sources are relative to the context root, so `..` cannot leave it")]
    Escapes {
        /// The source as written.
        path: String,
    },
    /// A symlink in the context points outside it.
    #[error("{path:?} resolves through a symlink that points outside the build context; only files inside the context can be copied")]
    SymlinkEscapes {
        /// The source being resolved.
        path: String,
    },
    /// Symlinks that point at each other.
    #[error("too many levels of symbolic links resolving {path}")]
    SymlinkLoop {
        /// The path being resolved.
        path: String,
    },
    /// A destination (or one of its parents) exists and is not a directory.
    #[error("cannot copy into {path}: it exists and is not a directory")]
    NotADirectory {
        /// The destination path.
        path: String,
    },
    /// A file would replace a directory.
    #[error("cannot replace the directory {path} with a file")]
    ReplaceDir {
        /// The destination path.
        path: String,
    },
    /// A bad `--chmod`.
    #[error("{reason}")]
    Chmod {
        /// What is wrong with it.
        reason: String,
    },
    /// A `--chown` that cannot be resolved.
    #[error("--chown={spec}: {reason}")]
    Chown {
        /// The value as written.
        spec: String,
        /// Why.
        reason: String,
    },
    /// A bad `--exclude` pattern.
    #[error("--exclude: {reason}")]
    Exclude {
        /// What is wrong with it.
        reason: String,
    },
    /// The build context could not be listed.
    #[error("reading the build context: {reason}")]
    Context {
        /// Why.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{what}: {reason}")]
    Io {
        /// What was being done, naming the path.
        what: String,
        /// The system's error.
        reason: String,
    },
    /// A local archive that could not be extracted.
    #[error("extracting {path}: {reason}")]
    Archive {
        /// The archive's source path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A download failed.
    #[error("downloading {url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A download's digest is not the one `--checksum` asked for.
    #[error("checksum mismatch for {url}: --checksum is {expected} but the download is {actual}")]
    Checksum {
        /// The URL.
        url: String,
        /// The `--checksum` value.
        expected: String,
        /// The digest of what was downloaded.
        actual: String,
    },
    /// A git checkout failed.
    #[error("fetching git repository {url}: {reason}")]
    Git {
        /// The repository.
        url: String,
        /// Why.
        reason: String,
    },
    /// An instruction BuildKit refuses (a URL in COPY, a checksum for a
    /// local file, …).
    #[error("{0}")]
    Invalid(String),
}

fn not_found(path: &str, place: &str) -> String {
    if place == "build context" {
        format!("file not found in build context or excluded by .dockerignore: stat {path}: file does not exist")
    } else {
        format!("{path}: not found in {place}")
    }
}

/// Whether an ADD source is a git repository.
pub(crate) fn is_remote_git(src: &str) -> bool {
    remote::GitRef::parse(src).is_some()
}

/// Whether an ADD source is an http(s) URL.
pub(crate) fn is_remote_http(src: &str) -> bool {
    remote::is_http(src)
}

/// Runs a COPY: from the context, or from the stage or image `from`.
pub fn copy(
    ctx: &CopyContext,
    from: CopySource,
    instr: &CopyInstruction,
) -> Result<CopyOutput, Error> {
    let step = Step {
        sources: &instr.sources,
        dest: &instr.dest,
        chown: instr.chown.as_deref(),
        chmod: instr.chmod.as_deref(),
        link: instr.link,
        excludes: &instr.excludes,
        parents: instr.parents,
        add: None,
    };
    run(ctx, from, &step).map_err(|kind| Error {
        instruction: "COPY",
        kind,
    })
}

/// Runs an ADD: local paths (tar archives extracted), http(s) URLs and git
/// repositories.
pub fn add(ctx: &CopyContext, instr: &AddInstruction) -> Result<CopyOutput, Error> {
    let step = Step {
        sources: &instr.sources,
        dest: &instr.dest,
        chown: instr.chown.as_deref(),
        chmod: instr.chmod.as_deref(),
        link: instr.link,
        excludes: &instr.excludes,
        parents: false,
        add: Some(instr),
    };
    run(ctx, CopySource::Context, &step).map_err(|kind| Error {
        instruction: "ADD",
        kind,
    })
}

/// The parts of COPY and ADD that work alike.
struct Step<'i> {
    sources: &'i [Source],
    dest: &'i str,
    chown: Option<&'i str>,
    chmod: Option<&'i str>,
    link: bool,
    excludes: &'i [String],
    parents: bool,
    add: Option<&'i AddInstruction>,
}

fn run(ctx: &CopyContext, from: CopySource, step: &Step) -> Result<CopyOutput, ErrorKind> {
    let chmod = step.chmod.map(mode::ModeChange::parse).transpose()?;
    // BuildKit ignores --link when --chmod is set.
    let link = step.link && chmod.is_none();
    let below = (!link).then_some(ctx.dest_fs);
    let chown = step
        .chown
        .map(|spec| mode::resolve_chown(spec, below))
        .transpose()?;
    let excludes = if step.excludes.is_empty() {
        None
    } else {
        Some(Matcher::new(step.excludes).map_err(|e| ErrorKind::Exclude {
            reason: e.to_string(),
        })?)
    };
    check_sources(step)?;
    let now = ctx.source_date_epoch.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    let mut layer = Layer::new(below, Options { chown, chmod, now });
    let dest = normalize_dest(ctx.workdir, step.dest);
    let mut scratch = Scratch::new(ctx.scratch_dir);

    for source in step.sources {
        match source {
            Source::Path(src) => {
                if let Some(add) = step.add {
                    if let Some(git) = remote::GitRef::parse(src) {
                        let dir = scratch.dir("git")?;
                        // BuildKit's git source is the subdirectory itself,
                        // copied from its root.
                        let root = git.checkout(&dir, add.keep_git_dir)?;
                        let tree = DiskTree::scratch(&dir.join(root), "the git checkout", None)?;
                        copy_whole(&mut layer, &tree, "", &dest, None)?;
                        continue;
                    }
                    if remote::is_http(src) {
                        let dir = scratch.dir("http")?;
                        let name = remote::download(src, add.checksum.as_deref(), &dir)?;
                        let tree =
                            DiskTree::scratch(&dir, "the download", Some(remote::DOWNLOAD_MODE))?;
                        let unpack = add.unpack.unwrap_or(false).then_some(&mut scratch);
                        copy_whole(&mut layer, &tree, &name, &dest, unpack)?;
                        continue;
                    }
                }
                let unpack = step.add.is_some_and(|a| a.unpack.unwrap_or(true));
                match from {
                    CopySource::Context => {
                        let tree =
                            DiskTree::context(ctx.context_dir, ctx.ignore, ctx.hashed.clone())?;
                        let items = local_items(&tree, src, step.parents, excludes.as_ref())?;
                        let unpack = unpack.then_some(&mut scratch);
                        copy_items(&mut layer, &tree, items, &dest, unpack, excludes.as_ref())?;
                    }
                    CopySource::Stage(fs, store) => {
                        // One descriptor for every extraction, however
                        // many sources a wildcard matched.
                        let scratch_root = tree::open_root(ctx.scratch_dir)?;
                        let probe = ImageTree {
                            fs,
                            scratch: Arc::clone(&scratch_root),
                            extracted: Vec::new(),
                        };
                        let items = local_items(&probe, src, step.parents, excludes.as_ref())?;
                        let mut extracted = Vec::new();
                        for item in &items.list {
                            let dir = scratch.dir("stage")?;
                            fs.extract(store, &format!("/{}", item.src), &dir)
                                .map_err(|e| ErrorKind::Io {
                                    what: format!("extracting /{} from the source image", item.src),
                                    reason: e.to_string(),
                                })?;
                            let rel = dir.strip_prefix(ctx.scratch_dir).unwrap_or(&dir);
                            extracted.push((item.src.clone(), rel.to_path_buf()));
                        }
                        let tree = ImageTree {
                            fs,
                            scratch: scratch_root,
                            extracted,
                        };
                        copy_items(&mut layer, &tree, items, &dest, None, excludes.as_ref())?;
                    }
                }
            }
            Source::Heredoc(doc) => {
                let dir = scratch.dir("heredoc")?;
                write_heredoc(ctx, doc, &dir, layer.options().now)?;
                let tree = DiskTree::scratch(&dir, "the inline file", Some(HEREDOC_MODE))?;
                copy_whole(&mut layer, &tree, &doc.name, &dest, None)?;
            }
        }
    }
    Ok(CopyOutput {
        entries: layer.finish(),
        source_digest: None,
    })
}

/// BuildKit's checks on sources before anything runs.
fn check_sources(step: &Step) -> Result<(), ErrorKind> {
    let paths: Vec<&str> = step
        .sources
        .iter()
        .filter_map(|s| match s {
            Source::Path(p) => Some(p.as_str()),
            Source::Heredoc(_) => None,
        })
        .collect();
    match step.add {
        None => {
            for p in &paths {
                if remote::GitRef::parse(p).is_some() {
                    return Err(ErrorKind::Invalid(format!(
                        "source can't be a git ref for COPY: {p}; use ADD to check out a repository"
                    )));
                }
                if remote::is_http(p) {
                    return Err(ErrorKind::Invalid(format!(
                        "source can't be a URL for COPY: {p}; use ADD to download it"
                    )));
                }
            }
        }
        Some(add) => {
            if add.checksum.is_some() {
                if step.sources.len() != 1 {
                    return Err(ErrorKind::Invalid(
                        "checksum can't be specified for multiple sources".into(),
                    ));
                }
                if !paths
                    .first()
                    .is_some_and(|p| remote::is_http(p) && remote::GitRef::parse(p).is_none())
                {
                    return Err(ErrorKind::Invalid(
                        "checksum can't be specified for non-HTTP(S) sources".into(),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Sources found in the context or an image, with `--parents` patterns.
struct Items {
    list: Vec<Item>,
    includes: Vec<String>,
}

struct Item {
    /// The match as found, before following symlinks.
    name_path: String,
    /// With symlinks followed.
    src: String,
}

/// Finds what a context or image source names: cleans it, splits off the
/// `--parents` pivot, matches wildcards and follows symlinks.
fn local_items(
    tree: &dyn Tree,
    src: &str,
    parents: bool,
    excludes: Option<&Matcher>,
) -> Result<Items, ErrorKind> {
    let (src_part, includes) = if parents {
        let (base, pattern) = match src.split_once("/./") {
            Some((b, p)) => (b, p),
            None => ("/", src),
        };
        (base, vec![clean_clamped(pattern)])
    } else {
        (src, Vec::new())
    };
    let cleaned = if tree.strict() {
        clean_components(src_part)
            .ok_or_else(|| ErrorKind::Escapes {
                path: src.to_string(),
            })?
            .join("/")
    } else {
        clean_clamped(src_part)
    };
    let (literal, pattern) = split_wildcards(&cleaned);
    let mut list = Vec::new();
    if pattern.is_empty() {
        list.push(existing_item(tree, cleaned)?);
    } else {
        let base = tree.resolve(&literal, true)?;
        if !tree.node(&base)?.is_some_and(|n| n.is_dir()) {
            return Err(ErrorKind::NotFound {
                path: display_path(&literal),
                place: tree.describe().to_string(),
            });
        }
        let mut matches = Vec::new();
        walk_matches(tree, &base, "", &pattern, &mut matches)?;
        for m in matches {
            let rel = m
                .strip_prefix(base.as_str())
                .map_or(m.as_str(), |r| r.trim_start_matches('/'));
            if excludes.is_some_and(|x| x.is_excluded(rel)) {
                continue;
            }
            list.push(existing_item(tree, m)?);
        }
    }
    Ok(Items { list, includes })
}

/// The source item at `path` (symlinks resolved inside the tree), or a
/// not-found error naming `path` as the user wrote it.
fn existing_item(tree: &dyn Tree, path: String) -> Result<Item, ErrorKind> {
    let resolved = tree.resolve(&path, true)?;
    if tree.node(&resolved)?.is_none() {
        return Err(ErrorKind::NotFound {
            path: display_path(&path),
            place: tree.describe().to_string(),
        });
    }
    Ok(Item {
        name_path: tree.spell(&path),
        src: resolved,
    })
}

fn display_path(p: &str) -> String {
    if p.is_empty() {
        ".".into()
    } else {
        p.to_string()
    }
}

fn copy_items(
    layer: &mut Layer,
    tree: &dyn Tree,
    items: Items,
    dest: &str,
    unpack: Option<&mut Scratch>,
    excludes: Option<&Matcher>,
) -> Result<(), ErrorKind> {
    let mut unpack = unpack;
    for item in items.list {
        // An archive makes its own destination (0755 whatever --chmod
        // says), as BuildKit's unpack does before the copy would.
        if let Some(scratch) = unpack.as_deref_mut() {
            let dir = scratch.dir("archive")?;
            if archive::try_extract(layer, tree, &item.src, &item.name_path, dest, &dir)? {
                continue;
            }
        }
        ensure_dest(layer, dest)?;
        let job = CopyJob {
            tree,
            name_path: item.name_path,
            src: item.src,
            dir_contents: true,
            includes: items.includes.clone(),
            excludes,
        };
        layer.copy(&job, dest.trim_matches('/'))?;
    }
    Ok(())
}

/// Copies one path of a tree kiln made (an inline file, a download, a
/// checkout) without following symlinks, the whole directory included.
fn copy_whole(
    layer: &mut Layer,
    tree: &dyn Tree,
    src: &str,
    dest: &str,
    unpack: Option<&mut Scratch>,
) -> Result<(), ErrorKind> {
    if let Some(scratch) = unpack {
        let dir = scratch.dir("archive")?;
        if archive::try_extract(layer, tree, src, src, dest, &dir)? {
            return Ok(());
        }
    }
    ensure_dest(layer, dest)?;
    let job = CopyJob {
        tree,
        name_path: src.to_string(),
        src: src.to_string(),
        dir_contents: false,
        includes: Vec::new(),
        excludes: None,
    };
    layer.copy(&job, dest.trim_matches('/'))
}

/// fsutil creates the destination directory (trailing `/`) or its parent
/// before each source.
fn ensure_dest(layer: &mut Layer, dest: &str) -> Result<(), ErrorKind> {
    let rel = dest.trim_start_matches('/');
    if let Some(dir) = rel.strip_suffix('/') {
        layer.mkdir_all(dir)
    } else {
        layer.mkdir_all(parent(rel))
    }
}

/// Writes a heredoc source as BuildKit's `Mkfile(name, 0664, data)`, its
/// body expanded with the step's variables unless the marker was quoted
/// (quotes in the body stay, as BuildKit expands with
/// `SkipProcessQuotes`).
fn write_heredoc(ctx: &CopyContext, doc: &Heredoc, dir: &Path, now: i64) -> Result<(), ErrorKind> {
    if doc.name.contains('/') || doc.name == "." || doc.name == ".." {
        return Err(ErrorKind::Invalid(format!(
            "heredoc name {:?} cannot be used as a file name",
            doc.name
        )));
    }
    let content = if doc.expand {
        Lexer::new('\\')
            .skip_process_quotes(true)
            .process_word(&doc.body(), &ctx.env)
            .map_err(|e| ErrorKind::Invalid(format!("expanding heredoc <<{}: {e}", doc.name)))?
    } else {
        doc.body().into_owned()
    };
    let path = dir.join(&doc.name);
    let io = |e: std::io::Error| ErrorKind::Io {
        what: format!("writing {}", path.display()),
        reason: e.to_string(),
    };
    std::fs::write(&path, content.as_bytes()).map_err(io)?;
    set_mtime(&path, now).map_err(io)
}

/// A COPY heredoc's mode: 0644 since moby/buildkit#3992 (0664 before was
/// a typo there).
const HEREDOC_MODE: u32 = 0o644;

/// Sets the mtime (and atime) of a regular file kiln wrote.
pub(crate) fn set_mtime(path: &Path, mtime: i64) -> std::io::Result<()> {
    let when = if mtime >= 0 {
        UNIX_EPOCH + std::time::Duration::from_secs(mtime as u64)
    } else {
        UNIX_EPOCH - std::time::Duration::from_secs(mtime.unsigned_abs())
    };
    std::fs::File::options().write(true).open(path)?.set_times(
        std::fs::FileTimes::new()
            .set_modified(when)
            .set_accessed(when),
    )
}

/// Numbered directories under the step's scratch dir, mode 0755 so that
/// a directory copied from one carries a normal mode.
struct Scratch<'a> {
    root: &'a Path,
    next: usize,
}

impl Scratch<'_> {
    fn new(root: &Path) -> Scratch<'_> {
        Scratch { root, next: 0 }
    }

    /// A new directory; names already taken (by an earlier step sharing
    /// the scratch dir) are skipped.
    fn dir(&mut self, what: &str) -> Result<PathBuf, ErrorKind> {
        loop {
            self.next += 1;
            let dir = self.root.join(format!("{what}-{}", self.next));
            let io = |e: std::io::Error| ErrorKind::Io {
                what: format!("creating {}", dir.display()),
                reason: e.to_string(),
            };
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(e)),
            }
            // Windows reads every writable directory as 0755 already.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                    .map_err(io)?;
            }
            return Ok(dir);
        }
    }
}

impl NodeKind {
    pub(crate) fn is_file(&self) -> bool {
        *self == NodeKind::File
    }
}
