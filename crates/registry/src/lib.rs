//! kiln's OCI distribution client: pull into any content
//! [`Ingester`](kiln_oci::content::Ingester) and push from any
//! [`Provider`](kiln_oci::content::Provider) (kiln's store implements both),
//! with docker-compatible authentication. It depends on kiln-oci alone.
//!
//! * [`Client`] talks to registries: one connection pool per host, TLS with
//!   extra CAs (`--ca-cert`, `certs.d`) or none (insecure registries),
//!   anonymous, basic and bearer-token auth driven by `WWW-Authenticate`
//!   challenges, and retries with backoff for 429, 5xx, timeouts and
//!   refused connections.
//! * [`Client::pull`] selects a platform from an index, streams blobs into
//!   the store concurrently, verifies every digest, resumes a dropped
//!   download with `Range`, and never refetches a blob the store has.
//!   [`Client::pull_all`] stores every platform of an index instead.
//! * [`Client::push`] checks for each blob with `HEAD`, mounts across
//!   repositories, uploads whole or in chunks, then pushes manifests, and
//!   for an index every platform's manifest before the index itself.
//! * [`AuthFiles`] reads and writes credentials as docker and podman do,
//!   including `docker-credential-*` helpers.
//!
//! ```no_run
//! use kiln_registry::{Client, ClientOptions};
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let store = kiln_store::Store::open("/tmp/kiln")?;
//! let auth = kiln_registry::AuthFiles::docker_and_containers("/root".as_ref(), None, None, None);
//! let client = Client::new(ClientOptions::new(auth));
//! let pulled = client.pull(&store, &"busybox".parse()?, None).await?;
//! println!("{}", pulled.manifest.digest);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod auth;
mod challenge;
mod client;
mod credentials;
mod errors;
mod foreign;
mod login;
mod manifest;
mod pull;
mod pull_all;
mod push;
mod registries;
mod short_names;
mod sys;

pub use challenge::Challenge;
pub use client::{Client, ClientOptions};
pub use credentials::{AuthFiles, Credentials};
pub use errors::{Error, ErrorKind, Result, Target};
pub use manifest::parse as parse_manifest;
pub use pull::Pulled;
pub use pull_all::PulledAll;
pub use push::{BlobOutcome, PushOptions, PushProgress, Pushed};
pub use registries::{Blocked, NameError, Registries, RegistriesError};
pub use short_names::first_that_pulls;
