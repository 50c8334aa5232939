//! Build contexts that are not a directory on this machine, taken as
//! docker's CLI takes them: `kiln build - < context.tar[.gz]`, a git
//! repository (`https://host/repo.git#ref:dir`, `git@host:repo`), or the URL
//! of a tarball. Each is fetched into a directory the caller owns and then
//! built like any local context; a stream or download that is not an
//! archive is a Dockerfile with no context, as docker reads it.

use std::io::{BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use kiln_oci::compression::Magic;

use crate::copy::archive;
use crate::copy::remote::{self, GitRef};

/// What a context argument gave.
#[derive(Debug)]
pub enum Fetched {
    /// The context: a directory inside the one the fetch was given.
    Dir(PathBuf),
    /// Not an archive: these are a Dockerfile's bytes, and there is no
    /// context.
    Dockerfile(Vec<u8>),
}

/// Whether `arg` names a remote context (a git repository or an http(s)
/// URL) rather than a local directory.
pub fn is_remote(arg: &str) -> bool {
    remote::is_http(arg) || GitRef::parse(arg).is_some()
}

/// Fetches the remote context `arg` into `dir` (an empty directory): a git
/// repository is checked out (its `.git` left out, as BuildKit leaves it
/// out) and `#ref:subdir` honoured; any other URL is downloaded and read as
/// [`read`] reads a stream.
pub fn fetch(arg: &str, dir: &Path) -> Result<Fetched, String> {
    if let Some(git) = GitRef::parse(arg) {
        let checkout = dir.join("git");
        std::fs::create_dir(&checkout).map_err(|e| e.to_string())?;
        let sub = git.checkout(&checkout, false).map_err(|e| e.to_string())?;
        return Ok(Fetched::Dir(checkout.join(sub)));
    }
    let download = dir.join("download");
    std::fs::create_dir(&download).map_err(|e| e.to_string())?;
    let name = remote::download(arg, None, &download).map_err(|e| e.to_string())?;
    let file = std::fs::File::open(download.join(&name)).map_err(|e| e.to_string())?;
    read(file, dir).map_err(|e| format!("{arg}: {e}"))
}

/// Reads a context from a stream (standard input): a tar archive, plain or
/// compressed with gzip, bzip2, xz or zstd, is unpacked into `dir/context`;
/// anything else is a Dockerfile.
pub fn read(stream: impl Read, dir: &Path) -> Result<Fetched, String> {
    let mut stream = BufReader::new(stream);
    // A tar header is 512 bytes; a pipe may hand them over in pieces.
    let mut head = Vec::with_capacity(512);
    stream
        .by_ref()
        .take(512)
        .read_to_end(&mut head)
        .map_err(|e| format!("reading: {e}"))?;
    let magic = Magic::of(&head);
    if magic == Magic::None && !is_tar_header(&head) {
        let mut bytes = head;
        stream
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading: {e}"))?;
        return Ok(Fetched::Dockerfile(bytes));
    }
    let whole = BufReader::new(Cursor::new(&head).chain(stream));
    let tar = archive::decompress(&head, whole, dir)
        .map_err(|e| format!("decompressing: {e}"))?
        .ok_or("the xz stream does not decompress")?;
    let context = dir.join("context");
    std::fs::create_dir(&context).map_err(|e| e.to_string())?;
    unpack(tar, &context)?;
    Ok(Fetched::Dir(context))
}

/// Unpacks a context archive into `dest`, as `tar::Archive::unpack` does
/// (directories last, so their times stay the archive's) but naming the
/// entry that fails, and refusing one that would land outside `dest` (a
/// `..` name, or a write through a symlink the archive made pointing out),
/// where `unpack` would skip the first kind without a word.
fn unpack(tar: impl Read, dest: &Path) -> Result<(), String> {
    let mut archive = tar::Archive::new(tar);
    // Owners are the builder's (a context's are reset to root anyway);
    // modes and times as the archive has them, which COPY then keeps.
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    let fail = |what: String| format!("unpacking the context archive: {what}");
    let mut directories = Vec::new();
    for entry in archive.entries().map_err(|e| fail(e.to_string()))? {
        let entry = entry.map_err(|e| fail(e.to_string()))?;
        if entry.header().entry_type() == tar::EntryType::Directory {
            directories.push(entry);
        } else {
            unpack_entry(entry, dest).map_err(fail)?;
        }
    }
    // Deepest first, so a parent's time is set after its children's.
    directories.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for dir in directories {
        unpack_entry(dir, dest).map_err(fail)?;
    }
    Ok(())
}

fn unpack_entry<R: Read>(mut entry: tar::Entry<'_, R>, dest: &Path) -> Result<(), String> {
    let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    match entry.unpack_in(dest) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("entry {name:?} points outside the context")),
        Err(e) => Err(format!("entry {name:?}: {e}")),
    }
}

/// Whether `head` starts with a tar header: POSIX and GNU archives say
/// `ustar` at offset 257; an old V7 header has only its checksum to go by.
fn is_tar_header(head: &[u8]) -> bool {
    if head.len() < 512 {
        return false;
    }
    if &head[257..262] == b"ustar" {
        return true;
    }
    let field = String::from_utf8_lossy(&head[148..156]);
    let Ok(stored) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = head[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    sum == stored
}
