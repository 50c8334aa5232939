//! Byte counts of transfers, as build events, without the registry client
//! knowing about build events:
//! * a pull, as [`BuildEvent::Transfer`]: an [`Ingester`] that passes
//!   everything to the store and counts the bytes written through it;
//! * a push: [`kiln_backend::push::Pusher`], which every backend pushing
//!   from kiln's store shares;
//! * a step's layer going into the store, as
//!   [`BuildEvent::LayerProgress`]: a writer counting what passes.

use kiln_backend::events::{BuildEvent, EventSink, BIG_LAYER};
use kiln_oci::content::{ContentError, Ingest, Ingester};
use kiln_oci::reference::Reference;
use kiln_oci::{Descriptor, Digest};
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
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
/// `inner`, the store's writer of a step's layer, counting the
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
}
