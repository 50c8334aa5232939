//! What a build reports while it runs.
//!
//! Events are delivered to an [`EventSink`] on the thread that produced
//! them: stages run concurrently, so events of different stages interleave,
//! while the events of one stage always arrive in order.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;

/// Something that happened during a build.
// Serialisable so a remote daemon streams them as they are: each a JSON
// object tagged by `type` (docs/remote.md).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BuildEvent {
    /// The plan is resolved: `stages` stages with `instructions` steps in
    /// all (FROM lines included) will run.
    BuildStarted {
        /// Stages to run (unused stages are not counted).
        stages: usize,
        /// Instructions to run, one FROM per stage included.
        instructions: usize,
    },
    /// A stage's dependencies are done and it starts.
    StageStarted {
        /// The stage's index in the Dockerfile.
        index: usize,
        /// Its name (`AS name`), if any.
        name: Option<String>,
        /// What it starts from, as written after expansion (`scratch`,
        /// a stage name, an image reference).
        base: String,
        /// Its instructions, FROM included: the `M` of BuildKit's `[N/M]`.
        instructions: usize,
    },
    /// An instruction starts. Index 0 is the stage's FROM; the steps
    /// follow from 1.
    InstructionStarted {
        /// The stage's index in the Dockerfile.
        stage: usize,
        /// The instruction's index in the stage.
        index: usize,
        /// The instruction as BuildKit shows it (`COPY hello.sh ./`).
        text: String,
    },
    /// A line of output from an instruction.
    Output {
        /// The stage's index in the Dockerfile.
        stage: usize,
        /// The instruction's index in the stage.
        index: usize,
        /// The line, without its newline.
        line: String,
    },
    /// An instruction finished.
    InstructionComplete {
        /// The stage's index in the Dockerfile.
        stage: usize,
        /// The instruction's index in the stage.
        index: usize,
        /// True when the result came from the build cache.
        cached: bool,
    },
    /// A step was not taken from the cache, and why ("--no-cache",
    /// "COPY app/ /app/: app/main.rs changed", …).
    CacheMiss {
        /// The stage's index in the Dockerfile.
        stage: usize,
        /// The instruction's index in the stage.
        index: usize,
        /// Why.
        reason: String,
        /// Whether the miss is what the user would expect anyway (a first
        /// build, `--no-cache`), which progress displays need not show.
        expected: bool,
    },
    /// Bytes moving for the build outside any one step: a base image
    /// pulled from a registry. Sent when the transfer starts (`bytes` 0),
    /// as bytes arrive (at most ten times a second), and once more with
    /// `done` when it finished; one that fails ends with the build's
    /// [`BuildEvent::BuildFailed`] instead.
    Transfer {
        /// What moves, as shown: `pull docker.io/library/alpine:3.20`.
        what: String,
        /// Bytes received so far.
        bytes: u64,
        /// True on the transfer's last event.
        done: bool,
    },
    /// Bytes of the layer a step writes (COPY, ADD, RUN, WORKDIR), as they
    /// go into the store: compressed for the image's last layer, as its
    /// tar for any other (compressed later, off the step's path). Only a layer of [`BIG_LAYER`] bytes or
    /// more reports: from when it reaches that size, at most ten times a
    /// second, and once more with `done` when it is written; small layers
    /// take no time worth showing. Comes between the step's
    /// [`BuildEvent::InstructionStarted`] and
    /// [`BuildEvent::InstructionComplete`].
    LayerProgress {
        /// The stage's index in the Dockerfile.
        stage: usize,
        /// The instruction's index in the stage.
        index: usize,
        /// Bytes written so far: on the last event, the size of what was
        /// stored.
        current: u64,
        /// True on the layer's last event.
        done: bool,
    },
    /// A push of the image to one name starts (`--push`, `kiln push`): a
    /// step of its own, as BuildKit shows pushes. Its blobs follow as
    /// [`BuildEvent::PushBlob`], then [`BuildEvent::PushComplete`]; a push
    /// that fails ends with the build's [`BuildEvent::BuildFailed`] instead
    /// (or, for `kiln push`, with the command's error).
    PushStarted {
        /// Where to, as given: `localhost:5000/app:1`.
        reference: String,
    },
    /// One blob of a push: when its upload starts (`current` 0), as its
    /// bytes go (at most ten times a second), and when it is in the
    /// registry; a blob the registry has, or mounts, sends only that last
    /// event. Blobs go several at once, so their events interleave.
    PushBlob {
        /// The push's [`BuildEvent::PushStarted`] `reference`.
        reference: String,
        /// The blob's digest (`sha256:…`).
        digest: String,
        /// Bytes of it sent so far.
        current: u64,
        /// Its size.
        total: u64,
        /// Where it is.
        status: PushStatus,
    },
    /// A push finished: the registry has the image under `reference`.
    PushComplete {
        /// The push's [`BuildEvent::PushStarted`] `reference`.
        reference: String,
        /// The digest the registry has under it: of the manifest or index
        /// pushed.
        digest: String,
    },
    /// A stage finished.
    StageComplete {
        /// The stage's index in the Dockerfile.
        index: usize,
    },
    /// The image is written and exported.
    BuildComplete {
        /// The image id: the manifest digest.
        image_id: String,
    },
    /// Something in the Dockerfile works but deserves attention (an empty
    /// continuation line, an ignored `# syntax=` front end).
    Warning {
        /// The Dockerfile's name.
        file: String,
        /// The 1-based line the warning is about; 0 for one about the build
        /// as a whole (a `--cache-from` that cannot be read).
        line: usize,
        /// What to look at.
        message: String,
    },
    /// An event of one platform's build, in a `--platform a,b` build,
    /// whose platforms are built at the same time: their stage indexes
    /// repeat, so a display tells them apart by `platform` (`linux/arm64`).
    Platform {
        /// The platform.
        platform: String,
        /// The event.
        event: Box<BuildEvent>,
    },
    /// The build failed; no more events follow.
    BuildFailed {
        /// The error, as it would be printed.
        error: String,
    },
}

/// Layers smaller than this many bytes send no
/// [`BuildEvent::LayerProgress`]: one MiB.
pub const BIG_LAYER: u64 = 1 << 20;

/// Where a blob of a push is, in [`BuildEvent::PushBlob`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushStatus {
    /// Its bytes are going up.
    Uploading,
    /// It is uploaded: `current` is its size.
    Uploaded,
    /// The registry had it already; nothing was sent.
    Exists,
    /// The registry mounted it from another repository; nothing was sent.
    Mounted,
}

impl PushStatus {
    /// The status as `--progress=rawjson` and the plain lines write it:
    /// `uploading`, `uploaded`, `exists` or `mounted`.
    pub fn as_str(self) -> &'static str {
        match self {
            PushStatus::Uploading => "uploading",
            PushStatus::Uploaded => "uploaded",
            PushStatus::Exists => "exists",
            PushStatus::Mounted => "mounted",
        }
    }
}

type Callback = Box<dyn Fn(BuildEvent) + Send + Sync>;

/// Where a build sends its events: a channel, a callback, or nowhere. A
/// clone sends to the same place.
#[derive(Clone)]
pub struct EventSink {
    inner: std::sync::Arc<Sink>,
    /// Set on a [`EventSink::for_platform`] sink: every event goes out as
    /// [`BuildEvent::Platform`].
    platform: Option<String>,
}

enum Sink {
    Discard,
    Channel(Mutex<Sender<BuildEvent>>),
    Callback(Callback),
}

impl EventSink {
    /// Reports how a build ended ([`BuildEvent::BuildComplete`] or
    /// [`BuildEvent::BuildFailed`]) and hands `result` back: every
    /// backend's `build` ends this way.
    pub fn finish(
        &self,
        result: Result<crate::BuiltImage, crate::BuildError>,
    ) -> Result<crate::BuiltImage, crate::BuildError> {
        self.send(match &result {
            Ok(built) => BuildEvent::BuildComplete {
                image_id: built.image_id().to_string(),
            },
            Err(e) => BuildEvent::BuildFailed {
                error: e.to_string(),
            },
        });
        result
    }

    /// A sink that drops every event.
    pub fn discard() -> EventSink {
        EventSink::of(Sink::Discard)
    }

    fn of(sink: Sink) -> EventSink {
        EventSink {
            inner: std::sync::Arc::new(sink),
            platform: None,
        }
    }

    /// The same destination, with each event wrapped in
    /// [`BuildEvent::Platform`] for `platform`: what each platform of a
    /// `--platform a,b` build sends to, as they run at once.
    pub fn for_platform(&self, platform: &str) -> EventSink {
        EventSink {
            inner: self.inner.clone(),
            platform: Some(platform.to_string()),
        }
    }

    /// A sink feeding a std channel, and its receiving end. Events sent
    /// after the receiver is dropped are discarded.
    pub fn channel() -> (EventSink, Receiver<BuildEvent>) {
        let (tx, rx) = mpsc::channel();
        (EventSink::of(Sink::Channel(Mutex::new(tx))), rx)
    }

    /// A sink calling `f` for each event, on the thread that produced it.
    /// `f` may block: the stage that sent the event waits for it.
    pub fn callback(f: impl Fn(BuildEvent) + Send + Sync + 'static) -> EventSink {
        EventSink::of(Sink::Callback(Box::new(f)))
    }

    /// Delivers one event.
    pub fn send(&self, event: BuildEvent) {
        let event = match &self.platform {
            Some(p) => BuildEvent::Platform {
                platform: p.clone(),
                event: Box::new(event),
            },
            None => event,
        };
        match &*self.inner {
            Sink::Discard => {}
            Sink::Channel(tx) => {
                if let Ok(tx) = tx.lock() {
                    // A dropped receiver means nobody is listening any more.
                    let _ = tx.send(event);
                }
            }
            Sink::Callback(f) => f(event),
        }
    }
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match *self.inner {
            Sink::Discard => "discard",
            Sink::Channel(_) => "channel",
            Sink::Callback(_) => "callback",
        };
        f.debug_struct("EventSink").field("kind", &kind).finish()
    }
}
