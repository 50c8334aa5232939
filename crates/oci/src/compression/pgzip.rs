//! Parallel gzip with output that does not depend on the thread count.
//!
//! pigz's scheme: the input is cut into fixed 128 KiB blocks; each block is
//! raw-deflated on its own, primed with the previous 32 KiB of input as the
//! dictionary, and ended with a sync flush (the last with a final block).
//! The pieces are concatenated behind a fixed gzip header, and the trailer
//! carries the crc32 and length of the whole input. Every block's bytes are
//! a function of the input alone, so 1 thread and 8 threads write the same
//! file. Memory is bounded: at most `2 × threads` blocks are in flight.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, FlushCompress, Status};

const BLOCK: usize = 128 * 1024;
const DICT: usize = 32 * 1024;

struct Job {
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Vec<u8>>>,
}

/// A gzip encoder that deflates blocks on worker threads.
///
/// Dropping it without [`ParallelGzipWriter::finish`] closes the work queue;
/// the workers then exit on their own.
pub struct ParallelGzipWriter<W: Write> {
    inner: W,
    level: u32,
    block: Vec<u8>,
    dict: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
}

impl<W: Write> ParallelGzipWriter<W> {
    /// Writes gzip at `level` (0–9) to `inner`, deflating on `threads`
    /// threads (1 compresses on the caller's thread).
    pub fn new(mut inner: W, level: u32, threads: usize) -> io::Result<ParallelGzipWriter<W>> {
        // Go's compress/gzip header: no name, mtime 0, OS "unknown", so the
        // bytes carry nothing about the build host.
        let xfl = match level {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        inner.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
        let threads = threads.max(1);
        let (jobs, workers) = if threads > 1 {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            let workers = (0..threads)
                .map(|_| {
                    let rx = Arc::clone(&rx);
                    std::thread::spawn(move || worker(level, &rx))
                })
                .collect();
            (Some(tx), workers)
        } else {
            (None, Vec::new())
        };
        Ok(ParallelGzipWriter {
            inner,
            level,
            block: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            crc: crc32fast::Hasher::new(),
            len: 0,
            jobs,
            workers,
            pending: VecDeque::new(),
            max_pending: 2 * threads,
        })
    }

    /// Compresses what is buffered, writes the trailer and returns `inner`.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&crc.to_le_bytes());
        trailer[4..].copy_from_slice(&(self.len as u32).to_le_bytes());
        self.inner.write_all(&trailer)?;
        self.inner.flush()?;
        // Closing the queue lets the workers exit.
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        Ok(self.inner)
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let tail = data.len().saturating_sub(DICT);
        let next_dict = data[tail..].to_vec();
        let dict = std::mem::replace(&mut self.dict, next_dict);
        if self.jobs.is_none() {
            let out = compress_block(self.level, &dict, &data, last)?;
            return self.inner.write_all(&out);
        }
        if self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        if let Some(jobs) = &self.jobs {
            let (reply, rx) = mpsc::sync_channel(1);
            jobs.send(Job {
                dict,
                data,
                last,
                reply,
            })
            .map_err(|_| io::Error::other("gzip worker threads stopped"))?;
            self.pending.push_back(rx);
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let out = rx
                .recv()
                .map_err(|_| io::Error::other("a gzip worker thread died"))??;
            self.inner.write_all(&out)?;
        }
        Ok(())
    }
}

impl<W: Write> Write for ParallelGzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        if self.block.len() == BLOCK {
            self.submit(false)?;
        }
        Ok(n)
    }

    /// Block boundaries are fixed by input offsets, so flushing cannot end a
    /// block early; it only pushes finished blocks to `inner`.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn worker(level: u32, jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let out = compress_block(level, &job.dict, &job.data, job.last);
        let _ = job.reply.send(out);
    }
}

/// Raw-deflates one block primed with `dict`; sync-flushed, or finished when
/// `last`. A block that looks incompressible is written as stored deflate
/// blocks instead: deflating random-looking data (already compressed files,
/// encrypted data) costs ~25 ns a byte and saves nothing, storing it costs a
/// copy. The choice depends on the block's bytes alone, so the output still
/// does not depend on the thread count.
pub(crate) fn compress_block(
    level: u32,
    dict: &[u8],
    data: &[u8],
    last: bool,
) -> io::Result<Vec<u8>> {
    if level > 0 && looks_incompressible(data) {
        return Ok(stored_blocks(data, last));
    }
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == data.len();
        let done = if last {
            status == Status::StreamEnd
        } else {
            // A sync flush is complete once deflate stops short of filling
            // the buffer with all input consumed.
            all_in && out.len() < out.capacity()
        };
        if done {
            return Ok(out);
        }
    }
}

/// Whether `data`'s order-0 entropy is so close to 8 bits a byte that
/// deflate cannot shrink it: Huffman coding gains nothing there, and the
/// only other gain, repeats within 32 KiB, is rare in such data. Short
/// blocks are always deflated.
fn looks_incompressible(data: &[u8]) -> bool {
    // Below 16 KiB the estimate is too noisy, and the cost too small to care.
    if data.len() < 16 * 1024 {
        return false;
    }
    let mut counts = [0u32; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    entropy > ENTROPY_STORED
}

/// Bits a byte above which a block is stored. Uniformly random data comes to
/// 7.998 on a 128 KiB block; gzip, zstd and JPEG data to 7.97–7.999; text and
/// binaries stay far below.
const ENTROPY_STORED: f64 = 7.97;

/// `data` as stored deflate blocks (at most 65,535 bytes each); the stream
/// is byte-aligned before and after, as after a sync flush. The last block of
/// the stream has the final bit.
fn stored_blocks(data: &[u8], last: bool) -> Vec<u8> {
    const MAX: usize = 65_535;
    let mut out = Vec::with_capacity(data.len() + data.len() / MAX * 5 + 10);
    let mut chunks = data.chunks(MAX).peekable();
    if chunks.peek().is_none() && last {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let final_bit = u8::from(last && chunks.peek().is_none());
        let len = chunk.len() as u16;
        out.push(final_bit);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out
}
