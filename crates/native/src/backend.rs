//! The [`NativeBackend`]: kiln's [`BuildBackend`] that builds in this
//! process.
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

use crate::base::Bases;
use crate::cache::BuildCache;
use crate::compress::{self, Compressor};
use crate::export;
#[cfg(unix)]
use crate::run::Exec;
use crate::solver;
use crate::stage::{self, StageContext};
use kiln_backend::events::{BuildEvent, EventSink};
use kiln_backend::push::Pusher;
use kiln_backend::store_images;
use kiln_backend::{BuildBackend, BuildError, BuildRequest, BuiltImage, NamedContext, Pushed};
use kiln_backend::{Output, Unavailable};
use kiln_frontend::dockerignore::{self, Matcher};
use kiln_frontend::stages::{self, Base, BuildPlan, Platform, ResolveOptions};
use kiln_frontend::{Ast, Error as DockerfileError, ErrorKind};
use kiln_oci::reference::Reference;
use kiln_oci::Digest;
use kiln_registry::{Client, ClientOptions};
use kiln_store::{Descriptor, Store};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Builds in this process: no daemon, no container for steps that need
/// none; RUN steps run in containers of an OCI runtime (runc or crun) on
/// overlayfs snapshots.
#[derive(Debug)]
pub struct NativeBackend {
    store: Store,
    registry: ClientOptions,
    #[cfg(unix)]
    snapshotter: Option<kiln_snapshot::DriverKind>,
    /// Runs RUN steps of Windows images (the HCS backend); `None` refuses
    /// them.
    windows_host: Option<crate::hcs::Host>,
}

impl NativeBackend {
    /// A backend writing into `store`, reaching registries with `registry`.
    pub fn new(store: Store, registry: ClientOptions) -> NativeBackend {
        NativeBackend {
            store,
            registry,
            #[cfg(unix)]
            snapshotter: None,
            windows_host: None,
        }
    }

    /// Runs RUN steps of Windows images on `host` (what
    /// [`crate::HcsBackend`] is); without one they answer NotSupported.
    pub fn with_windows_host(
        mut self,
        host: std::sync::Arc<dyn crate::hcs::ComputeHost>,
    ) -> NativeBackend {
        self.windows_host = Some(crate::hcs::Host(host));
        self
    }

    /// Forces RUN's snapshotter (overlayfs, or the copying one) instead of
    /// the one that works here.
    #[cfg(unix)]
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
        availability()
    }

    /// The plan with its bases (their ONBUILD triggers included), per
    /// platform: what its COPY and ADD sources and RUN bind mounts take from
    /// the context.
    fn context_paths(&self, req: &BuildRequest) -> Result<Option<Vec<String>>, BuildError> {
        let ast = kiln_frontend::parse(&req.dockerfile.name, &req.dockerfile.bytes)?;
        let client = Client::new(self.registry.clone());
        let events = EventSink::discard();
        let bases = Bases::new(&self.store, &client, req.pull, &req.build_contexts, &events);
        let platforms: Vec<Option<&Platform>> = if req.platforms.is_empty() {
            vec![req.platform.as_ref()]
        } else {
            req.platforms.iter().map(Some).collect()
        };
        let mut paths = std::collections::BTreeSet::new();
        for platform in platforms {
            let mut options = ResolveOptions {
                build_args: req.build_args.clone(),
                target: req.target.clone(),
                named_contexts: context_names(req),
                ..ResolveOptions::default()
            };
            if let Some(p) = platform {
                options.target_platform = p.clone();
            }
            let (_, plan) = plan_with_bases(ast.clone(), &mut options, &bases)?;
            match context_reads(&plan) {
                Some(read) => paths.extend(read),
                None => return Ok(None),
            }
        }
        Ok(Some(paths.into_iter().collect()))
    }

    fn tag(&self, image: &str, new_name: &str) -> Result<(), BuildError> {
        store_images::tag(&self.store, image, new_name)
    }

    fn push(
        &self,
        image: &str,
        dest: Option<&Reference>,
        events: &EventSink,
    ) -> Result<Pushed, BuildError> {
        store_images::push(&self.store, &self.registry, image, dest, events)
    }

    fn manifest_create(&self, list: &Reference) -> Result<(), BuildError> {
        store_images::manifest_create(&self.store, list)
    }

    fn manifest_add(&self, list: &Reference, image: &str) -> Result<(), BuildError> {
        store_images::manifest_add(&self.store, list, image)
    }

    fn manifest_push(&self, list: &Reference, dest: &Reference) -> Result<Pushed, BuildError> {
        store_images::push(
            &self.store,
            &self.registry,
            &list.to_string(),
            Some(dest),
            &EventSink::discard(),
        )
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
        events.finish(result)
    }
}

/// Whether the native backend runs here: wherever Linux namespaces do.
pub fn availability() -> Result<String, Unavailable> {
    if cfg!(target_os = "linux") {
        Ok("builds in this process (RUN with runc or crun)".into())
    } else {
        Ok(format!(
            "builds in this process, without RUN: a Linux image's RUN needs a Linux host \
             (or --backend remote){}",
            if cfg!(windows) {
                ", a Windows image's --backend hcs"
            } else {
                ""
            }
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
    /// The layers compressed during the build, by their uncompressed
    /// blobs, which go once the outputs are written.
    compressed: HashMap<Digest, Descriptor>,
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
        let caches = export_caches(req, &[&solved], &client, &self.store);
        let Solved {
            target,
            image,
            compressed,
            ..
        } = solved;
        let tags = caches.and_then(|()| {
            export::export(
                &self.store,
                &Pusher {
                    client: &client,
                    events,
                },
                &image.manifest,
                &target,
                &req.tags,
                &req.outputs,
                &req.annotations.index_descriptor,
            )
        });
        // The outputs were made (or failed) from the uncompressed layers.
        compress::discard(&self.store, &compressed);
        let tags = tags?;
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
        let result = self.export_platforms(req, events, client, &solved);
        // The outputs were made (or failed) from the uncompressed layers.
        for (_, s) in &solved {
            compress::discard(&self.store, &s.compressed);
        }
        result
    }

    /// The index of the platforms' images, and the outputs.
    fn export_platforms(
        &self,
        req: &BuildRequest,
        events: &EventSink,
        client: &Client,
        solved: &[(&Platform, Solved)],
    ) -> Result<BuiltImage, BuildError> {
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
                    for (platform, s) in solved {
                        let mut dir = format!("{}_{}", platform.os, platform.architecture);
                        if let Some(v) = &platform.variant {
                            dir = format!("{dir}_{v}");
                        }
                        let one = [Output::Local {
                            dest: dest.join(dir),
                        }];
                        export::export(
                            &self.store,
                            &Pusher { client, events },
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
                &Pusher { client, events },
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
            named_contexts: context_names(req),
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
        #[cfg(unix)]
        let exec = Exec::new(&self.store, req.runtime.clone(), self.snapshotter);
        let windows = self
            .windows_host
            .as_ref()
            .map(|h| crate::run::windows::WindowsExec::new(&self.store, h.0.clone()));
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
        Compressor::scope(&self.store, req.compression, |compressor| {
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
                compressor,
                epoch: req.source_date_epoch,
                now,
                scratch: scratch.path(),
                #[cfg(unix)]
                exec: &exec,
                windows: windows.as_ref(),
                #[cfg(unix)]
                secrets: &req.secrets,
                #[cfg(unix)]
                ssh: &req.ssh,
                #[cfg(unix)]
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
            // The image's layers compressed (waiting only for these), and,
            // for `--cache-to`, every layer its records name.
            let layers = compressor.resolve(&target.layers)?;
            std::sync::Arc::make_mut(&mut target).layers = layers;
            if !req.cache_to.is_empty() {
                compressor.wait_all()?;
            }
            let compressed = compressor.compressed();
            cache.settle(&compressed);
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
                compressed,
            })
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

/// The parts of the main context `plan` reads: each COPY or ADD source
/// (not `--from`, not a URL) and each RUN bind mount without `from`, cut
/// at its first wildcard, so a pattern reads the directory it starts in;
/// `None` when one of them reads the whole context.
fn context_reads(plan: &BuildPlan) -> Option<Vec<String>> {
    use kiln_frontend::instructions::{Instruction, MountType, Source};
    let mut reads = Vec::new();
    for step in plan.stages.iter().flat_map(|s| &s.steps) {
        let sources: Vec<&str> = match &step.command.instruction {
            Instruction::Copy(c) if c.from.is_none() => c
                .sources
                .iter()
                .filter_map(|s| match s {
                    Source::Path(p) => Some(p.as_str()),
                    Source::Heredoc(_) => None,
                })
                .collect(),
            Instruction::Add(a) => a
                .sources
                .iter()
                .filter_map(|s| match s {
                    Source::Path(p)
                        if !crate::copy::is_remote_http(p) && !crate::copy::is_remote_git(p) =>
                    {
                        Some(p.as_str())
                    }
                    _ => None,
                })
                .collect(),
            _ => step
                .mounts
                .iter()
                .filter(|m| m.kind == MountType::Bind && m.from.is_empty())
                .map(|m| m.source.as_str())
                .collect(),
        };
        for source in sources {
            let fixed: Vec<&str> = source
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .take_while(|c| !c.contains(['*', '?', '[', '\\']))
                .collect();
            if fixed.is_empty() || fixed.contains(&"..") {
                return None;
            }
            reads.push(fixed.join("/"));
        }
    }
    Some(reads)
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
        kiln_frontend::onbuild::splice(ast, &triggers)?
    };
    let plan = stages::resolve(&ast, options)?;
    Ok((ast, plan))
}

/// The names of the request's build contexts, as stage names are spelled
/// (lower case): a stage of such a name is replaced by the context.
fn context_names(req: &BuildRequest) -> std::collections::BTreeSet<String> {
    req.build_contexts
        .keys()
        .map(|k| k.to_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(dockerfile: &str) -> Option<Vec<String>> {
        let ast = kiln_frontend::parse("Dockerfile", dockerfile.as_bytes()).unwrap();
        let plan = stages::resolve(&ast, &ResolveOptions::default()).unwrap();
        context_reads(&plan)
    }

    #[test]
    fn a_plan_reads_its_copy_sources_and_bind_mounts_up_to_their_wildcards() {
        assert_eq!(
            reads(
                "FROM scratch AS other\n\
                 FROM scratch\n\
                 ARG DIR=docs\n\
                 COPY ./app/main.rs /src/\n\
                 ADD https://example.com/x /x\n\
                 COPY --from=other /a /b\n\
                 COPY src/*.txt ${DIR}/ /d/\n\
                 COPY <<EOF /note\nhi\nEOF\n\
                 RUN --mount=type=bind,source=tools,target=/t true\n\
                 RUN --mount=type=cache,target=/c true\n"
            ),
            Some(vec![
                "app/main.rs".to_string(),
                "src".to_string(),
                "docs".to_string(),
                "tools".to_string(),
            ])
        );
    }

    #[test]
    fn reading_the_whole_context_reads_everything() {
        assert_eq!(reads("FROM scratch\nCOPY . /app\n"), None);
        assert_eq!(reads("FROM scratch\nCOPY *.txt /app/\n"), None);
        assert_eq!(
            reads("FROM scratch\nRUN --mount=type=bind,target=/s true\n"),
            None
        );
        assert_eq!(reads("FROM scratch\nCOPY ../x /app/\n"), None);
        assert_eq!(reads("FROM scratch\nENV A=b\n"), Some(vec![]));
    }
}
