//! What every kiln build backend shares: the seam between the CLI and the
//! engines that build.
//!
//! A backend takes a [`BuildRequest`] (the Dockerfile, the context, the
//! options `docker build` and buildx take) and reports [`BuildEvent`]s
//! while it runs; it names, pushes and gathers images into manifest lists.
//! kiln has these backends, each in its own crate, all behind
//! [`BuildBackend`]:
//!
//! * `kiln-native`: builds in this process (BuildKit's model: plan,
//!   solver, COPY/ADD, RUN through runc or crun on overlayfs snapshots);
//! * `kiln-buildah`: drives the `buildah` command;
//!
//! [`BackendKind`] names them and chooses one (`--backend`,
//! `KILN_BACKEND`, the host's default). The CLI opens the chosen one; no
//! backend crate knows the others.
#![deny(missing_docs)]

mod cache_spec;
mod error;
pub mod events;
mod output;
pub mod push;
mod request;
mod run_defaults;
mod select;
pub mod store_images;

pub use cache_spec::{
    parse_cache_from, parse_cache_to, CacheExport, CacheLocation, CacheMode, ARTIFACT_TYPE,
    CONFIG_MEDIA_TYPE,
};
pub use error::BuildError;
pub use events::{BuildEvent, EventSink};
pub use output::{Annotations, Output};
pub use request::{
    BuildRequest, BuiltImage, Dockerfile, NamedContext, PullPolicy, Pushed, SecretSource,
};
pub use run_defaults::RunDefaults;
pub use select::{BackendKind, Unavailable};

/// A step's resource limit (`--ulimit`), as the OCI runtime spec has it;
/// kiln-runtime owns the type because it writes it into `config.json`.
pub use kiln_runtime::Rlimit;

use kiln_oci::reference::Reference;

/// Something that can build images, and name, push and gather them into
/// manifest lists. Images are named as the backend's own store knows them
/// (a name, or an id or a unique prefix of one).
pub trait BuildBackend: Send + Sync {
    /// A short name (`native`, `buildah`).
    fn name(&self) -> &'static str;
    /// Whether the backend can run on this machine: what it runs with (a
    /// version) when it can, why not when it cannot.
    fn is_available(&self) -> Result<String, Unavailable>;
    /// Runs the build `req` describes, reporting to `events`.
    fn build(&self, req: &BuildRequest, events: &EventSink) -> Result<BuiltImage, BuildError>;
    /// What of its build context `req`'s build can read, when the backend
    /// can tell before building: paths relative to the context, each a
    /// file or a directory with everything under it. `None` (the default)
    /// is all of it. A remote client sends only these, as BuildKit's
    /// front end asks for only the paths a Dockerfile follows.
    fn context_paths(&self, req: &BuildRequest) -> Result<Option<Vec<String>>, BuildError> {
        let _ = req;
        Ok(None)
    }
    /// Gives `image` another name, `new_name`, which is parsed after the
    /// image is found, so a missing image is reported first.
    fn tag(&self, image: &str, new_name: &str) -> Result<(), BuildError>;
    /// Pushes `image` (an image or a manifest list) to `dest`, or to its
    /// own name, reporting to `events` as a build's push does; returns
    /// where it went and the digest the registry has.
    fn push(
        &self,
        image: &str,
        dest: Option<&Reference>,
        events: &EventSink,
    ) -> Result<Pushed, BuildError>;
    /// Starts an empty manifest list named `list`, replacing one of that
    /// name.
    fn manifest_create(&self, list: &Reference) -> Result<(), BuildError>;
    /// Adds `image` to the manifest list `list`, under its config's
    /// platform; an entry of the same digest is replaced.
    fn manifest_add(&self, list: &Reference, image: &str) -> Result<(), BuildError>;
    /// Pushes the manifest list `list` and the images it holds to `dest`.
    fn manifest_push(&self, list: &Reference, dest: &Reference) -> Result<Pushed, BuildError>;
}

/// The process's one async runtime, for the registry client's and
/// downloads' calls. The engines are synchronous (stages run on threads),
/// so each caller blocks on it from its own thread; a multi-threaded
/// runtime lets several stages pull or push at once instead of queueing on
/// one thread. Not for use from inside async code.
pub fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("kiln-io")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the async runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}
