//! An image's base layer (its bottom one), entry by entry, as hcsshim's
//! base-layer writer (`internal/wclayer/baselayerwriter.go`, fed by
//! `pkg/ociwclayer/import.go`) writes it straight into a layer directory:
//! no transport folder, since a base layer carries `UtilityVM/`, which
//! only that writer takes.
//!
//! [`BaseLayerReader`] yields what a Windows host needs for each entry
//! (its name relative to the layer directory, whether to create a
//! directory, a file or a hard link, its attributes and times) and, read
//! through [`Read`], the Win32 backup stream to hand `BackupWrite`; the
//! host does the writing. The stream is built while it is read: the
//! entry's data and alternate data streams come from the tar as the host
//! reads them, never held whole.
//!
//! Every header is checked by the import simulator's rules first, so
//! anything `check_layer` refuses is refused here, by name; so is any
//! whiteout, which hcsshim's base-layer writer refuses ("base layer cannot
//! have tombstones").

use super::header::{
    alternate_stream, basic_info, data_header, is_regular, metadata_streams, next_header,
};
use super::{FileBasicInfo, TransportError};
use crate::layer::read::{Header, TarReader};
use crate::windows::check::State;
use std::io::{self, Read};

/// The utility VM's boot configuration store and its logs (tar name, then
/// the layer-root file hcsshim also saves the entry's stream to): HCS
/// rewrites them while processing the utility VM image, and the copies
/// keep the originals (`mutatedFiles` in `pkg/ociwclayer/import.go`).
const BCD_BACKUPS: [(&str, &str); 4] = [
    ("UtilityVM/Files/EFI/Microsoft/Boot/BCD", "bcd.bak"),
    ("UtilityVM/Files/EFI/Microsoft/Boot/BCD.LOG", "bcd.log.bak"),
    (
        "UtilityVM/Files/EFI/Microsoft/Boot/BCD.LOG1",
        "bcd.log1.bak",
    ),
    (
        "UtilityVM/Files/EFI/Microsoft/Boot/BCD.LOG2",
        "bcd.log2.bak",
    ),
];

/// One entry of a base layer, in tar order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseEntry {
    /// A file or directory to create (hcsshim's `Add`); its backup stream
    /// is what the reader reads next.
    Create(BaseFile),
    /// A second name `name` for the earlier file `target` (hcsshim's
    /// `AddLink`); both relative to the layer directory, `\`-separated.
    /// It has no backup stream.
    Link {
        /// The new name.
        name: String,
        /// The existing file it names.
        target: String,
    },
}

/// A file or directory of a base layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseFile {
    /// The name relative to the layer directory, `\`-separated
    /// (`Files\Windows\System32`).
    pub name: String,
    /// Attributes and times, for `SetFileBasicInfo` once it is created.
    /// [`FileBasicInfo::is_directory`] says whether to create a directory;
    /// a directory's times must be set again once all entries are in,
    /// since creating its children changes them.
    pub info: FileBasicInfo,
    /// A file in the layer directory to create and give a copy of this
    /// entry's backup stream, written without security: set for the
    /// utility VM's BCD store and its logs, whose originals hcsshim keeps
    /// this way.
    pub backup_copy: Option<&'static str>,
}

/// Reads a base layer's uncompressed tar, one [`BaseEntry`] at a time;
/// between two entries, [`Read`] gives the last [`BaseEntry::Create`]'s
/// backup stream: its security descriptor, EAs and reparse data, then its
/// data, then each alternate data stream (the `name:stream` entries that
/// follow it, as `:stream:$DATA`), exactly as go-winio's
/// `WriteBackupStreamFromTarFile` frames them for `BackupWrite`.
pub struct BaseLayerReader<R> {
    tar: TarReader<R>,
    rules: State,
    /// A header read while looking for alternate data streams that turned
    /// out to be the next entry (`Some(None)`: the end of the tar).
    lookahead: Option<Option<Header>>,
    /// The tar name of the entry whose stream is being read, and whether
    /// alternate data streams may still follow it.
    owner: String,
    streams_follow: bool,
    /// The tar name of the entry whose bytes are being read, for errors.
    reading: String,
    /// Framing not yet read, and how much of it was.
    pending: Vec<u8>,
    at: usize,
    /// Bytes of the current tar entry's data not yet read.
    data: u64,
    utility_vm: bool,
}

impl<R: Read> BaseLayerReader<R> {
    /// Reads the uncompressed layer tar `tar`.
    pub fn new(tar: R) -> BaseLayerReader<R> {
        BaseLayerReader {
            tar: TarReader::new(tar),
            rules: State::default(),
            lookahead: None,
            owner: String::new(),
            streams_follow: false,
            reading: String::new(),
            pending: Vec::new(),
            at: 0,
            data: 0,
            utility_vm: false,
        }
    }

    /// The next entry, or `None` after the last, once the layer is known
    /// to hold `Files`. What is left unread of the previous entry's stream
    /// is skipped.
    pub fn next_entry(&mut self) -> Result<Option<BaseEntry>, TransportError> {
        while self.advance()? {
            if self.at < self.pending.len() {
                self.at = self.pending.len();
            } else {
                let (data, name) = (self.data, &self.reading);
                let copied = io::copy(&mut (&mut self.tar).take(data), &mut io::sink())
                    .map_err(|e| data_error(name, e))?;
                if copied < data {
                    return Err(data_error(name, io::ErrorKind::UnexpectedEof.into()));
                }
                self.data = 0;
            }
        }
        let h = match self.lookahead.take() {
            Some(h) => h,
            None => next_header(&mut self.tar)?,
        };
        let Some(h) = h else {
            self.rules.finish_base().map_err(|reason| TransportError {
                entry: None,
                reason,
            })?;
            return Ok(None);
        };
        let name = String::from_utf8_lossy(&h.name).into_owned();
        let last = name.rsplit('/').next().unwrap_or(&name);
        if last.starts_with(".wh.") {
            return Err(TransportError::at(
                name,
                "a whiteout in a base layer: there is nothing below it to delete, and hcsshim's \
                 base-layer writer fails with \"base layer cannot have tombstones\"",
            ));
        }
        self.rules
            .check(&h)
            .map_err(|reason| TransportError::at(&name, reason))?;
        if h.typeflag == b'1' {
            let target = String::from_utf8_lossy(&h.linkname).into_owned();
            if !self.rules.is_file(&target) || target == name {
                return Err(TransportError::at(
                    name,
                    format!("hard link to {target:?}, which is not a file earlier in this layer: a base layer has no parent to hold it"),
                ));
            }
            return Ok(Some(BaseEntry::Link {
                name: windows_name(&name),
                target: windows_name(&target),
            }));
        }
        self.utility_vm |= name == "UtilityVM/Files";
        let mut pending = metadata_streams(&h).map_err(|r| TransportError::at(&name, r))?;
        if is_regular(&h) {
            pending.extend(
                data_header(None, h.size)
                    .to_bytes()
                    .map_err(|e| TransportError::at(&name, e.to_string()))?,
            );
        }
        let file = BaseFile {
            name: windows_name(&name),
            info: basic_info(&h),
            backup_copy: BCD_BACKUPS
                .iter()
                .find(|(from, _)| *from == name)
                .map(|(_, to)| *to),
        };
        self.pending = pending;
        self.at = 0;
        self.data = h.size;
        self.reading.clone_from(&name);
        self.owner = name;
        self.streams_follow = true;
        Ok(Some(BaseEntry::Create(file)))
    }

    /// Whether a `UtilityVM/Files` directory was created: hcsshim then has
    /// HCS process the utility VM image (`ProcessUtilityImage`) after the
    /// base (`ProcessBaseImage`). Final once [`Self::next_entry`] has
    /// returned `None`.
    pub fn utility_vm(&self) -> bool {
        self.utility_vm
    }

    /// Makes bytes of the current stream ready to read, reading the next
    /// alternate data stream's header when the previous one is done; false
    /// where the stream ends.
    fn advance(&mut self) -> Result<bool, TransportError> {
        loop {
            if self.at < self.pending.len() || self.data > 0 {
                return Ok(true);
            }
            if !self.streams_follow {
                return Ok(false);
            }
            let h = next_header(&mut self.tar)?;
            let Some(stream) = h.as_ref().and_then(|h| alternate_stream(&self.owner, h)) else {
                self.lookahead = Some(h);
                self.streams_follow = false;
                return Ok(false);
            };
            let h = h.expect("an alternate data stream has a header");
            let name = String::from_utf8_lossy(&h.name).into_owned();
            self.rules
                .check(&h)
                .map_err(|reason| TransportError::at(&name, reason))?;
            self.pending = data_header(Some(stream), h.size)
                .to_bytes()
                .map_err(|e| TransportError::at(&name, e.to_string()))?;
            self.at = 0;
            self.data = h.size;
            self.reading = name;
        }
    }
}

impl<R: Read> Read for BaseLayerReader<R> {
    /// Reads the current entry's backup stream; 0 at its end. An error
    /// names the tar entry it is about.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || !self.advance().map_err(io::Error::other)? {
            return Ok(0);
        }
        if self.at < self.pending.len() {
            let n = buf.len().min(self.pending.len() - self.at);
            buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
            self.at += n;
            return Ok(n);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.data).unwrap_or(usize::MAX));
        let n = self
            .tar
            .read(&mut buf[..want])
            .map_err(|e| io::Error::other(data_error(&self.reading, e)))?;
        self.data -= n as u64;
        Ok(n)
    }
}

fn data_error(name: &str, e: io::Error) -> TransportError {
    TransportError::at(name, format!("reading the data: {e}"))
}

fn windows_name(name: &str) -> String {
    name.replace('/', "\\")
}

#[cfg(test)]
mod tests;
