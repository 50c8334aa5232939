//! Running one stage: its base (scratch, an earlier stage or an image),
//! then each step. Config steps go through [`kiln_oci::ConfigBuilder`]
//! (BuildKit's history included); COPY, ADD and WORKDIR make layers.
//!
//! WORKDIR, as BuildKit 1.26 does it: for any directory but `/`, a
//! mkdir-with-parents step that always records a layer (an empty one when
//! the directory exists). Directories it creates are owned by the current
//! USER, mode 0755, with the build time (or `SOURCE_DATE_EPOCH`) as mtime.
//! The USER is resolved as `--chown` is (`llb.WithUser` and the file op's
//! `readUser`), not as RUN resolves it: a bare uid is also the gid, and a
//! name missing from `/etc/passwd` gives root rather than an error.

mod cached;
mod config;
mod copy_step;
mod lazy_fs;
mod run_step;
mod windows;

pub(crate) use lazy_fs::LazyFs;

pub(crate) use config::with_labels;

use crate::base::Bases;
use crate::cache::{BuildCache, HashedFiles};
use crate::imagefs::{FsKind, ImageFs};
#[cfg(unix)]
use crate::run::Exec;
use crate::solver::{Cancel, Finished};
use crate::transfer::LayerCounter;
use kiln_backend::events::{BuildEvent, EventSink};
use kiln_backend::BuildError;
use kiln_cache::KeyBuilder;
use kiln_frontend::dockerignore::Matcher;
use kiln_frontend::instructions::{CommandLine, HealthcheckInstruction, Instruction};
use kiln_frontend::stages::{Base, BuildPlan, Stage, Step};
use kiln_frontend::{Ast, Error as DockerfileError, ErrorKind};
use kiln_oci::{
    write_layer, Compression, ConfigBuilder, Digest, Healthcheck, ImageConfig, LayerDescriptor,
    LayerEntry, LayerFormat, LayerOptions, MtimePolicy,
};
use kiln_store::{Descriptor, Store};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// What every stage of one build shares.
pub(crate) struct StageContext<'a> {
    pub(crate) ast: &'a Ast,
    pub(crate) plan: &'a BuildPlan,
    pub(crate) store: &'a Store,
    pub(crate) bases: &'a Bases<'a>,
    pub(crate) events: &'a EventSink,
    /// The main build context; `None` when there is none.
    pub(crate) context: Option<&'a Path>,
    pub(crate) ignore: &'a Matcher,
    /// `.dockerignore` rules of named directory contexts.
    pub(crate) named_ignores: &'a BTreeMap<String, Matcher>,
    /// The compression the image's layers get.
    pub(crate) compression: Compression,
    /// Compresses the layers steps write, off their critical path.
    pub(crate) compressor: &'a crate::compress::Compressor<'a>,
    pub(crate) epoch: Option<i64>,
    /// The build's start, seconds since the Unix epoch.
    pub(crate) now: i64,
    /// A directory steps may use for temporary files.
    pub(crate) scratch: &'a Path,
    /// Snapshots and the OCI runtime, for RUN.
    #[cfg(unix)]
    pub(crate) exec: &'a Exec,
    /// RUN in Windows images, on the HCS backend; `None` elsewhere, where
    /// such a step answers NotSupported.
    pub(crate) windows: Option<&'a crate::run::windows::WindowsExec>,
    /// `--secret`s by id.
    #[cfg(unix)]
    pub(crate) secrets: &'a BTreeMap<String, kiln_backend::SecretSource>,
    /// `--ssh` agent sockets by id.
    #[cfg(unix)]
    pub(crate) ssh: &'a BTreeMap<String, std::path::PathBuf>,
    /// `--allow network.host`.
    #[cfg(unix)]
    pub(crate) allow_network_host: bool,
    /// The build-wide settings of RUN steps.
    pub(crate) run: &'a kiln_backend::RunDefaults,
    /// Warnings already shown, so one about the host shows once a build.
    pub(crate) warned: &'a Mutex<Vec<String>>,
    /// The build cache.
    pub(crate) cache: &'a BuildCache,
    /// The registry client, for `--cache-from` layers.
    pub(crate) client: &'a kiln_registry::Client,
}

/// A finished stage.
#[derive(Clone, Debug)]
pub(crate) struct StageOutput {
    /// Its file system.
    pub(crate) fs: LazyFs,
    /// Its config, with `created` set.
    pub(crate) config: ImageConfig,
    /// Its layers, the base's included, bottom first.
    pub(crate) layers: Vec<Descriptor>,
    /// How many of `layers` are the base image's (its chain of stages
    /// ends in that image, or in scratch: 0): what `--squash` keeps.
    pub(crate) base_layers: usize,
    /// The ARGs it declared (with those of the stage it is built on), in
    /// order: RUN history lists them.
    pub(crate) args: Vec<String>,
    /// The cache key of its last step: what later stages' keys build on.
    pub(crate) key: Digest,
    /// When its newest step was first built (seconds since the epoch).
    pub(crate) created: i64,
}

/// A stage in progress.
struct State {
    fs: LazyFs,
    builder: ConfigBuilder,
    layers: Vec<Descriptor>,
    args: Vec<String>,
    /// The cache key of the last step so far.
    key: Digest,
    /// When the newest step so far was first built; `None` before any.
    created: Option<i64>,
    /// The context files the running step's cache key was computed from,
    /// as they were hashed; `None` outside a keyed step.
    hashed: Option<Arc<HashedFiles>>,
    /// The running step, as its events name it: the stage's index and the
    /// step's, for the progress of the layer it writes.
    step_at: (usize, usize),
}

impl StageContext<'_> {
    /// An error at `line` of the Dockerfile, the caret on `needle`.
    pub(crate) fn error_at(
        &self,
        line: usize,
        kind: ErrorKind,
        message: impl Into<String>,
        needle: Option<&str>,
    ) -> BuildError {
        self.ast
            .error_at(DockerfileError::new(kind, message), line, needle)
            .into()
    }

    /// Sends a warning about `line` unless the same message was sent
    /// already in this build.
    pub(crate) fn warn_once(&self, line: usize, message: &str) {
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned.iter().any(|w| w == message) {
            return;
        }
        warned.push(message.to_string());
        self.events.send(BuildEvent::Warning {
            file: self.ast.file.clone(),
            line,
            message: message.to_string(),
        });
    }

    /// The name a stage shows in progress lines and FROM texts.
    pub(crate) fn stage_name(&self, index: usize) -> String {
        self.plan
            .stages
            .iter()
            .find(|s| s.index == index)
            .and_then(|s| s.name.clone())
            .unwrap_or_else(|| format!("stage-{index}"))
    }
}

/// Runs `stage`; the stages it depends on are in `done`.
pub(crate) fn run(
    ctx: &StageContext,
    stage: &Stage,
    done: &Finished<StageOutput>,
    cancel: &Cancel,
) -> Result<StageOutput, BuildError> {
    let base_text = match &stage.base {
        Base::Scratch => "scratch".to_string(),
        Base::Stage(b) => ctx.stage_name(*b),
        Base::Image(name) => name.clone(),
    };
    ctx.events.send(BuildEvent::StageStarted {
        index: stage.index,
        name: stage.name.clone(),
        base: base_text.clone(),
        instructions: stage.steps.len() + 1,
    });
    ctx.events.send(BuildEvent::InstructionStarted {
        stage: stage.index,
        index: 0,
        text: format!("FROM {base_text}"),
    });
    let (fs, base_config, layers, args, base_key, base_created) = match &stage.base {
        Base::Scratch => (
            LazyFs::empty(LayerFormat::for_os(&stage.platform.image_os())),
            config::scratch(&stage.platform),
            Vec::new(),
            Vec::new(),
            KeyBuilder::new("scratch")
                .field("platform", format!("{:?}", stage.platform))
                .finish(),
            None,
        ),
        Base::Stage(b) => {
            let out = done.get(b).ok_or_else(|| {
                ctx.error_at(
                    stage.line,
                    ErrorKind::Semantic,
                    format!(
                        "stage {} did not finish before the stage built on it",
                        ctx.stage_name(*b)
                    ),
                    None,
                )
            })?;
            (
                out.fs.clone(),
                out.config.clone(),
                out.layers.clone(),
                out.args.clone(),
                out.key,
                Some(out.created),
            )
        }
        Base::Image(name) => {
            let image = ctx.bases.image(name, &stage.platform).map_err(|e| {
                ctx.error_at(
                    stage.line,
                    ErrorKind::Io,
                    format!("base image {name}: {e}"),
                    Some(name),
                )
            })?;
            warn_platform_mismatch(ctx, stage, name, &image.config);
            let fs = LazyFs::of_layers(image.layers.clone(), image.config.layer_format());
            let layers: Vec<String> = image.layers.iter().map(|l| l.digest.to_string()).collect();
            let key = KeyBuilder::new("image")
                .field(
                    "config",
                    serde_json::to_vec(image.config.as_json()).unwrap_or_default(),
                )
                .field("layers", layers.join(","))
                .finish();
            (
                fs,
                image.config.clone(),
                image.layers.clone(),
                Vec::new(),
                key,
                None,
            )
        }
    };
    ctx.events.send(BuildEvent::InstructionComplete {
        stage: stage.index,
        index: 0,
        cached: false,
    });
    let base_layers = match &stage.base {
        Base::Scratch => 0,
        Base::Stage(b) => done.get(b).map_or(0, |out| out.base_layers),
        Base::Image(_) => layers.len(),
    };
    let mut state = State {
        fs,
        builder: ConfigBuilder::new(config::for_stage(&base_config, &stage.platform))
            .with_source_date_epoch(ctx.epoch),
        layers,
        args,
        key: base_key,
        created: base_created,
        hashed: None,
        step_at: (stage.index, 0),
    };
    for (i, step) in stage.steps.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        ctx.events.send(BuildEvent::InstructionStarted {
            stage: stage.index,
            index: i + 1,
            text: step.command.to_string(),
        });
        let at = StepAt {
            ctx,
            stage,
            step,
            index: i + 1,
            done,
            cancel,
        };
        state.step_at = (stage.index, i + 1);
        let cached = state.cached_step(&at)?;
        ctx.events.send(BuildEvent::InstructionComplete {
            stage: stage.index,
            index: i + 1,
            cached,
        });
    }
    ctx.events
        .send(BuildEvent::StageComplete { index: stage.index });
    let created = state.created.unwrap_or(ctx.now);
    Ok(StageOutput {
        base_layers,
        fs: state.fs,
        config: state.builder.build(created),
        layers: state.layers,
        args: state.args,
        key: state.key,
        created,
    })
}

/// One step and everything about where it runs: the one argument the step
/// functions take, instead of the same six in each signature.
#[derive(Clone, Copy)]
pub(super) struct StepAt<'a, 'c> {
    /// The build the stage belongs to.
    pub(super) ctx: &'a StageContext<'c>,
    /// The stage.
    pub(super) stage: &'a Stage,
    /// The step.
    pub(super) step: &'a Step,
    /// Its position in the stage, counting FROM as 0.
    pub(super) index: usize,
    /// The stages built so far (for COPY --from and RUN --mount from=).
    pub(super) done: &'a Finished<StageOutput>,
    /// The build's cancellation.
    pub(super) cancel: &'a Cancel,
}

impl State {
    fn step(&mut self, at: &StepAt) -> Result<(), BuildError> {
        let StepAt { ctx, step, .. } = *at;
        let line = step.command.start_line;
        // A RUN reads its user database from its mounted root instead
        // (`run_user`): it indexes nothing unless that cannot serve.
        if matches!(
            step.command.instruction,
            Instruction::Workdir(_) | Instruction::Copy(_) | Instruction::Add(_)
        ) {
            // A layer that cannot be read fails the step that needed it.
            self.fs.catch_up(ctx).map_err(|e| match e {
                BuildError::Request(m) => ctx.error_at(line, ErrorKind::Io, m, None),
                other => other,
            })?;
        }
        let windows = self.is_windows();
        let b = &mut self.builder;
        b.layer_time(ctx.now);
        match &step.command.instruction {
            Instruction::Env(i) => {
                if windows {
                    warn_windows_path(ctx, step, &i.pairs, b.config());
                }
                b.env(&pairs(&i.pairs))
            }
            Instruction::Label(i) => b.label(&pairs(&i.pairs)),
            Instruction::Arg(i) => {
                let args: Vec<(&str, Option<&str>)> = i
                    .args
                    .iter()
                    .map(|a| (a.name.as_str(), a.default.as_deref()))
                    .collect();
                b.arg(&args);
                for (name, _) in args {
                    if !self.args.iter().any(|a| a == name) {
                        self.args.push(name.to_string());
                    }
                }
            }
            Instruction::Expose(i) => {
                let ports: Vec<&str> = i.ports.iter().map(String::as_str).collect();
                b.expose(&ports)
                    .map_err(|m| ctx.error_at(line, ErrorKind::Instruction, m, None))?;
            }
            Instruction::Volume(i) => {
                let paths: Vec<&str> = i.paths.iter().map(String::as_str).collect();
                b.volume(&paths)
                    .map_err(|m| ctx.error_at(line, ErrorKind::Instruction, m, None))?;
            }
            Instruction::User(i) => b.user(&i.user),
            Instruction::StopSignal(i) => b.stop_signal(&i.signal),
            Instruction::Maintainer(i) => b.maintainer(&i.name),
            Instruction::Onbuild(i) => b.onbuild(&i.expression),
            Instruction::Shell(i) => b.shell(&i.shell),
            Instruction::Cmd(i) => {
                let (args, shell) = command_line(&i.command);
                b.cmd(&args, shell);
            }
            Instruction::Entrypoint(i) => {
                let (args, shell) = command_line(&i.command);
                b.entrypoint(&args, shell);
            }
            Instruction::Healthcheck(i) => b.healthcheck(&healthcheck(i)),
            Instruction::Workdir(i) => self.workdir(ctx, line, &i.path)?,
            Instruction::Copy(i) => self.copy(at, i)?,
            Instruction::Add(i) => self.add(ctx, step, i)?,
            Instruction::Run(i) => self.run(at, i)?,
            Instruction::From(_) => {
                return Err(ctx.error_at(line, ErrorKind::Semantic, "FROM inside a stage", None))
            }
        }
        Ok(())
    }

    /// WORKDIR: see the module docs.
    fn workdir(&mut self, ctx: &StageContext, line: usize, path: &str) -> Result<(), BuildError> {
        if self.is_windows() {
            return self.windows_workdir(ctx, line, path);
        }
        let abs = self.workdir_path(path);
        if abs == "/" {
            self.builder.workdir(&abs, None);
            return Ok(());
        }
        let fail = |m: String| ctx.error_at(line, ErrorKind::Io, m, None);
        let resolved = self
            .fs
            .indexed()
            .resolve(&abs, true)
            .map_err(|e| fail(format!("WORKDIR {abs}: {e}")))?;
        let user = self.builder.config().user().to_string();
        let (uid, gid) = self
            .fs
            .indexed()
            .resolve_chown(&user)
            .map_err(|e| fail(format!("WORKDIR {abs}: {e}")))?;
        let mtime = ctx.epoch.unwrap_or(ctx.now);
        let mut entries = Vec::new();
        let mut prefix = String::new();
        for part in resolved.split('/').filter(|p| !p.is_empty()) {
            prefix.push('/');
            prefix.push_str(part);
            match self.fs.indexed().lookup(&prefix) {
                Some(e) if matches!(e.kind, FsKind::Dir) => {}
                Some(_) => {
                    return Err(fail(format!(
                        "WORKDIR {abs}: {prefix} exists and is not a directory"
                    )))
                }
                None => entries.push(
                    LayerEntry::dir(&prefix[1..])
                        .with_mode(0o755)
                        .with_owner(uid, gid)
                        .with_mtime(mtime),
                ),
            }
        }
        // Only directories this step creates, with their existing parents,
        // belong in its layer; when there are none the layer is empty, as
        // BuildKit's is.
        let entries = with_parents(self.fs.indexed(), entries);
        let layer = self.write_layer(ctx, line, entries)?;
        self.builder.workdir(&abs, Some(layer.diff_id));
        Ok(())
    }

    /// The absolute directory a WORKDIR `path` names.
    fn workdir_path(&self, path: &str) -> String {
        let current = self.builder.config().working_dir();
        kiln_oci::path::clean_absolute(&if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{current}/{path}")
        })
    }

    /// Writes `entries` as a layer into the store and puts it on top of
    /// the stage's file system. The image's last layer is compressed as it
    /// is written, in one pass, since the image waits for it and nothing
    /// would run beside a later compression; any other goes in as its tar,
    /// which the compressor compresses while later steps run (see
    /// [`crate::compress`]). Both give the same blob.
    fn write_layer(
        &mut self,
        ctx: &StageContext,
        line: usize,
        entries: Vec<LayerEntry>,
    ) -> Result<LayerDescriptor, BuildError> {
        let last = self.writes_last_layer(ctx);
        let options = LayerOptions {
            compression: if last {
                ctx.compression
            } else {
                Compression::None
            },
            mtime: ctx.epoch.map_or(MtimePolicy::Keep, MtimePolicy::Clamp),
            ..LayerOptions::default()
        };
        // write_layer hashes the blob as it writes it.
        let writer = ctx.store.ingest_prehashed()?;
        let (stage, index) = self.step_at;
        let counted = LayerCounter::new(writer, ctx.events, stage, index);
        let (layer, counted) = write_layer(entries, &options, counted)
            .map_err(|e| ctx.error_at(line, ErrorKind::Io, e.to_string(), None))?;
        counted.finish().commit(Some(layer.digest))?;
        self.put_layer(&layer);
        if !last {
            ctx.compressor.defer(self.layers.last().expect("just put"));
        }
        Ok(layer)
    }

    /// Whether the running step makes the image's last layer: it is in the
    /// target stage and no step after it makes a layer.
    fn writes_last_layer(&self, ctx: &StageContext) -> bool {
        let (stage, index) = self.step_at;
        ctx.plan.stages.last().is_some_and(|target| {
            target.index == stage
                && !target
                    .steps
                    .iter()
                    .skip(index)
                    .any(|s| makes_layer(&s.command.instruction))
        })
    }

    /// Puts a layer just committed to the store on top of the stage.
    fn put_layer(&mut self, layer: &LayerDescriptor) {
        let desc = Descriptor::new(layer.media_type, layer.digest, layer.size);
        // Indexed when a later step reads it, which saves reading back a
        // layer no step looks at.
        self.fs.push(desc.clone());
        self.layers.push(desc);
    }
}

/// Whether a step of `instruction` makes a layer (WORKDIR always does, an
/// empty one when its directory exists, as BuildKit's).
fn makes_layer(instruction: &Instruction) -> bool {
    matches!(
        instruction,
        Instruction::Copy(_) | Instruction::Add(_) | Instruction::Run(_) | Instruction::Workdir(_)
    )
}

/// BuildKit's InvalidBaseImagePlatform warning: a base image that is not
/// an index is used whatever its platform, which is rarely what was meant.
fn warn_platform_mismatch(ctx: &StageContext, stage: &Stage, name: &str, config: &ImageConfig) {
    let field = |k: &str| {
        config
            .as_json()
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let (os, arch) = (field("os"), field("architecture"));
    if os.is_empty() || arch.is_empty() {
        return;
    }
    if os != stage.platform.os || arch != stage.platform.architecture {
        ctx.warn_once(
            stage.line,
            &format!(
                "base image {name} is for {os}/{arch}, not {}: the stage is built on it as it is",
                stage.platform
            ),
        );
    }
}

/// buildkit#5234: a Windows image keeps PATH in the registry, not in its
/// config, so `ENV PATH=C:\app;${PATH}` expands `${PATH}` to nothing and
/// the container's PATH loses `C:\Windows\system32`. BuildKit warns since
/// #5895; so does kiln.
fn warn_windows_path(
    ctx: &StageContext,
    step: &Step,
    pairs: &[(String, String)],
    before: &ImageConfig,
) {
    let is_path = |k: &str| k.eq_ignore_ascii_case("PATH");
    let had_path = before
        .env()
        .iter()
        .any(|e| is_path(e.split_once('=').map_or(e.as_str(), |(k, _)| k)));
    let text = step.command.original.to_ascii_uppercase();
    let refers = ["$PATH", "${PATH", "%PATH%"]
        .iter()
        .any(|r| text.contains(r));
    if !had_path && refers && pairs.iter().any(|(k, _)| is_path(k)) {
        ctx.warn_once(
            step.command.start_line,
            "ENV PATH refers to PATH, which a Windows image's config does not hold (Windows keeps \
             it in the registry): it expands to nothing, and this PATH replaces the system one \
             (C:\\Windows\\system32, …) when the container runs; spell the whole PATH out",
        );
    }
}

/// Adds entries for the existing parent directories of `entries` that are
/// not in the list, with their metadata from `fs`, so the layer's implied
/// parents do not override them with defaults.
fn with_parents(fs: &ImageFs, mut entries: Vec<LayerEntry>) -> Vec<LayerEntry> {
    let mut parents = Vec::new();
    for e in &entries {
        let mut dir = e.path.as_str();
        while let Some((parent, _)) = dir.rsplit_once('/') {
            dir = parent;
            if parent.is_empty()
                || entries.iter().any(|x| x.path == parent)
                || parents.iter().any(|p: &LayerEntry| p.path == parent)
            {
                continue;
            }
            if let Some(found) = fs.lookup(&format!("/{parent}")) {
                parents.push(LayerEntry {
                    path: parent.to_string(),
                    kind: kiln_oci::EntryKind::Dir,
                    mode: found.mode & 0o7777,
                    uid: found.uid,
                    gid: found.gid,
                    mtime: found.mtime,
                    xattrs: found.xattrs.clone(),
                });
            }
        }
    }
    parents.append(&mut entries);
    parents
}

fn pairs(list: &[(String, String)]) -> Vec<(&str, &str)> {
    list.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn command_line(c: &CommandLine) -> (Vec<String>, bool) {
    match c {
        CommandLine::Shell(s) => (vec![s.clone()], true),
        CommandLine::Exec(v) => (v.clone(), false),
    }
}

fn healthcheck(h: &HealthcheckInstruction) -> Healthcheck {
    match h {
        HealthcheckInstruction::None => Healthcheck {
            test: vec!["NONE".into()],
            ..Healthcheck::default()
        },
        HealthcheckInstruction::Check(c) => {
            let test = match &c.command {
                CommandLine::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                CommandLine::Exec(v) => {
                    let mut t = vec!["CMD".to_string()];
                    t.extend(v.iter().cloned());
                    t
                }
            };
            let ns = |d: std::time::Duration| d.as_nanos().min(i64::MAX as u128) as i64;
            Healthcheck {
                test,
                interval_ns: ns(c.interval),
                timeout_ns: ns(c.timeout),
                start_period_ns: ns(c.start_period),
                start_interval_ns: ns(c.start_interval),
                retries: i64::from(c.retries),
            }
        }
    }
}
