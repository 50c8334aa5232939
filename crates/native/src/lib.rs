//! kiln's native build backend: builds Linux images (and Windows images
//! whose steps need no execution) in this process.
//!
//! The front end's [`kiln_frontend::stages::BuildPlan`] goes in; images come
//! out. Like BuildKit, the work is split into parts that know only their
//! neighbours' types:
//!
//! * [`NativeBackend`]: the [`kiln_backend::BuildBackend`] that plans a
//!   build, finds its base images and exports the result;
//! * [`solver`]: runs a plan's stages, independent ones concurrently;
//! * [`imagefs`]: a read-only view of an image's file system, merged from
//!   its layer tars without unpacking them (path lookup, symlink resolution
//!   inside the root, `/etc/passwd`, extracting subtrees);
//! * [`copy`]: COPY and ADD: which files a step adds and with what metadata,
//!   as a list of layer entries;
//! * `run`: what RUN needs from the machine: snapshots of layers
//!   ([`kiln_snapshot`]), the OCI runtime ([`kiln_runtime`]) and the
//!   `--mount`s of a step;
//! * `export`: writing the result to the store, an OCI layout, a
//!   docker-archive, a tar or a directory, or pushing it.
//!
//! What every backend shares (the request, the result, errors, build
//! events) is [`kiln_backend`]'s.
//!
//! ```no_run
//! use kiln_backend::{BuildBackend, BuildRequest, Dockerfile, EventSink};
//! use kiln_native::NativeBackend;
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

mod backend;
mod base;
mod cache;
mod compress;
pub mod context;
pub mod copy;
mod export;
pub mod hcs;
pub mod imagefs;
mod run;
pub mod solver;
mod squash;
mod stage;
mod transfer;

pub use backend::{availability, NativeBackend};
pub use cache::open_index as open_cache_index;
pub use hcs::HcsBackend;
pub use run::{reclaim, Reclaimed};
