//! Byte counts of transfers, as build events, without the registry client
//! knowing about build events:
//! * a pull, as [`BuildEvent::Transfer`]: an [`Ingester`] that passes
//!   everything to the store and counts the bytes written through it;
//! * a push, as [`BuildEvent::PushStarted`], [`BuildEvent::PushBlob`] and
//!   [`BuildEvent::PushComplete`]: the client's [`PushProgress`] hook;
//! * a step's layer going compressed into the store, as
//!   [`BuildEvent::LayerProgress`]: a writer counting what passes.

use crate::events::{BuildEvent, EventSink, PushStatus, BIG_LAYER};
use kiln_oci::content::{ContentError, Ingest, Ingester};
use kiln_oci::reference::Reference;
use kiln_oci::{Descriptor, Digest};
use kiln_registry::{BlobOutcome, Client, PushOptions, PushProgress, Pushed};
use kiln_store::Store;
use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most events a transfer sends a second, besides its first and last.
const EVERY: Duration = Duration::from_millis(100);

/// `inner`, counting the bytes ingested into it for the transfer `what`.
pub(crate) struct Counted<'a> {
    inner: &'a dyn Ingester,
    events: &'a EventSink,
    what: String,
    bytes: AtomicU64,
    last_sent: Mutex<Instant>,
}

impl<'a> Counted<'a> {
    /// Starts the transfer: its first event goes out now, so a display
    /// shows it while the registry is still being reached.
    pub(crate) fn start(inner: &'a dyn Ingester, events: &'a EventSink, what: String) -> Self {
        events.send(BuildEvent::Transfer {
            what: what.clone(),
            bytes: 0,
            done: false,
        });
        Counted {
            inner,
            events,
            what,
            bytes: AtomicU64::new(0),
            last_sent: Mutex::new(Instant::now()),
        }
    }

    /// Sends the transfer's last event.
    pub(crate) fn finish(self) {
        self.events.send(BuildEvent::Transfer {
            what: self.what,
            bytes: self.bytes.into_inner(),
            done: true,
        });
    }

    fn add(&self, n: usize) {
        let bytes = self.bytes.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        // Layers download at once: whichever writer finds the interval
        // over reports the total, the others go on without waiting.
        let Ok(mut last) = self.last_sent.try_lock() else {
            return;
        };
        if last.elapsed() >= EVERY {
            *last = Instant::now();
            self.events.send(BuildEvent::Transfer {
                what: self.what.clone(),
                bytes,
                done: false,
            });
        }
    }
}

impl Ingester for Counted<'_> {
    fn has_blob(&self, digest: &Digest) -> bool {
        self.inner.has_blob(digest)
    }

    fn ingest(&self) -> Result<Box<dyn Ingest + '_>, ContentError> {
        Ok(Box::new(CountedIngest {
            inner: self.inner.ingest()?,
            counted: self,
        }))
    }

    fn put_image(
        &self,
        name: Option<&Reference>,
        manifest: &Descriptor,
    ) -> Result<(), ContentError> {
        self.inner.put_image(name, manifest)
    }
}

struct CountedIngest<'a> {
    inner: Box<dyn Ingest + 'a>,
    counted: &'a Counted<'a>,
}

impl Write for CountedIngest<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.counted.add(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Ingest for CountedIngest<'_> {
    fn written(&self) -> u64 {
        self.inner.written()
    }

    fn commit(self: Box<Self>, expected: &Digest) -> Result<(), ContentError> {
        self.inner.commit(expected)
    }
}

/// Pushes with `client`, each push reported to `events` as a step.
pub(crate) struct Pusher<'a> {
    pub(crate) client: &'a Client,
    pub(crate) events: &'a EventSink,
}

impl Pusher<'_> {
    /// Pushes `manifest` from `store` to `dest`, between a
    /// [`BuildEvent::PushStarted`] and a [`BuildEvent::PushComplete`]; the
    /// caller reports a failure.
    pub(crate) fn push(
        &self,
        store: &Store,
        manifest: &Descriptor,
        dest: &Reference,
    ) -> Result<Pushed, crate::BuildError> {
        let runtime = crate::runtime().map_err(crate::BuildError::Request)?;
        let reference = dest.to_string();
        self.events.send(BuildEvent::PushStarted {
            reference: reference.clone(),
        });
        let opts = PushOptions {
            progress: Some(Arc::new(PushEvents {
                events: self.events.clone(),
                reference: reference.clone(),
                last_sent: Mutex::new(HashMap::new()),
            })),
            ..PushOptions::default()
        };
        let pushed = runtime.block_on(self.client.push(store, manifest, dest, &opts))?;
        self.events.send(BuildEvent::PushComplete {
            reference,
            digest: pushed.digest.to_string(),
        });
        Ok(pushed)
    }
}

/// A push's blobs as [`BuildEvent::PushBlob`] events.
struct PushEvents {
    events: EventSink,
    reference: String,
    /// When each blob being uploaded last sent an event.
    last_sent: Mutex<HashMap<Digest, Instant>>,
}

impl PushEvents {
    fn send(&self, blob: &Descriptor, current: u64, status: PushStatus) {
        self.events.send(BuildEvent::PushBlob {
            reference: self.reference.clone(),
            digest: blob.digest.to_string(),
            current,
            total: blob.size,
            status,
        });
    }

    fn last_sent(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Instant>> {
        // The map holds only times: one a panicking holder left is as good.
        self.last_sent.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PushProgress for PushEvents {
    fn upload_started(&self, blob: &Descriptor) {
        self.last_sent().insert(blob.digest, Instant::now());
        self.send(blob, 0, PushStatus::Uploading);
    }

    fn upload_progress(&self, blob: &Descriptor, sent: u64) {
        {
            let mut last = self.last_sent();
            let when = last.entry(blob.digest).or_insert_with(Instant::now);
            if when.elapsed() < EVERY {
                return;
            }
            *when = Instant::now();
        }
        self.send(blob, sent, PushStatus::Uploading);
    }

    fn blob_done(&self, blob: &Descriptor, outcome: BlobOutcome) {
        self.last_sent().remove(&blob.digest);
        match outcome {
            BlobOutcome::Uploaded => self.send(blob, blob.size, PushStatus::Uploaded),
            BlobOutcome::Existing => self.send(blob, 0, PushStatus::Exists),
            BlobOutcome::Mounted => self.send(blob, 0, PushStatus::Mounted),
        }
    }
}

/// `inner`, the store's writer of a step's layer, counting the compressed
/// bytes that go through it as [`BuildEvent::LayerProgress`] of step
/// `index` of stage `stage`, once they reach [`BIG_LAYER`].
pub(crate) struct LayerCounter<'a, W> {
    inner: W,
    events: &'a EventSink,
    stage: usize,
    index: usize,
    bytes: u64,
    /// When the last event went; `None` before the first.
    last_sent: Option<Instant>,
}

impl<'a, W: Write> LayerCounter<'a, W> {
    pub(crate) fn new(inner: W, events: &'a EventSink, stage: usize, index: usize) -> Self {
        LayerCounter {
            inner,
            events,
            stage,
            index,
            bytes: 0,
            last_sent: None,
        }
    }

    /// The writer back, once the layer is written; a layer that reported
    /// sends its last event, with its size.
    pub(crate) fn finish(self) -> W {
        if self.last_sent.is_some() {
            self.send(true);
        }
        self.inner
    }

    fn send(&self, done: bool) {
        self.events.send(BuildEvent::LayerProgress {
            stage: self.stage,
            index: self.index,
            current: self.bytes,
            done,
        });
    }
}

impl<W: Write> Write for LayerCounter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        let due = match self.last_sent {
            None => self.bytes >= BIG_LAYER,
            Some(at) => at.elapsed() >= EVERY,
        };
        if due {
            self.last_sent = Some(Instant::now());
            self.send(false);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_counts_its_bytes_from_first_to_last_event() {
        let dir = tempfile::tempdir().unwrap();
        let store = kiln_store::Store::open(dir.path()).unwrap();
        let (events, rx) = EventSink::channel();
        let counted = Counted::start(&store, &events, "pull example".into());
        let blob = vec![7u8; 100_000];
        let digest = Digest::of(&blob);
        counted.put_bytes(&blob, &digest).unwrap();
        counted.finish();
        assert!(store.has_blob(&digest));
        let sent: Vec<BuildEvent> = rx.try_iter().collect();
        let transfer = |bytes, done| BuildEvent::Transfer {
            what: "pull example".into(),
            bytes,
            done,
        };
        assert_eq!(sent.first(), Some(&transfer(0, false)));
        assert_eq!(sent.last(), Some(&transfer(100_000, true)));
    }

    #[test]
    fn a_big_layer_reports_from_one_mib_to_its_size_and_a_small_one_not_at_all() {
        let (events, rx) = EventSink::channel();
        let mut small = LayerCounter::new(Vec::new(), &events, 0, 1);
        small.write_all(&vec![1u8; 1000]).unwrap();
        assert_eq!(small.finish().len(), 1000);
        assert_eq!(rx.try_iter().count(), 0);

        let mut big = LayerCounter::new(Vec::new(), &events, 2, 3);
        for _ in 0..3 {
            big.write_all(&vec![1u8; 600_000]).unwrap();
        }
        assert_eq!(big.finish().len(), 1_800_000);
        let sent: Vec<BuildEvent> = rx.try_iter().collect();
        let layer = |current, done| BuildEvent::LayerProgress {
            stage: 2,
            index: 3,
            current,
            done,
        };
        // The first write past a MiB reports; the next comes within 100 ms.
        assert_eq!(
            sent,
            vec![layer(1_200_000, false), layer(1_800_000, true)],
            "{sent:?}"
        );
    }

    #[test]
    fn a_push_reports_each_blob_from_start_to_its_size() {
        let (events, rx) = EventSink::channel();
        let push = PushEvents {
            events,
            reference: "localhost:5000/app:1".into(),
            last_sent: Mutex::new(HashMap::new()),
        };
        let blob = Descriptor::new("application/octet-stream", Digest::of(b"x"), 300);
        let had = Descriptor::new("application/octet-stream", Digest::of(b"y"), 7);
        push.upload_started(&blob);
        // Within 100 ms of the start: not sent.
        push.upload_progress(&blob, 100);
        push.blob_done(&blob, BlobOutcome::Uploaded);
        push.blob_done(&had, BlobOutcome::Existing);
        let event = |d: &Descriptor, current, status| BuildEvent::PushBlob {
            reference: "localhost:5000/app:1".into(),
            digest: d.digest.to_string(),
            current,
            total: d.size,
            status,
        };
        assert_eq!(
            rx.try_iter().collect::<Vec<_>>(),
            vec![
                event(&blob, 0, PushStatus::Uploading),
                event(&blob, 300, PushStatus::Uploaded),
                event(&had, 0, PushStatus::Exists),
            ]
        );
    }
}
