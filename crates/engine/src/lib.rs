//! kiln's build engine.
//!
//! The front end's [`kiln_frontend::stages::BuildPlan`] goes in; images come
//! out. Like BuildKit, the work is split into parts that know only their
//! neighbours' types:
//!
//! * [`backend`]: the [`backend::BuildBackend`] trait, the native backend
//!   that runs a build in this process, the buildah backend that drives
//!   the `buildah` command, and the choice between them
//!   ([`backend::BackendKind`]);
//! * [`solver`]: runs a plan's stages, independent ones concurrently;
//! * [`imagefs`]: a read-only view of an image's file system, merged from
//!   its layer tars without unpacking them (path lookup, symlink resolution
//!   inside the root, `/etc/passwd`, extracting subtrees);
//! * [`copy`]: COPY and ADD: which files a step adds and with what metadata,
//!   as a list of layer entries;
//! * `run`: what RUN needs from the machine: snapshots of layers
//!   ([`kiln_snapshot`]), the OCI runtime ([`kiln_runtime`]) and the
//!   `--mount`s of a step;
//! * [`export`]: writing the result to the store, an OCI layout, a
//!   docker-archive, a tar or a directory, or pushing it;
//! * [`events`]: what a build reports while it runs.
//!
//! ```no_run
//! use kiln_engine::backend::{BuildBackend, BuildRequest, Dockerfile, NativeBackend};
//! use kiln_engine::events::EventSink;
//!
//! let store = kiln_store::Store::open("/tmp/kiln")?;
//! let auth = kiln_registry::AuthFiles::docker_and_containers("/root".as_ref(), None, None, None);
//! let backend = NativeBackend::new(store, kiln_registry::ClientOptions::new(auth));
//! let dockerfile = Dockerfile {
//!     name: "Dockerfile".into(),
//!     bytes: b"FROM scratch\nCOPY hello.txt /\n".to_vec(),
//!     path: None,
//! };
//! let mut req = BuildRequest::new(dockerfile, Some("app".into()));
//! req.tags.push("hello:latest".parse()?);
//! let built = backend.build(&req, &EventSink::discard())?;
//! println!("{}", built.image_id());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod backend;
mod base;
mod cache;
pub mod copy;
pub mod events;
pub mod export;
pub mod imagefs;
mod run;
pub mod solver;
mod squash;
mod stage;
mod transfer;

pub use backend::{
    BackendKind, BuildBackend, BuildError, BuildRequest, BuildahBackend, BuiltImage, Dockerfile,
    NamedContext, NativeBackend, Pushed, SecretSource, Unavailable,
};
/// The process's one async runtime, for the registry client's and
/// downloads' calls. The engine is synchronous (stages run on threads), so
/// each caller blocks on it from its own thread; a multi-threaded runtime
/// lets several stages pull or push at once instead of queueing on one
/// thread. Not for use from inside async code.
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

pub use base::PullPolicy;
pub use cache::{
    open_index as open_cache_index, parse_cache_from, parse_cache_to, CacheExport, CacheLocation,
    CacheMode, ARTIFACT_TYPE as CACHE_ARTIFACT_TYPE, CONFIG_MEDIA_TYPE as CACHE_CONFIG_MEDIA_TYPE,
};
pub use events::{BuildEvent, EventSink};
pub use export::{Annotations, Output};
pub use kiln_runtime::Rlimit;
pub use run::RunDefaults;
pub use run::{reclaim, Reclaimed};
