//! `--chmod` and `--chown` as BuildKit applies them.

use kiln_frontend::instructions::{parse_chmod, Chmod};

use super::ErrorKind;
use crate::imagefs::ImageFs;

/// A parsed `--chmod`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ModeChange(Chmod);

impl ModeChange {
    pub(crate) fn parse(value: &str) -> Result<ModeChange, ErrorKind> {
        parse_chmod(value)
            .map(ModeChange)
            .map_err(|reason| ErrorKind::Chmod { reason })
    }

    /// An octal value (which BuildKit also gives the directories COPY
    /// creates), not a symbolic one.
    pub(crate) fn is_octal(&self) -> bool {
        matches!(self.0, Chmod::Octal(_))
    }

    /// The new mode of a copied file or directory whose mode was `mode`.
    /// An octal value replaces the permission bits and keeps the source's
    /// setuid/setgid/sticky bits (fsutil masks the value with 0777); a
    /// symbolic one edits the mode like chmod(1).
    pub(crate) fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match &self.0 {
            Chmod::Octal(m) => (mode & 0o7000) | (m & 0o777),
            Chmod::Symbolic(s) => apply_symbolic(s, mode, is_dir),
        }
    }
}

/// Applies `u+x,go-w,a=r`-style clauses; no `who` means everyone (the
/// umask plays no part in a build).
fn apply_symbolic(spec: &str, mut mode: u32, is_dir: bool) -> u32 {
    for clause in spec.split(',') {
        let who_end = clause
            .find(|c: char| !matches!(c, 'u' | 'g' | 'o' | 'a'))
            .unwrap_or(clause.len());
        let (who, mut rest) = clause.split_at(who_end);
        let (mut rwx, mut special) = (0u32, 0u32);
        for c in who.chars() {
            match c {
                'u' => (rwx, special) = (rwx | 0o700, special | 0o4000),
                'g' => (rwx, special) = (rwx | 0o070, special | 0o2000),
                'o' => (rwx, special) = (rwx | 0o007, special | 0o1000),
                _ => (rwx, special) = (0o777, 0o7000),
            }
        }
        if who.is_empty() {
            (rwx, special) = (0o777, 0o7000);
        }
        while let Some(op) = rest.chars().next() {
            let perms_end = rest[1..]
                .find(['+', '-', '='])
                .map_or(rest.len(), |i| i + 1);
            let perms = &rest[1..perms_end];
            rest = &rest[perms_end..];
            let mut bits = 0u32;
            for p in perms.chars() {
                bits |= match p {
                    'r' => 0o444 & rwx,
                    'w' => 0o222 & rwx,
                    'x' => 0o111 & rwx,
                    'X' if is_dir || mode & 0o111 != 0 => 0o111 & rwx,
                    's' => 0o6000 & special,
                    't' => 0o1000 & special,
                    _ => 0,
                };
            }
            match op {
                '+' => mode |= bits,
                '-' => mode &= !bits,
                _ => mode = (mode & !(rwx | (special & 0o6000))) | bits,
            }
        }
    }
    mode
}

/// Resolves `--chown=user[:group]` as BuildKit does, in the destination
/// image (`ImageFs::resolve_chown`). `fs` is `None` for a `--link` layer,
/// which BuildKit builds without the base image: there only `root` and
/// numeric ids work (BuildKit fails with "invalid user index: -1").
pub(crate) fn resolve_chown(spec: &str, fs: Option<&ImageFs>) -> Result<(u32, u32), ErrorKind> {
    let fail = |reason: String| ErrorKind::Chown {
        spec: spec.to_string(),
        reason,
    };
    if let Some(fs) = fs {
        return fs.resolve_chown(spec).map_err(|e| fail(e.to_string()));
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let id = |name: &str| {
        numeric_id(name).ok_or_else(|| {
            fail(format!(
                "with --link the layer is built without the base image, so {name:?} cannot be \
                 looked up in its /etc/passwd or /etc/group; use numeric ids"
            ))
        })
    };
    let uid = id(user)?;
    let gid = match group {
        Some(g) => id(g)?,
        None => uid,
    };
    Ok((uid, gid))
}

/// `root`, an empty part (id 0) or a decimal id, as llb's `WithUser` reads
/// them.
fn numeric_id(text: &str) -> Option<u32> {
    if text == "root" || text.is_empty() {
        return Some(0);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(spec: &str, mode: u32, is_dir: bool) -> u32 {
        ModeChange::parse(spec).unwrap().apply(mode, is_dir)
    }

    #[test]
    fn octal_replaces_permissions_and_keeps_special_bits() {
        assert_eq!(apply("640", 0o755, false), 0o640);
        assert_eq!(apply("4755", 0o644, false), 0o755);
        assert_eq!(apply("700", 0o4755, false), 0o4700);
    }

    #[test]
    fn symbolic_modes_edit_the_source_mode() {
        assert_eq!(apply("u+x", 0o644, false), 0o744);
        assert_eq!(apply("+x", 0o644, false), 0o755);
        assert_eq!(apply("go-w", 0o666, false), 0o644);
        assert_eq!(apply("a=r", 0o755, false), 0o444);
        assert_eq!(apply("u=rwx,g=rx,o=", 0o600, false), 0o750);
        assert_eq!(apply("a+X", 0o644, false), 0o644);
        assert_eq!(apply("a+X", 0o644, true), 0o755);
        assert_eq!(apply("u+s,+t", 0o755, false), 0o5755);
        assert_eq!(apply("u+x-w", 0o644, false), 0o544);
    }

    #[test]
    fn numeric_owners_need_no_image() {
        assert_eq!(resolve_chown("1000", None).unwrap(), (1000, 1000));
        assert_eq!(resolve_chown("1000:50", None).unwrap(), (1000, 50));
        assert_eq!(resolve_chown("root:root", None).unwrap(), (0, 0));
        assert_eq!(
            resolve_chown("app", None).unwrap_err().to_string(),
            "--chown=app: with --link the layer is built without the base image, so \"app\" \
             cannot be looked up in its /etc/passwd or /etc/group; use numeric ids"
        );
    }
}
