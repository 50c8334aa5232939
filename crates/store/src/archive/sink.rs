//! Where an exported archive's files go: a directory or a tar stream.

use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A destination for the files of an image layout or docker-archive.
pub(crate) trait Sink {
    /// Adds a small file.
    fn file(&mut self, path: &str, bytes: &[u8]) -> Result<()>;
    /// Adds a file streamed from `src`, `len` bytes long.
    fn copy(&mut self, path: &str, src: &mut File, len: u64) -> Result<()>;
}

/// Writes files under a directory.
pub(crate) struct DirSink {
    pub root: PathBuf,
}

impl DirSink {
    fn create(&self, path: &str) -> Result<(PathBuf, File)> {
        let dest = self.root.join(path);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(Error::io("creating", parent))?;
        }
        let file = File::create(&dest).map_err(Error::io("creating", &dest))?;
        Ok((dest, file))
    }
}

impl Sink for DirSink {
    fn file(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        let (dest, mut f) = self.create(path)?;
        f.write_all(bytes).map_err(Error::io("writing", &dest))
    }

    fn copy(&mut self, path: &str, src: &mut File, _len: u64) -> Result<()> {
        let (dest, mut f) = self.create(path)?;
        io::copy(src, &mut f).map_err(Error::io("writing", &dest))?;
        Ok(())
    }
}

/// Writes a tar stream with fixed metadata (root-owned, mode 0644, mtime
/// 0) so the same images always give the same archive.
pub(crate) struct TarSink<W: Write> {
    builder: tar::Builder<W>,
    dirs: Vec<String>,
    path: PathBuf,
}

impl<W: Write> TarSink<W> {
    pub fn new(out: W, path: &Path) -> TarSink<W> {
        TarSink {
            builder: tar::Builder::new(out),
            dirs: Vec::new(),
            path: path.to_path_buf(),
        }
    }

    pub fn finish(self) -> Result<W> {
        self.builder
            .into_inner()
            .map_err(Error::io("writing", &self.path))
    }

    fn add(&mut self, path: &str, len: u64, data: impl io::Read) -> Result<()> {
        let mut parents = Vec::new();
        let mut dir = Path::new(path).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            parents.push(format!("{}/", d.display()));
            dir = d.parent();
        }
        for d in parents.into_iter().rev() {
            if !self.dirs.contains(&d) {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                self.builder
                    .append_data(&mut h, &d, io::empty())
                    .map_err(Error::io("writing", &self.path))?;
                self.dirs.push(d);
            }
        }
        let mut h = header(tar::EntryType::Regular, 0o644, len);
        self.builder
            .append_data(&mut h, path, data)
            .map_err(Error::io("writing", &self.path))
    }
}

fn header(kind: tar::EntryType, mode: u32, len: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(len);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

impl<W: Write> Sink for TarSink<W> {
    fn file(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        self.add(path, bytes.len() as u64, bytes)
    }

    fn copy(&mut self, path: &str, src: &mut File, len: u64) -> Result<()> {
        self.add(path, len, io::Read::take(src, len))
    }
}
