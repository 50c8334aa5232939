//! `.dockerignore` with the exact semantics of moby/patternmatcher and of
//! BuildKit's context walk (tonistiigi/fsutil).
//!
//! * [`load`] picks the ignore file the way BuildKit does:
//!   `<Dockerfile name>.dockerignore` next to the Dockerfile wins over
//!   `<context>/.dockerignore`.
//! * The file is read like moby's `ignorefile.ReadAll`: a UTF-8 byte order
//!   mark is dropped, a line whose first character is `#` is a comment,
//!   blank lines are skipped, every pattern is trimmed and cleaned like Go's
//!   `filepath.Clean` (so `./keep.txt` is `keep.txt` and `dir/` is `dir`),
//!   and a leading `/` is dropped: all patterns are relative to the context
//!   root. `!pattern` is an exception that re-includes what it matches; a
//!   lone `!` is an error.
//! * Patterns: `*` is any run of characters except `/`, `?` one character
//!   except `/`, `[a-c]` and `[^a-c]` are classes, `\` escapes the next
//!   character, and `**` stands for any number of directories, zero
//!   included. A pattern matches a path or any of its parents, so excluding
//!   a directory excludes everything below it, and the last pattern that
//!   matches decides.
//! * Paths are matched as BuildKit's walk matches them: each entry inherits
//!   which patterns its parent directory matched
//!   (`MatchesUsingParentResults`). This differs from the classic builder in
//!   corner cases; for instance with `a/x` then `!a`, BuildKit still
//!   excludes `a/x`, and so does kiln.
//!
//! A few things are Docker's behaviour even though they surprise:
//!
//! * `[!a]` is not a negated class: Docker reads `!` inside brackets as the
//!   character `!`. Only `[^a]` negates, and a negated class also matches `/`.
//! * `foo/**` excludes what is inside `foo` but not `foo` itself; a pattern
//!   that starts with `**` followed by plain text (`**foo`) matches any path
//!   ending in that text, `xfoo` included.
//! * The Dockerfile and the `.dockerignore` file can be excluded like any
//!   other file. BuildKit still reads them to run the build (the Dockerfile
//!   travels separately), but `COPY` and `ADD` do not see them.
//!
//! Constructs whose Docker meaning comes from Go's regular-expression engine
//! rather than from the glob syntax (`\d`, `[[:alpha:]]`, `*` inside
//! brackets) are refused with [`ErrorKind::NotSupported`] instead of being
//! guessed at.
//!
//! ```
//! use kiln_frontend::dockerignore::Matcher;
//!
//! let m = Matcher::parse(".dockerignore", b"*\n!**/*.py\n").unwrap();
//! assert!(m.is_excluded("README.md"));
//! assert!(!m.is_excluded("src/app/main.py"));
//! // `src` is excluded, but a walker must still look inside it.
//! assert!(!m.may_skip_dir("src"));
//! ```

mod file;
mod pattern;
mod walk;

use std::io;
use std::path::{Path, PathBuf};

use crate::{Error, ErrorKind};

pub use pattern::Pattern;
pub use walk::WalkEntry;

/// The ignore rules of one build context.
///
/// An empty matcher (no ignore file) excludes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    source: Option<PathBuf>,
}

/// Which patterns matched a directory, handed to the entries inside it.
///
/// A walker starts from [`ParentMatch::default()`] for entries at the
/// context root and passes the state [`Matcher::check`] returned for a
/// directory to that directory's entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParentMatch {
    // Empty at the root, where moby checks each parent path instead.
    matched: Vec<bool>,
}

impl Matcher {
    /// Builds a matcher from patterns as moby's `patternmatcher.New` takes
    /// them (for example `COPY --exclude` values): each is trimmed and
    /// cleaned, empty ones are skipped and a leading `!` makes an exception.
    /// Unlike ignore-file lines, a leading `/` is kept, so `/x` matches
    /// nothing.
    pub fn new<I, S>(patterns: I) -> Result<Matcher, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut matcher = Matcher::default();
        for (index, text) in patterns.into_iter().enumerate() {
            // The list position is not a file line; the caller knows where
            // the patterns were written and adds that location itself.
            matcher
                .push(text.as_ref(), index + 1)
                .map_err(|err| err.at(0, 0))?;
        }
        Ok(matcher)
    }

    /// Parses the contents of an ignore file. `file` names it in errors and
    /// becomes [`Matcher::source`].
    ///
    /// Errors are [`ErrorKind::Syntax`] for a malformed pattern (an
    /// unterminated `[`, a lone `!`, a trailing `\`) and
    /// [`ErrorKind::NotSupported`] for the regular-expression-only
    /// constructs described in the [module docs](self), with the file and
    /// line set.
    pub fn parse(file: impl AsRef<Path>, contents: &[u8]) -> Result<Matcher, Error> {
        let file = file.as_ref();
        let mut matcher = Matcher {
            patterns: Vec::new(),
            source: Some(file.to_path_buf()),
        };
        for line in file::read_patterns(contents) {
            matcher.push(&line.pattern, line.number).map_err(|err| {
                err.in_file(file.display().to_string())
                    .with_source_line(line.source.clone())
            })?;
        }
        Ok(matcher)
    }

    /// Compiles one pattern the way `patternmatcher.New` does.
    fn push(&mut self, text: &str, line: usize) -> Result<(), Error> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(());
        }
        let cleaned = pattern::clean(text);
        let (exception, body) = match cleaned.strip_prefix('!') {
            Some(body) => (true, body),
            None => (false, cleaned.as_str()),
        };
        if exception && body.is_empty() {
            return Err(Error::new(
                ErrorKind::Syntax,
                "illegal exclusion pattern \"!\": a `!` must be followed by the pattern to re-include",
            )
            .at(line, 0)
            .with_help("write the path to keep after the `!` (e.g. `!keep.txt`), or remove the line"));
        }
        let compiled = Pattern::compile(body, exception, line).map_err(|err| {
            Error::new(
                err.kind,
                format!("invalid pattern {cleaned:?}: {}", err.message),
            )
            .at(line, 0)
            .with_help(err.help)
        })?;
        self.patterns.push(compiled);
        Ok(())
    }

    /// The patterns in file order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// The ignore file the patterns came from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// Whether there are no patterns, so nothing is excluded.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the entry at `rel_path` (relative to the context root,
    /// `/`-separated; it is cleaned first and a leading `/` is ignored) is
    /// left out of the context. Files and directories are matched alike; an
    /// excluded directory may still be sent if something inside it is
    /// re-included, see [`Matcher::walk`]. The root itself is never
    /// excluded.
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        match normalize(rel_path) {
            Some(path) => self.excluded_normalized(&path),
            None => false,
        }
    }

    /// Whether a walker may skip the directory `rel_dir` without looking
    /// inside: it is excluded and no exception can re-include anything
    /// below it. This is BuildKit's rule: as soon as one exception contains
    /// a wildcard, no excluded directory is skipped.
    pub fn may_skip_dir(&self, rel_dir: &str) -> bool {
        match normalize(rel_dir) {
            Some(dir) => self.excluded_normalized(&dir) && !self.exceptions_reach_below(&dir),
            None => false,
        }
    }

    /// One step of a walk: whether the entry at `rel_path` is excluded,
    /// given the state of its parent directory, and the state to hand to
    /// its own entries if it is a directory. `rel_path` must be clean,
    /// relative and `/`-separated (`src/main.rs`), as a walker builds it.
    pub fn check(&self, parent: &ParentMatch, rel_path: &str) -> (bool, ParentMatch) {
        let inherited = &parent.matched;
        let mut excluded = false;
        let mut matched = vec![false; self.patterns.len()];
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = inherited.get(i).copied().unwrap_or(false);
            if !hit {
                // An exclusion cannot change an excluded path, nor an
                // exception an included one: moby does not even record them.
                if pattern.is_exception() != excluded {
                    continue;
                }
                hit = pattern.matches(rel_path)
                    || (inherited.is_empty() && parent_dirs(rel_path).any(|d| pattern.matches(d)));
            }
            matched[i] = hit;
            if hit {
                excluded = !pattern.is_exception();
            }
        }
        (excluded, ParentMatch { matched })
    }

    fn excluded_normalized(&self, path: &str) -> bool {
        let mut state = ParentMatch::default();
        for dir in parent_dirs(path) {
            let (excluded, next) = self.check(&state, dir);
            if excluded && !self.exceptions_reach_below(dir) {
                return true;
            }
            state = next;
        }
        self.check(&state, path).0
    }

    /// fsutil's test for walking into an excluded directory: exceptions with
    /// wildcards might match anywhere; plain ones only below their own path.
    fn exceptions_reach_below(&self, dir: &str) -> bool {
        let mut exceptions = self.patterns.iter().filter(|p| p.is_exception()).peekable();
        if exceptions.peek().is_none() {
            return false;
        }
        let plain: Vec<&str> = exceptions
            .map(|p| without_trailing_glob(p.text()))
            .collect();
        if plain
            .iter()
            .any(|p| p.contains(['*', '[', ']', '?', '^', '\\']))
        {
            return true;
        }
        let dir_slash = format!("{dir}/");
        plain
            .iter()
            .any(|p| format!("{p}/").starts_with(&dir_slash))
    }
}

/// fsutil's `patternWithoutTrailingGlob`.
fn without_trailing_glob(text: &str) -> &str {
    let text = text.strip_suffix("/**").unwrap_or(text);
    text.strip_suffix("/*").unwrap_or(text)
}

/// The parent directories of a clean relative path, outermost first:
/// `a/b/c` gives `a`, `a/b`.
fn parent_dirs(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// Cleans a caller's path; `None` for the context root.
fn normalize(rel_path: &str) -> Option<String> {
    let cleaned = pattern::clean(rel_path);
    let relative = cleaned.trim_start_matches('/');
    (!relative.is_empty() && relative != ".").then(|| relative.to_string())
}

/// Loads the ignore rules for a build, as BuildKit picks them:
/// `<dockerfile>.dockerignore` (the Dockerfile's path with `.dockerignore`
/// appended, e.g. `docker/app.Dockerfile.dockerignore`) if it exists,
/// otherwise `<context_dir>/.dockerignore`, otherwise no rules.
///
/// `dockerfile` is the Dockerfile's path as the caller reads it. Errors are
/// [`ErrorKind::Io`] when a file exists but cannot be read, and the pattern
/// errors of [`Matcher::parse`].
pub fn load(context_dir: &Path, dockerfile: &Path) -> Result<Matcher, Error> {
    let mut specific = dockerfile.as_os_str().to_os_string();
    specific.push(".dockerignore");
    for candidate in [PathBuf::from(specific), context_dir.join(".dockerignore")] {
        match std::fs::read(&candidate) {
            Ok(contents) => return Matcher::parse(&candidate, &contents),
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("cannot read the ignore file: {err}"),
                )
                .in_file(candidate.display().to_string()))
            }
        }
    }
    Ok(Matcher::default())
}
