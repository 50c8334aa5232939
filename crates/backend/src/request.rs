//! What a build is asked to do ([`BuildRequest`]) and what it produced
//! ([`BuiltImage`], [`Pushed`]): the same for every backend.

use crate::cache_spec::{CacheExport, CacheLocation};
use crate::output::{Annotations, Output};
use crate::run_defaults::RunDefaults;
use kiln_frontend::stages::Platform;
use kiln_oci::reference::Reference;
use kiln_oci::{Compression, Descriptor, Digest};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Where a push went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// The name pushed to.
    pub reference: Reference,
    /// The manifest (or index) digest the registry now has under it.
    pub digest: Digest,
}

/// The Dockerfile of a build.
#[derive(Clone, Debug)]
pub struct Dockerfile {
    /// The name errors use (`Dockerfile`, `app/Dockerfile`, `<stdin>`).
    pub name: String,
    /// Its contents.
    pub bytes: Vec<u8>,
    /// Its path, when it is a file: `<path>.dockerignore` is looked for
    /// beside it.
    pub path: Option<PathBuf>,
}

/// A `--build-context name=VALUE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory, usable with `COPY --from=name`.
    Dir(PathBuf),
    /// `docker-image://REF`: this image instead of the one named.
    Image(String),
    /// `oci-layout://DIR[:TAG]` or `oci-layout://DIR@sha256:…`: an image
    /// from an OCI layout on disk.
    OciLayout {
        /// The layout directory.
        path: PathBuf,
        /// A tag or digest; `None` when the layout holds one image.
        reference: Option<String>,
    },
}

impl FromStr for NamedContext {
    type Err = String;

    fn from_str(value: &str) -> Result<NamedContext, String> {
        if let Some(reference) = value.strip_prefix("docker-image://") {
            Reference::parse(reference).map_err(|e| e.to_string())?;
            return Ok(NamedContext::Image(reference.to_string()));
        }
        if let Some(rest) = value.strip_prefix("oci-layout://") {
            let (path, reference) = match rest.rsplit_once('@') {
                Some((p, d)) => (p, Some(d.to_string())),
                None => match rest.rsplit_once(':') {
                    Some((p, t)) if !t.contains('/') => (p, Some(t.to_string())),
                    _ => (rest, None),
                },
            };
            return Ok(NamedContext::OciLayout {
                path: PathBuf::from(path),
                reference,
            });
        }
        if let Some((scheme, _)) = value.split_once("://") {
            return Err(format!(
                "build contexts of type {scheme}:// are not supported; use a directory, docker-image://REF or oci-layout://DIR[:TAG]"
            ));
        }
        Ok(NamedContext::Dir(PathBuf::from(value)))
    }
}

/// Where a `--secret` comes from: read by the engine when a RUN mounts it,
/// or given as bytes (an environment variable the caller read: the engine
/// reads no environment).
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file, read when a RUN mounts the secret.
    File(PathBuf),
    /// The secret itself.
    Value(Vec<u8>),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::File(p) => f.debug_tuple("File").field(p).finish(),
            SecretSource::Value(v) => write!(f, "Value(<{} bytes, redacted>)", v.len()),
        }
    }
}

/// Everything a build needs besides the store.
#[derive(Clone, Debug)]
pub struct BuildRequest {
    /// The Dockerfile.
    pub dockerfile: Dockerfile,
    /// The build context directory; `None` for a build without one (only
    /// steps that need no files from it can run).
    pub context: Option<PathBuf>,
    /// `--build-arg`s.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build (default: the last one).
    pub target: Option<String>,
    /// `--platform` (default: this host's).
    pub platform: Option<Platform>,
    /// `--platform a,b`: with two or more, the build runs once for each
    /// and the result is an image index; `platform` is then ignored.
    pub platforms: Vec<Platform>,
    /// Names for the image (`-t`).
    pub tags: Vec<Reference>,
    /// `--label`s, set on the final image after its own LABELs.
    pub labels: BTreeMap<String, String>,
    /// `--no-cache`: take no step from the build cache (results are still
    /// recorded).
    pub no_cache: bool,
    /// `--no-cache-filter`: stages (names or indexes) that take no step
    /// from the cache.
    pub no_cache_filter: Vec<String>,
    /// `--cache-from`: shared caches whose steps this build may take.
    pub cache_from: Vec<CacheLocation>,
    /// `--cache-to`: shared caches the build's steps are written to.
    pub cache_to: Vec<CacheExport>,
    /// `--pull`: when the registry is asked for base images.
    pub pull: PullPolicy,
    /// `--squash`: the layers the build adds on its base image become one.
    pub squash: bool,
    /// `--build-context`s by name.
    pub build_contexts: BTreeMap<String, NamedContext>,
    /// Where the result goes (default: the store).
    pub outputs: Vec<Output>,
    /// Compression of new layers.
    pub compression: Compression,
    /// Write Docker schema 2 media types for the manifest, config, layers
    /// and index instead of OCI's (`--format docker`,
    /// `oci-mediatypes=false`): podman 4 ignores HEALTHCHECK in OCI configs.
    pub docker_media_types: bool,
    /// `SOURCE_DATE_EPOCH`: clamps new files' mtimes and sets `created`
    /// and history times, for reproducible images.
    pub source_date_epoch: Option<i64>,
    /// `--secret`s by id, for `RUN --mount=type=secret`.
    pub secrets: BTreeMap<String, SecretSource>,
    /// `--ssh` agent sockets by id, for `RUN --mount=type=ssh`.
    pub ssh: BTreeMap<String, PathBuf>,
    /// `--runtime`: the OCI runtime for RUN (`runc`, `crun` or a path);
    /// `None` picks one that works on this host.
    pub runtime: Option<String>,
    /// `--allow network.host`: RUN steps may use `--network=host`, as
    /// BuildKit's entitlement allows.
    pub allow_network_host: bool,
    /// The build-wide settings of RUN steps (`--network`, `--add-host`,
    /// `--shm-size`, `--ulimit`).
    pub run: RunDefaults,
    /// `--annotation`s of the image's manifest, index and descriptors.
    pub annotations: Annotations,
    /// Set it (from a signal handler, another thread) to stop the build:
    /// running containers are killed, their snapshots removed, and the
    /// build fails with [`BuildError::Interrupted`].
    pub interrupt: Arc<AtomicBool>,
}

impl BuildRequest {
    /// A request with defaults: the last stage, this host's platform, no
    /// tags, gzip layers, output to the store.
    pub fn new(dockerfile: Dockerfile, context: Option<PathBuf>) -> BuildRequest {
        BuildRequest {
            dockerfile,
            context,
            build_args: BTreeMap::new(),
            target: None,
            platform: None,
            tags: Vec::new(),
            labels: BTreeMap::new(),
            pull: PullPolicy::Missing,
            squash: false,
            no_cache: false,
            no_cache_filter: Vec::new(),
            cache_from: Vec::new(),
            cache_to: Vec::new(),
            platforms: Vec::new(),
            build_contexts: BTreeMap::new(),
            outputs: vec![Output::Image { push: false }],
            compression: Compression::default(),
            docker_media_types: false,
            source_date_epoch: None,
            secrets: BTreeMap::new(),
            ssh: BTreeMap::new(),
            runtime: None,
            allow_network_host: false,
            run: RunDefaults::default(),
            annotations: Annotations::default(),
            interrupt: Arc::default(),
        }
    }
}

/// What a build produced.
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltImage {
    /// The image manifest (or, for several platforms, the index), in the
    /// store.
    pub manifest: Descriptor,
    /// The config's descriptor (for an index, the index's again).
    pub config: Descriptor,
    /// The names it was given.
    pub tags: Vec<Reference>,
    /// Number of layers.
    pub layers: usize,
    /// Config plus layer blobs, in bytes (compressed).
    pub size: u64,
    /// How long the build took.
    pub build_time: Duration,
    /// True for a multi-platform index.
    pub is_index: bool,
}

impl BuiltImage {
    /// The image id as `docker build -q`/`--iidfile`, buildx, podman and
    /// buildah give it, and as `kiln images` shows it: the config's digest;
    /// for a multi-platform index, which has no one config, the index's
    /// digest (buildx's `--iidfile` then). Every kiln command takes either
    /// it or the manifest digest.
    pub fn image_id(&self) -> Digest {
        if self.is_index {
            self.manifest.digest
        } else {
            self.config.digest
        }
    }
}

/// When a build asks the registry for a base image it names
/// (`--pull`, podman's values; a named context is not pulled).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// From the store when it has the image, else from the registry.
    #[default]
    Missing,
    /// From the registry every time; a registry that fails fails the
    /// build (buildx's `--pull`).
    Always,
    /// From the registry when it answers (getting a newer image if there
    /// is one), else from the store, with a warning.
    Newer,
    /// From the store only.
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = String;

    /// podman's names (`always`, `missing`, `never`, `newer`) and buildx's
    /// booleans (`true` is `always`, `false` is `missing`).
    fn from_str(s: &str) -> Result<PullPolicy, String> {
        match s {
            "always" | "true" => Ok(PullPolicy::Always),
            "missing" | "false" => Ok(PullPolicy::Missing),
            "newer" => Ok(PullPolicy::Newer),
            "never" => Ok(PullPolicy::Never),
            other => Err(format!(
                "--pull={other}: expected always, missing, newer or never"
            )),
        }
    }
}
