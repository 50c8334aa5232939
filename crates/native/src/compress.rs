//! Layer compression off the build's critical path.
//!
//! A step's layer goes into the store as an uncompressed tar (its digest
//! is its diff_id), which costs what writing the diff costs; a worker
//! thread compresses it while later steps run (the image's last layer is
//! compressed as it is written instead: nothing runs after it), as
//! BuildKit keeps layers uncompressed until it exports them. Gzipping a
//! 150 MB layer of installed packages at commit used to add seconds to
//! every such step.
//!
//! The image written at the end waits for the compressed blobs of its own
//! layers only ([`Compressor::resolve`], which moves them to the front of
//! the queue). Its manifest, and so the image id, is the same whenever
//! the compression ran: the bytes depend only on the tar, the algorithm
//! and the level ([`kiln_oci::compress_tar`]).
//!
//! Cache records are written with the uncompressed layer when the step
//! ends, so a later step of the same build finds them, and rewritten with
//! the compressed one at the end (`BuildCache::settle`); the uncompressed
//! blobs then go ([`discard`]). A layer nobody needed compressed (a stage
//! the image does not use, a failed or squashed build) keeps its
//! uncompressed record and blob; the next build that puts it in an image
//! compresses it then.

use kiln_backend::BuildError;
use kiln_oci::{compress_tar, Compression, Digest};
use kiln_store::{media_type, Descriptor, Store};
use std::collections::{HashMap, VecDeque};
use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// The compression of one build's layers, by one worker thread (the
/// encoder itself uses every core).
pub(crate) struct Compressor<'s> {
    store: &'s Store,
    compression: Compression,
    threads: usize,
    jobs: Mutex<Jobs>,
    changed: Condvar,
    /// Set when the build is over: queued layers are left, the running
    /// one is abandoned.
    stop: AtomicBool,
}

#[derive(Default)]
struct Jobs {
    queue: VecDeque<Descriptor>,
    /// Every layer handed to [`Compressor::defer`], by its uncompressed
    /// digest: `None` until its compression ends.
    known: HashMap<Digest, Option<Result<Descriptor, String>>>,
    closed: bool,
}

impl<'s> Compressor<'s> {
    /// Runs `build` with a compressor for `compression` whose worker lives
    /// as long as `build` runs; when `build` returns (or panics), layers
    /// still queued are left uncompressed.
    pub(crate) fn scope<R>(
        store: &'s Store,
        compression: Compression,
        build: impl FnOnce(&Compressor<'s>) -> R,
    ) -> R {
        let compressor = Compressor {
            store,
            compression,
            threads: kiln_oci::LayerOptions::default().threads,
            jobs: Mutex::new(Jobs::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        };
        std::thread::scope(|scope| {
            scope.spawn(|| compressor.work());
            /// Stops the worker however `build` ends, so the scope can join it.
            struct Close<'a, 's>(&'a Compressor<'s>);
            impl Drop for Close<'_, '_> {
                fn drop(&mut self) {
                    self.0.stop.store(true, Ordering::Relaxed);
                    self.0.lock().closed = true;
                    self.0.changed.notify_all();
                }
            }
            let _close = Close(&compressor);
            build(&compressor)
        })
    }

    /// Queues `layer` (just stored, or taken from the cache) for
    /// compression when it is an uncompressed tar and the build asked for
    /// compression; anything else is final as it is.
    pub(crate) fn defer(&self, layer: &Descriptor) {
        if self.compression == Compression::None || layer.media_type != media_type::OCI_LAYER {
            return;
        }
        let mut jobs = self.lock();
        if jobs.known.contains_key(&layer.digest) {
            return;
        }
        jobs.known.insert(layer.digest, None);
        jobs.queue.push_back(layer.clone());
        self.changed.notify_all();
    }

    /// `layers` with each deferred one replaced by its compressed blob,
    /// waiting for those not compressed yet (put first in the queue).
    pub(crate) fn resolve(&self, layers: &[Descriptor]) -> Result<Vec<Descriptor>, BuildError> {
        let mut jobs = self.lock();
        let (mut wanted, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut jobs.queue)
            .into_iter()
            .partition(|q| layers.iter().any(|l| l.digest == q.digest));
        wanted.extend(rest);
        jobs.queue = wanted;
        let mut out = Vec::with_capacity(layers.len());
        for layer in layers {
            let (compressed, held) = self.wait_for(jobs, &layer.digest)?;
            jobs = held;
            out.push(compressed.unwrap_or_else(|| layer.clone()));
        }
        Ok(out)
    }

    /// Waits until every layer handed to [`Compressor::defer`] is
    /// compressed (for `--cache-to`, which shares them all).
    pub(crate) fn wait_all(&self) -> Result<(), BuildError> {
        let mut jobs = self.lock();
        let all: Vec<Digest> = jobs.known.keys().copied().collect();
        for digest in &all {
            jobs = self.wait_for(jobs, digest)?.1;
        }
        Ok(())
    }

    /// The compressed blob of the deferred layer `digest` once it is made
    /// (`None` for a layer never deferred), with the lock given back.
    fn wait_for<'a>(
        &'a self,
        mut jobs: MutexGuard<'a, Jobs>,
        digest: &Digest,
    ) -> Result<(Option<Descriptor>, MutexGuard<'a, Jobs>), BuildError> {
        loop {
            let why = match jobs.known.get(digest) {
                None => return Ok((None, jobs)),
                Some(Some(Ok(done))) => return Ok((Some(done.clone()), jobs)),
                Some(Some(Err(why))) => why.clone(),
                Some(None) if jobs.closed => "the build ended first".to_string(),
                Some(None) => {
                    jobs = self.changed.wait(jobs).unwrap_or_else(|p| p.into_inner());
                    continue;
                }
            };
            return Err(BuildError::Request(format!(
                "compressing layer {digest}: {why}"
            )));
        }
    }

    /// The layers compressed so far: (uncompressed digest, compressed blob).
    pub(crate) fn compressed(&self) -> HashMap<Digest, Descriptor> {
        self.lock()
            .known
            .iter()
            .filter_map(|(d, r)| match r {
                Some(Ok(c)) => Some((*d, c.clone())),
                _ => None,
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn work(&self) {
        loop {
            let layer = {
                let mut jobs = self.lock();
                loop {
                    if jobs.closed {
                        return;
                    }
                    if let Some(l) = jobs.queue.pop_front() {
                        break l;
                    }
                    jobs = self.changed.wait(jobs).unwrap_or_else(|p| p.into_inner());
                }
            };
            // A panic must still answer whoever waits for this layer.
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.compress(&layer)))
                    .unwrap_or_else(|_| Err("the compressor panicked".into()));
            self.lock().known.insert(layer.digest, Some(outcome));
            self.changed.notify_all();
        }
    }

    fn compress(&self, layer: &Descriptor) -> Result<Descriptor, String> {
        let blob = self
            .store
            .open_blob(&layer.digest)
            .map_err(|e| e.to_string())?;
        let tar = Stoppable {
            inner: BufReader::with_capacity(1 << 20, blob),
            stop: &self.stop,
        };
        let writer = self.store.ingest_prehashed().map_err(|e| e.to_string())?;
        let (written, writer) =
            compress_tar(tar, self.compression, self.threads, writer).map_err(|e| e.to_string())?;
        if written.diff_id != layer.digest {
            return Err(format!(
                "the stored tar hashes to {}, not to its name",
                written.diff_id
            ));
        }
        writer
            .commit(Some(written.digest))
            .map_err(|e| e.to_string())?;
        // A later build indexes the compressed blob, a step of this one
        // indexed the tar.
        crate::imagefs::headers::copy(self.store, &layer.digest, &written.digest);
        Ok(Descriptor::new(
            written.media_type,
            written.digest,
            written.size,
        ))
    }
}

/// Removes the uncompressed blobs of the layers in `compressed` (see
/// [`Store::discard`] for what is kept); failing to only costs disk space
/// until the next `kiln prune`.
pub(crate) fn discard(store: &Store, compressed: &HashMap<Digest, Descriptor>) {
    if compressed.is_empty() {
        return;
    }
    let digests: Vec<Digest> = compressed.keys().copied().collect();
    let _ = store.discard(&digests, || {
        crate::cache::open_index(store.root())
            .and_then(|c| c.referenced_blobs())
            .map(|v| v.into_iter().collect())
    });
}

/// A reader that fails once the build is over, so an abandoned layer's
/// compression stops at its next read.
struct Stoppable<'a, R> {
    inner: R,
    stop: &'a AtomicBool,
}

impl<R: Read> Read for Stoppable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            // Not `Interrupted`, which `io::copy` retries.
            return Err(io::Error::other("the build is over"));
        }
        self.inner.read(buf)
    }
}
