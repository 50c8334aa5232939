//! Pushing from kiln's store as steps of a build's progress: the registry
//! client's [`PushProgress`] hook turned into [`BuildEvent::PushStarted`],
//! [`BuildEvent::PushBlob`] and [`BuildEvent::PushComplete`], without the
//! registry client knowing about build events. Shared by every backend
//! whose images land in kiln's store.

use crate::events::{BuildEvent, EventSink, PushStatus};
use kiln_oci::reference::Reference;
use kiln_oci::{Descriptor, Digest};
use kiln_registry::{BlobOutcome, Client, PushOptions, PushProgress, Pushed};
use kiln_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a blob's upload reports its bytes, at most.
const EVERY: Duration = Duration::from_millis(100);

/// Pushes with `client`, each push reported to `events` as a step.
pub struct Pusher<'a> {
    /// The registry client pushes go through.
    pub client: &'a Client,
    /// Where each push is reported.
    pub events: &'a EventSink,
}

impl Pusher<'_> {
    /// Pushes `manifest` from `store` to `dest`, between a
    /// [`BuildEvent::PushStarted`] and a [`BuildEvent::PushComplete`]; the
    /// caller reports a failure.
    pub fn push(
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

#[cfg(test)]
mod tests {
    use super::*;

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
