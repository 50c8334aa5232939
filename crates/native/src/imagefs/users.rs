//! Users and groups from the image's `/etc/passwd` and `/etc/group`, with
//! runc's rules for `USER` and BuildKit's for `--chown`.

use super::{Error, ImageFs};
use kiln_oci::tree::TreeRoot;
use std::io::{self, Read};
use std::path::Path;

/// The most of `/etc/passwd` or `/etc/group` kiln reads.
const LIMIT: u64 = 16 << 20;

/// One line of `/etc/passwd` or `/etc/group`: the name and the numeric
/// fields kiln needs. Like runc, a number that does not parse counts as 0.
struct Line<'a> {
    name: &'a str,
    id: u32,
    gid: u32,
}

/// Where `/etc/passwd` and `/etc/group` are read from: an image's merged
/// view, or a container's root directory on disk ([`RootDir`]); the
/// lookups are the same.
pub trait UserDb {
    /// The file at the absolute `path` as text; `None` when there is none,
    /// which BuildKit treats like a file without the name.
    fn read_db(&self, path: &str) -> Result<Option<String>, Error>;

    /// [`ImageFs::lookup_user`] in this database.
    fn user(&self, user: &str) -> Result<(u32, u32), Error> {
        lookup_user(self, user)
    }

    /// [`ImageFs::lookup_group`] in this database.
    fn group(&self, group: &str) -> Result<u32, Error> {
        lookup_group(self, group)
    }

    /// [`ImageFs::supplementary_groups`] in this database.
    fn groups(&self, user: &str, explicit_group: bool) -> Result<Vec<u32>, Error> {
        supplementary_groups(self, user, explicit_group)
    }
}

impl UserDb for ImageFs {
    fn read_db(&self, path: &str) -> Result<Option<String>, Error> {
        match self.read_file(path, LIMIT) {
            Ok(bytes) => Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned())),
            Err(Error::NotADirectory { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A container's root directory on the host (a RUN step's mounted
/// snapshot), read without indexing any layer: its files are opened
/// beneath it without following a symlink at any component, so nothing
/// outside it is read. A database file that is a symlink is an error
/// here; the caller then asks the image's view, which resolves it inside
/// the image.
pub struct RootDir(TreeRoot);

impl RootDir {
    /// The root directory at `path`.
    pub fn open(path: &Path) -> io::Result<RootDir> {
        TreeRoot::open(path).map(RootDir)
    }
}

impl UserDb for RootDir {
    fn read_db(&self, path: &str) -> Result<Option<String>, Error> {
        let unreadable = |e: io::Error| Error::Unreadable {
            path: path.to_string(),
            reason: e.to_string(),
        };
        let file = match self.0.open_file(Path::new(path.trim_start_matches('/'))) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Ok(None),
            Err(e) => return Err(unreadable(e)),
        };
        if !file.metadata().map_err(unreadable)?.is_file() {
            return Err(unreadable(io::Error::other("not a regular file")));
        }
        let mut bytes = Vec::new();
        file.take(LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() as u64 > LIMIT {
            return Err(Error::TooLarge {
                path: path.to_string(),
                size: bytes.len() as u64,
                limit: LIMIT,
            });
        }
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// The `(id, gid)` of the first line `pred` selects.
fn find(text: &Option<String>, pred: impl Fn(&Line<'_>) -> bool) -> Option<(u32, u32)> {
    let found = lines(text.as_deref().unwrap_or_default())
        .find(pred)
        .map(|l| (l.id, l.gid));
    found
}

/// `name:password:id[:gid:...]` lines, blank ones skipped.
fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut f = l.split(':');
            let name = f.next().unwrap_or_default();
            f.next(); // the password field
            let mut num = || f.next().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            Line {
                name,
                id: num(),
                gid: num(),
            }
        })
}

/// A numeric id as runc and BuildKit accept it: a signed decimal that must
/// be a valid id. `None` when `s` is not a number at all (so it is a name).
fn numeric(s: &str, what: &'static str) -> Result<Option<u32>, Error> {
    let Ok(n) = s.parse::<i64>() else {
        return Ok(None);
    };
    match u32::try_from(n) {
        Ok(id) if id != u32::MAX => Ok(Some(id)),
        _ => Err(Error::InvalidId {
            what,
            value: s.to_string(),
        }),
    }
}

fn lookup_user<D: UserDb + ?Sized>(fs: &D, user: &str) -> Result<(u32, u32), Error> {
    let passwd = fs.read_db("/etc/passwd")?;
    let uid = if user.is_empty() {
        Some(0)
    } else {
        numeric(user, "uid")?
    };
    if let Some(uid) = uid {
        let gid = find(&passwd, |l| l.id == uid).map_or(0, |(_, gid)| gid);
        return Ok((uid, gid));
    }
    find(&passwd, |l| l.name == user).ok_or_else(|| Error::UnknownUser {
        user: user.to_string(),
    })
}

fn lookup_group<D: UserDb + ?Sized>(fs: &D, group: &str) -> Result<u32, Error> {
    if let Some(gid) = numeric(group, "gid")? {
        return Ok(gid);
    }
    let groups = fs.read_db("/etc/group")?;
    // A group line is `name:password:gid:members`: its id is the third field.
    find(&groups, |l| l.name == group)
        .map(|(gid, _)| gid)
        .ok_or_else(|| Error::UnknownGroup {
            group: group.to_string(),
        })
}

/// The supplementary groups a container process of `user` (a name, or a
/// uid that `/etc/passwd` names) gets, as BuildKit gives them (its
/// `GetUser`, through moby's `GetExecUser`): the groups in `/etc/group`
/// that list the user as a member, and none when USER names a group
/// (`explicit_group`). The user's own group is not added: buildah adds it,
/// BuildKit does not, so `id -G` in a step prints what it prints under
/// BuildKit. Sorted, without duplicates.
fn supplementary_groups<D: UserDb + ?Sized>(
    fs: &D,
    user: &str,
    explicit_group: bool,
) -> Result<Vec<u32>, Error> {
    if explicit_group {
        return Ok(Vec::new());
    }
    let passwd;
    let name = match numeric(user, "uid")? {
        Some(uid) => {
            passwd = fs.read_db("/etc/passwd")?;
            match lines(passwd.as_deref().unwrap_or_default()).find(|l| l.id == uid) {
                Some(line) => line.name,
                None => return Ok(Vec::new()),
            }
        }
        None => user,
    };
    let groups = fs.read_db("/etc/group")?;
    let mut gids: Vec<u32> = groups
        .as_deref()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (_name, _pw, gid, members) = (f.next()?, f.next()?, f.next()?, f.next()?);
            members
                .split(',')
                .any(|m| m.trim() == name)
                .then(|| gid.trim().parse().ok())
                .flatten()
        })
        .collect();
    gids.sort_unstable();
    gids.dedup();
    Ok(gids)
}

/// A `--chown` part as `llb.WithUser` reads it: `root` and numbers are ids,
/// anything else is a name.
fn chown_id(part: &str, what: &'static str) -> Result<Option<u32>, Error> {
    if part == "root" {
        return Ok(Some(0));
    }
    // BuildKit parses ids as 32-bit signed numbers; larger ones are names.
    match part.parse::<i32>() {
        Ok(n) => u32::try_from(n).map(Some).map_err(|_| Error::InvalidId {
            what,
            value: part.to_string(),
        }),
        Err(_) => Ok(None),
    }
}

pub(super) fn resolve_chown(fs: &ImageFs, spec: &str) -> Result<(u32, u32), Error> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, mut gid) = match chown_id(user, "uid")? {
        Some(id) => (id, id),
        None if user.is_empty() => (0, 0),
        None => {
            let passwd = fs.read_db("/etc/passwd")?;
            find(&passwd, |l| l.name == user).unwrap_or((0, 0))
        }
    };
    if let Some(group) = group {
        match chown_id(group, "gid")? {
            Some(id) => gid = id,
            None if group.is_empty() => gid = 0,
            None => {
                let groups = fs.read_db("/etc/group")?;
                if let Some((id, _)) = find(&groups, |l| l.name == group) {
                    gid = id;
                }
            }
        }
    }
    Ok((uid, gid))
}
