//! Walking a context directory the way BuildKit sends it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{Matcher, ParentMatch};
use crate::{Error, ErrorKind};

/// One entry a walk keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkEntry {
    /// The path relative to the walked root.
    pub path: PathBuf,
    /// Whether it is a directory (symbolic links are not followed, so a link
    /// to a directory is not one).
    pub is_dir: bool,
}

/// An excluded directory that is sent only if something inside is kept.
struct Pending {
    entry: WalkEntry,
    sent: bool,
}

impl Matcher {
    /// Lists what BuildKit would send of the directory `root`, in its order:
    /// depth first, entries of a directory sorted by name, a directory
    /// before its contents, the root itself left out.
    ///
    /// Excluded entries are left out. An excluded directory is still listed,
    /// just before its first kept entry, when an exception re-includes
    /// something inside it; otherwise it is skipped whole when
    /// [`Matcher::may_skip_dir`] allows. A directory that cannot be read is
    /// an [`ErrorKind::Io`] error unless it is excluded and the error is a
    /// permission error, which BuildKit ignores too.
    pub fn walk(&self, root: &Path) -> Result<Vec<WalkEntry>, Error> {
        let mut out = Vec::new();
        let mut pending = Vec::new();
        self.walk_dir(
            root,
            Path::new(""),
            false,
            &ParentMatch::default(),
            &mut pending,
            &mut out,
        )?;
        Ok(out)
    }

    fn walk_dir(
        &self,
        root: &Path,
        rel: &Path,
        excluded: bool,
        state: &ParentMatch,
        pending: &mut Vec<Pending>,
        out: &mut Vec<WalkEntry>,
    ) -> Result<(), Error> {
        let dir = root.join(rel);
        let entries = match read_sorted(&dir) {
            Ok(entries) => entries,
            Err(err) if excluded && err.kind() == io::ErrorKind::PermissionDenied => return Ok(()),
            Err(err) => return Err(io_error(&dir, &err)),
        };
        for (name, is_dir) in entries {
            let path = rel.join(&name);
            let key = path.to_string_lossy();
            let (skip, child_state) = self.check(state, &key);
            let entry = WalkEntry {
                path: path.clone(),
                is_dir,
            };
            if skip {
                if !is_dir || !self.exceptions_reach_below(&key) {
                    continue;
                }
                pending.push(Pending { entry, sent: false });
                self.walk_dir(root, &path, true, &child_state, pending, out)?;
                pending.pop();
                continue;
            }
            for parent in pending.iter_mut().filter(|p| !p.sent) {
                parent.sent = true;
                out.push(parent.entry.clone());
            }
            out.push(entry);
            if is_dir {
                self.walk_dir(root, &path, false, &child_state, pending, out)?;
            }
        }
        Ok(())
    }
}

/// The entries of `dir` as (name, is directory), sorted by name.
fn read_sorted(dir: &Path) -> io::Result<Vec<(std::ffi::OsString, bool)>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        entries.push((entry.file_name(), entry.file_type()?.is_dir()));
    }
    entries.sort();
    Ok(entries)
}

fn io_error(path: &Path, err: &io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("cannot read the directory: {err}"))
        .in_file(path.display().to_string())
}
