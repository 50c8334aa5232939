//! Build backends: the [`BuildBackend`] trait, what a build is asked to do
//! ([`BuildRequest`]) and what it produced ([`BuiltImage`]), the
//! [`NativeBackend`], which builds in this process, the [`BuildahBackend`],
//! which drives the `buildah` command, and how one is chosen
//! ([`BackendKind`]).
//!
//! The native build, as BuildKit's Dockerfile frontend does it:
//! 1. parse, and resolve the plan once to learn the base images;
//! 2. find each base (store, registry, named context) and read its config;
//! 3. resolve again with the bases' ENV (so `$PATH` expands from the base)
//!    and with the ONBUILD triggers of base images inserted after their
//!    FROM lines;
//! 4. run the stages with the [`crate::solver`], independent ones at once;
//! 5. write the target stage's config and manifest into the store and
//!    [`crate::export`] it.

mod buildah;
mod error;
mod select;
mod store_images;

pub use buildah::BuildahBackend;
pub use error::BuildError;
pub use select::{set_remote_connector, BackendKind, RemoteConnector, Unavailable};

use crate::base::Bases;
use crate::cache::{BuildCache, CacheExport, CacheLocation};
use crate::events::{BuildEvent, EventSink};
use crate::export::{self, Output};
use crate::run::Exec;
use crate::solver;
use crate::stage::{self, StageContext};
use kiln_frontend::dockerignore::{self, Matcher};
use kiln_frontend::stages::{self, Base, BuildPlan, Platform, ResolveOptions};
use kiln_frontend::{Ast, Error as DockerfileError, ErrorKind};
use kiln_oci::reference::Reference;
use kiln_oci::{Compression, Digest};
use kiln_registry::{Client, ClientOptions};
use kiln_store::{Descriptor, Store};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    /// Gives `image` another name, `new_name`, which is parsed after the
    /// image is found, so a missing image is reported first.
    fn tag(&self, image: &str, new_name: &str) -> Result<(), BuildError>;
    /// Pushes `image` (an image or a manifest list) to `dest`, or to its
    /// own name; returns where it went and the digest the registry has.
    fn push(&self, image: &str, dest: Option<&Reference>) -> Result<Pushed, BuildError>;
    /// Starts an empty manifest list named `list`, replacing one of that
    /// name.
    fn manifest_create(&self, list: &Reference) -> Result<(), BuildError>;
    /// Adds `image` to the manifest list `list`, under its config's
    /// platform; an entry of the same digest is replaced.
    fn manifest_add(&self, list: &Reference, image: &str) -> Result<(), BuildError>;
    /// Pushes the manifest list `list` and the images it holds to `dest`.
    fn manifest_push(&self, list: &Reference, dest: &Reference) -> Result<Pushed, BuildError>;
}

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
    pub pull: crate::PullPolicy,
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
    pub run: crate::RunDefaults,
    /// `--annotation`s of the image's manifest, index and descriptors.
    pub annotations: crate::Annotations,
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
            pull: crate::PullPolicy::Missing,
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
            run: crate::RunDefaults::default(),
            annotations: crate::Annotations::default(),
            interrupt: Arc::default(),
        }
    }
}

/// What a build produced.
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltImage {
    /// The image manifest, in the store. Its digest is the image id.
    pub manifest: Descriptor,
    /// The config's descriptor.
    pub config: Descriptor,
    /// The names it was given.
    pub tags: Vec<Reference>,
    /// Number of layers.
    pub layers: usize,
    /// Config plus layer blobs, in bytes (compressed).
    pub size: u64,
    /// How long the build took.
    pub build_time: Duration,
    /// True for a multi-platform index (not built yet: always false).
    pub is_index: bool,
}

impl BuiltImage {
    /// The image id: the manifest digest, as containerd and `docker
    /// images --digests` show it (not the config digest of docker's
    /// classic store).
    pub fn image_id(&self) -> Digest {
        self.manifest.digest
    }
}

/// Builds in this process: no daemon, no container for steps that need
/// none; RUN steps run in containers of an OCI runtime (runc or crun) on
/// overlayfs snapshots.
#[derive(Debug)]
pub struct NativeBackend {
    store: Store,
    registry: ClientOptions,
    snapshotter: Option<kiln_snapshot::DriverKind>,
}

impl NativeBackend {
    /// A backend writing into `store`, reaching registries with `registry`.
    pub fn new(store: Store, registry: ClientOptions) -> NativeBackend {
        NativeBackend {
            store,
            registry,
            snapshotter: None,
        }
    }

    /// Forces RUN's snapshotter (overlayfs, or the copying one) instead of
    /// the one that works here.
    pub fn with_snapshotter(mut self, kind: Option<kiln_snapshot::DriverKind>) -> NativeBackend {
        self.snapshotter = kind;
        self
    }

    /// The store images are built into.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl BuildBackend for NativeBackend {
    fn name(&self) -> &'static str {
        "native"
    }

    fn is_available(&self) -> Result<String, Unavailable> {
        native_availability()
    }

    fn tag(&self, image: &str, new_name: &str) -> Result<(), BuildError> {
        store_images::tag(&self.store, image, new_name)
    }

    fn push(&self, image: &str, dest: Option<&Reference>) -> Result<Pushed, BuildError> {
        store_images::push(&self.store, &self.registry, image, dest)
    }

    fn manifest_create(&self, list: &Reference) -> Result<(), BuildError> {
        store_images::manifest_create(&self.store, list)
    }

    fn manifest_add(&self, list: &Reference, image: &str) -> Result<(), BuildError> {
        store_images::manifest_add(&self.store, list, image)
    }

    fn manifest_push(&self, list: &Reference, dest: &Reference) -> Result<Pushed, BuildError> {
        store_images::push(&self.store, &self.registry, &list.to_string(), Some(dest))
    }

    fn build(&self, req: &BuildRequest, events: &EventSink) -> Result<BuiltImage, BuildError> {
        let started = Instant::now();
        let mut result = self.run(req, events);
        if let (Err(BuildError::CacheLayer(why)), false) = (&result, req.cache_from.is_empty()) {
            // Its records were taken before its layer turned out missing
            // or corrupt: without the cache, those steps run.
            events.send(BuildEvent::Warning {
                file: req.dockerfile.name.clone(),
                line: 0,
                message: format!("{why}; building again without --cache-from"),
            });
            let mut again = req.clone();
            again.cache_from.clear();
            result = self.run(&again, events);
        }
        let result = result.map(|mut built| {
            built.build_time = started.elapsed();
            built
        });
        events.send(match &result {
            Ok(built) => BuildEvent::BuildComplete {
                image_id: built.image_id().to_string(),
            },
            Err(e) => BuildEvent::BuildFailed {
                error: e.to_string(),
            },
        });
        result
    }
}

/// The native backend runs wherever Linux namespaces do.
fn native_availability() -> Result<String, Unavailable> {
    if cfg!(target_os = "linux") {
        Ok("builds in this process (RUN with runc or crun)".into())
    } else {
        Err(Unavailable::new(
            "RUN needs Linux namespaces and overlayfs; this host is not Linux",
        ))
    }
}

/// An index entry's platform: the one asked for, with the image's own
/// `os.version` and `os.features` (a Windows base's build and features,
/// which its config carries), as moby and BuildKit write them.
fn entry_platform(asked: &Platform, config: &kiln_oci::ImageConfig) -> Platform {
    let mut platform = asked.clone();
    if let Some(own) = Platform::from_json(&serde_json::Value::Object(config.as_json().clone()))
        .filter(|o| o.os == asked.os)
    {
        if own.os_version.is_some() {
            platform.os_version = own.os_version;
        }
        if !own.os_features.is_empty() {
            platform.os_features = own.os_features;
        }
    }
    platform
}

/// One platform's image, written to the store but not yet exported.
struct Solved {
    target: std::sync::Arc<stage::StageOutput>,
    image: export::WrittenImage,
    /// For each `--cache-to`, the steps it writes.
    cache_records: Vec<Vec<(Digest, kiln_cache::Record)>>,
}

/// Writes each `--cache-to` of `req` with the records of every solved
/// platform together, so one platform's do not replace another's.
fn export_caches(
    req: &BuildRequest,
    solved: &[&Solved],
    client: &Client,
    store: &Store,
) -> Result<(), BuildError> {
    for (i, to) in req.cache_to.iter().enumerate() {
        let records: Vec<(Digest, kiln_cache::Record)> = solved
            .iter()
            .flat_map(|s| s.cache_records[i].iter().cloned())
            .collect();
        crate::cache::export_records(to, client, store, &records).map_err(BuildError::Request)?;
    }
    Ok(())
}

impl NativeBackend {
    fn run(&self, req: &BuildRequest, events: &EventSink) -> Result<BuiltImage, BuildError> {
        if req.tags.is_empty() && req.outputs.contains(&Output::Image { push: true }) {
            return Err(BuildError::Request(
                "pushing needs a name: add -t REGISTRY/REPOSITORY:TAG".into(),
            ));
        }
        req.annotations
            .check(req.platforms.len(), req.docker_media_types)
            .map_err(BuildError::Request)?;
        let client = Client::new(self.registry.clone());
        if req.platforms.len() > 1 {
            return self.run_platforms(req, events, &client);
        }
        let solved = self.solve(req, events, &client)?;
        export_caches(req, &[&solved], &client, &self.store)?;
        let Solved { target, image, .. } = solved;
        let tags = export::export(
            &self.store,
            &client,
            &image.manifest,
            &target,
            &req.tags,
            &req.outputs,
            &req.annotations.index_descriptor,
        )?;
        Ok(BuiltImage {
            layers: target.layers.len(),
            size: image.config.size + target.layers.iter().map(|l| l.size).sum::<u64>(),
            manifest: image.manifest,
            config: image.config,
            tags,
            build_time: Duration::ZERO,
            is_index: false,
        })
    }

    /// `--platform a,b`: the platforms built at once, then an OCI index of
    /// their manifests, exported as one image. The root file system outputs
    /// get a directory per platform (`linux_amd64/`), as BuildKit's do.
    fn run_platforms(
        &self,
        req: &BuildRequest,
        events: &EventSink,
        client: &Client,
    ) -> Result<BuiltImage, BuildError> {
        for output in &req.outputs {
            let unsupported = match output {
                Output::Docker { .. } => Some("a docker-archive holds one platform's image"),
                Output::Tar { .. } => Some("a type=tar output holds one platform's file system"),
                _ => None,
            };
            if let Some(why) = unsupported {
                return Err(BuildError::NotSupported(format!(
                    "--platform {}: {why}; use type=oci or type=local, or build one platform",
                    platform_list(&req.platforms)
                )));
            }
        }
        // The platforms build at once, as BuildKit's do; each one's events
        // carry its platform.
        let results: Vec<Result<Solved, BuildError>> = std::thread::scope(|scope| {
            let running: Vec<_> = req
                .platforms
                .iter()
                .map(|platform| {
                    let mut one = req.clone();
                    one.platform = Some(platform.clone());
                    one.platforms = Vec::new();
                    let sink = events.for_platform(&platform.to_string());
                    scope.spawn(move || self.solve(&one, &sink, client))
                })
                .collect();
            running
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(BuildError::Request("a platform's build panicked".into()))
                    })
                })
                .collect()
        });
        // A platform that failed cancels the others through the shared
        // flag, and they come back interrupted: report the failure itself.
        let mut solved = Vec::new();
        let mut errors = Vec::new();
        for (platform, result) in req.platforms.iter().zip(results) {
            match result {
                Ok(s) => solved.push((platform, s)),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            let own = errors
                .iter()
                .position(|e| !matches!(e, BuildError::Interrupted | BuildError::Cancelled))
                .unwrap_or(0);
            return Err(errors.swap_remove(own));
        }
        let all: Vec<&Solved> = solved.iter().map(|(_, s)| s).collect();
        export_caches(req, &all, client, &self.store)?;
        let entries = solved
            .iter()
            .map(|(platform, s)| {
                let platform = entry_platform(platform, &s.target.config);
                let mut entry = s.image.manifest.clone().with_platform(&platform);
                entry
                    .annotations
                    .extend(req.annotations.manifest_descriptor.clone());
                entry
            })
            .collect();
        let format = if req.docker_media_types {
            kiln_oci::ManifestFormat::DockerManifestList
        } else {
            kiln_oci::ManifestFormat::OciIndex
        };
        let mut index = kiln_oci::Index::new(format, entries);
        index.annotations = req.annotations.index.clone();
        let info = self.store.put_bytes(&index.to_json())?;
        let index = Descriptor::new(kiln_store::media_type::OCI_INDEX, info.digest, info.size);
        let mut tags = Vec::new();
        let mut image_outputs = Vec::new();
        for output in &req.outputs {
            match output {
                Output::Local { dest } => {
                    for (platform, s) in &solved {
                        let mut dir = format!("{}_{}", platform.os, platform.architecture);
                        if let Some(v) = &platform.variant {
                            dir = format!("{dir}_{v}");
                        }
                        let one = [Output::Local {
                            dest: dest.join(dir),
                        }];
                        export::export(
                            &self.store,
                            client,
                            &s.image.manifest,
                            &s.target,
                            &[],
                            &one,
                            &BTreeMap::new(),
                        )?;
                    }
                }
                other => image_outputs.push(other.clone()),
            }
        }
        if !image_outputs.is_empty() {
            // The image outputs read no file system; any target serves.
            let first = &solved[0].1.target;
            tags = export::export(
                &self.store,
                client,
                &index,
                first,
                &req.tags,
                &image_outputs,
                &req.annotations.index_descriptor,
            )?;
        }
        Ok(BuiltImage {
            layers: solved.iter().map(|(_, s)| s.target.layers.len()).sum(),
            size: info.size
                + solved
                    .iter()
                    .map(|(_, s)| {
                        s.image.manifest.size
                            + s.image.config.size
                            + s.target.layers.iter().map(|l| l.size).sum::<u64>()
                    })
                    .sum::<u64>(),
            manifest: index.clone(),
            config: index,
            tags,
            build_time: Duration::ZERO,
            is_index: true,
        })
    }

    /// Parses, plans and runs the build for one platform, and writes the
    /// image's config and manifest into the store (untagged).
    fn solve(
        &self,
        req: &BuildRequest,
        events: &EventSink,
        client: &Client,
    ) -> Result<Solved, BuildError> {
        let ast = kiln_frontend::parse(&req.dockerfile.name, &req.dockerfile.bytes)?;
        let syntax = kiln_frontend::syntax_warning(&req.dockerfile.bytes);
        for warning in syntax.iter().chain(&ast.warnings) {
            events.send(BuildEvent::Warning {
                file: ast.file.clone(),
                line: warning.line,
                message: warning.message.clone(),
            });
        }
        let ignore = load_ignore(req)?;
        let mut named_ignores = BTreeMap::new();
        for (name, ctx) in &req.build_contexts {
            if let NamedContext::Dir(dir) = ctx {
                check_dir(dir, &format!("build context {name:?}"))?;
                named_ignores.insert(
                    name.clone(),
                    dockerignore::load(dir, &dir.join("Dockerfile"))?,
                );
            }
        }
        let bases = Bases::new(&self.store, client, req.pull, &req.build_contexts, events);
        let mut options = ResolveOptions {
            build_args: req.build_args.clone(),
            target: req.target.clone(),
            ..ResolveOptions::default()
        };
        if let Some(p) = &req.platform {
            options.target_platform = p.clone();
        }
        let (ast, plan) = plan_with_bases(ast, &mut options, &bases)?;
        events.send(BuildEvent::BuildStarted {
            stages: plan.stages.len(),
            instructions: plan.stages.iter().map(|s| s.steps.len() + 1).sum(),
        });
        let scratch = tempfile::Builder::new()
            .prefix("build-")
            .tempdir_in(self.store.tmp_dir())
            .map_err(|e| BuildError::Output {
                path: self.store.tmp_dir().to_path_buf(),
                source: e,
            })?;
        let exec = Exec::new(&self.store, req.runtime.clone(), self.snapshotter);
        let mut cache =
            BuildCache::open(self.store.root(), req.no_cache, req.no_cache_filter.clone())
                .map_err(|e| BuildError::Request(format!("opening the build cache: {e}")))?;
        for location in &req.cache_from {
            if let Err(message) = cache.import(location, client, &self.store) {
                events.send(BuildEvent::Warning {
                    file: ast.file.clone(),
                    line: 0,
                    message,
                });
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let ctx = StageContext {
            ast: &ast,
            plan: &plan,
            store: &self.store,
            bases: &bases,
            events,
            context: req.context.as_deref(),
            ignore: &ignore,
            named_ignores: &named_ignores,
            compression: req.compression,
            epoch: req.source_date_epoch,
            now,
            scratch: scratch.path(),
            exec: &exec,
            secrets: &req.secrets,
            ssh: &req.ssh,
            allow_network_host: req.allow_network_host,
            run: &req.run,
            warned: &Mutex::new(Vec::new()),
            cache: &cache,
            client,
        };
        let cancel = solver::Cancel::new(req.interrupt.clone());
        let solved = solver::solve(&plan.stages, &cancel, |stage, done, cancel| {
            stage::run(&ctx, stage, done, cancel)
        });
        if cancel.is_interrupted() {
            return Err(BuildError::Interrupted);
        }
        cancel.finish();
        let mut done = solved?;
        let mut target = plan
            .stages
            .last()
            .and_then(|s| done.remove(&s.index))
            .ok_or_else(|| BuildError::Request("the plan has no stages".into()))?;
        // A foreign layer still foreign here was kept (`--keep-foreign-layers`):
        // only a docker-archive, which has no way to point at it, needs its
        // bytes.
        let archive = req
            .outputs
            .iter()
            .any(|o| matches!(o, Output::Docker { .. }));
        for layer in target.layers.iter().filter(|l| archive || !l.is_foreign()) {
            cache
                .ensure_blob(client, &self.store, layer)
                .map_err(BuildError::CacheLayer)?;
        }
        if req.squash {
            target = std::sync::Arc::new(crate::squash::squash(
                &self.store,
                scratch.path(),
                &target,
                req.compression,
                req.source_date_epoch,
            )?);
        }
        if req
            .outputs
            .iter()
            .any(|o| matches!(o, Output::Local { .. } | Output::Tar { .. }))
        {
            std::sync::Arc::make_mut(&mut target).fs.catch_up(&ctx)?;
        }
        let image = export::write_image(
            &self.store,
            &target,
            &req.labels,
            &req.annotations.manifest,
            req.docker_media_types,
        )?;
        cache.keep_remote_hits(&self.store);
        let stages = image_stages(&plan);
        let cache_records = req
            .cache_to
            .iter()
            .map(|to| cache.records_for(to.mode, &stages))
            .collect();
        Ok(Solved {
            target,
            image,
            cache_records,
        })
    }
}

fn platform_list(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The stages whose steps make the image: the target and the stages it
/// is built on (`FROM` an earlier stage), what `--cache-to mode=min` keeps.
fn image_stages(plan: &BuildPlan) -> Vec<usize> {
    let mut out = Vec::new();
    let mut next = plan.stages.last();
    while let Some(stage) = next {
        out.push(stage.index);
        next = match stage.base {
            Base::Stage(i) => plan.stages.iter().find(|s| s.index == i),
            _ => None,
        };
    }
    out
}

fn check_dir(dir: &Path, what: &str) -> Result<(), BuildError> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(BuildError::Request(format!(
            "the {what} {} is not a directory; give an existing directory",
            dir.display()
        )))
    }
}

fn load_ignore(req: &BuildRequest) -> Result<Matcher, BuildError> {
    let Some(dir) = &req.context else {
        return Ok(Matcher::default());
    };
    check_dir(dir, "build context")?;
    let dockerfile = req
        .dockerfile
        .path
        .clone()
        .unwrap_or_else(|| dir.join("Dockerfile"));
    Ok(dockerignore::load(dir, &dockerfile)?)
}

/// Resolves once to find the base images, fetches them, then resolves
/// again with their ENV and ONBUILD triggers. Returns the AST the plan's
/// steps refer to (with the triggers in it).
fn plan_with_bases(
    ast: Ast,
    options: &mut ResolveOptions,
    bases: &Bases,
) -> Result<(Ast, BuildPlan), BuildError> {
    let first = stages::resolve(&ast, options)?;
    let mut triggers = Vec::new();
    for stage in &first.stages {
        let Base::Image(name) = &stage.base else {
            continue;
        };
        let image = bases.image(name, &stage.platform).map_err(|e| {
            ast.error_at(
                DockerfileError::new(ErrorKind::Io, format!("base image {name}: {e}")),
                stage.line,
                Some(name),
            )
        })?;
        options.image_env.insert(name.clone(), image.env());
        let on_build = image.config.on_build();
        if !on_build.is_empty() {
            triggers.push((stage.line, on_build));
        }
    }
    if first
        .stages
        .iter()
        .all(|s| !matches!(s.base, Base::Image(_)))
    {
        return Ok((ast, first));
    }
    let ast = if triggers.is_empty() {
        ast
    } else {
        insert_triggers(ast, &triggers)?
    };
    let plan = stages::resolve(&ast, options)?;
    Ok((ast, plan))
}

/// Puts each base image's ONBUILD triggers right after its stage's FROM,
/// placed on the FROM line, as BuildKit runs them: first in the stage.
fn insert_triggers(mut ast: Ast, triggers: &[(usize, Vec<String>)]) -> Result<Ast, BuildError> {
    for (line, list) in triggers.iter().rev() {
        let at = ast
            .children
            .iter()
            .position(|n| n.start_line == *line && n.keyword.eq_ignore_ascii_case("from"))
            .ok_or_else(|| BuildError::Request(format!("no FROM on line {line}")))?;
        let mut nodes = Vec::new();
        for trigger in list {
            let parsed = kiln_frontend::parse(&ast.file, trigger.as_bytes()).map_err(|e| {
                ast.error_at(
                    DockerfileError::new(
                        ErrorKind::Syntax,
                        format!(
                            "the base image's ONBUILD trigger {trigger:?} does not parse: {}",
                            e.message
                        ),
                    ),
                    *line,
                    None,
                )
            })?;
            for mut node in parsed.children {
                let keyword = node.keyword.to_ascii_uppercase();
                if matches!(keyword.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                    let message = match keyword.as_str() {
                        "ONBUILD" => {
                            "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string()
                        }
                        k => format!("{k} isn't allowed as an ONBUILD trigger"),
                    };
                    return Err(ast
                        .error_at(
                            DockerfileError::new(ErrorKind::Semantic, message),
                            *line,
                            None,
                        )
                        .into());
                }
                node.start_line = *line;
                node.end_line = *line;
                nodes.push(node);
            }
        }
        ast.children.splice(at + 1..at + 1, nodes);
    }
    Ok(ast)
}
