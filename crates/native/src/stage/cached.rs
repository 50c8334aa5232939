//! A step through the build cache: its key, a hit taken from the record
//! (the layer already in the store, the config change replayed), or a run
//! and a new record. Config-only steps always run (they cost nothing);
//! their records keep the time they were first built, so a build that
//! changed nothing gets the `created` time, and so the digest, of the
//! build before it.

use super::copy_step::{From, FromOf};
use super::{StageContext, StageOutput, State, StepAt};
use crate::cache::{encode_listing, shape_key, what_changed, SourceMask, SourcesDigest};
use crate::solver::Finished;
use kiln_backend::events::BuildEvent;
use kiln_backend::BuildError;
use kiln_cache::{KeyBuilder, Layer, Record};
use kiln_frontend::instructions::{Instruction, MountType, Source};
use kiln_frontend::stages::{Stage, Step};
use kiln_frontend::ErrorKind;
use kiln_oci::Digest;
use kiln_store::Descriptor;
use std::path::Path;
use std::sync::Arc;

/// The reason of a miss with nothing more to say.
const NEW: &str = "not built before with these inputs (or an earlier step changed)";

/// What a step's key holds besides its parent and text.
struct Key {
    /// Everything but the context files it reads.
    shape: KeyBuilder,
    /// The digest of those files and their listing, when it reads any.
    sources: Option<SourcesDigest>,
    /// For a COPY from a stage or an image: its second key, by what it
    /// copies (see [`ByContent`]).
    by_content: Option<ByContent>,
}

/// A `COPY --from` is keyed as BuildKit keys it: first by the layers of
/// its source (which needs no layer read, so a rebuild that changed
/// nothing stays free), then, on a miss, by the content of what it copies
/// (so a builder stage that ran again but made the same files still
/// hits). Either key finds the record, and the steps after it are keyed
/// by the layer it made, so they hit whichever key did.
struct ByContent {
    /// The key without the source's layers.
    shape: KeyBuilder,
    fs: super::lazy_fs::LazyFs,
    paths: Vec<String>,
    mask: SourceMask,
}

impl State {
    /// Runs `step` or takes it from the cache; true when taken.
    pub(super) fn cached_step(&mut self, at: &StepAt) -> Result<bool, BuildError> {
        let StepAt {
            ctx,
            stage,
            step,
            index,
            done,
            ..
        } = *at;
        let makes_layer = super::makes_layer(&step.command.instruction);
        let key = match self.key(ctx, stage, step, done)? {
            Ok(key) => key,
            Err(why) => {
                ctx.events.send(BuildEvent::CacheMiss {
                    stage: stage.index,
                    index,
                    reason: why.to_string(),
                    expected: false,
                });
                self.step(at)?;
                // Nothing later can be found by a key made after this step.
                self.key = KeyBuilder::new("uncacheable")
                    .parent(&self.key)
                    .field("time", ctx.now.to_string())
                    .field("pid", std::process::id().to_string())
                    .finish();
                self.created = Some(ctx.now);
                return Ok(false);
            }
        };
        let full = match &key.sources {
            Some(sources) => key
                .shape
                .clone()
                .field("sources", sources.digest.to_string()),
            None => key.shape.clone(),
        }
        .finish();
        let disabled = ctx.cache.disabled_for(stage.name.as_deref(), stage.index);
        let mut found = ctx.cache.get(&full);
        let mut by_content = None;
        if found.is_none() && disabled.is_none() {
            if let Some(content) = &key.by_content {
                by_content = self.content_key(ctx, step, content)?;
                found = by_content.and_then(|k| ctx.cache.get(&k));
            }
        }
        if let (None, Some((record, remote))) = (disabled, &found) {
            let taken = if makes_layer {
                self.replay(ctx, step, record, *remote)?
            } else {
                self.step(at)?;
                true
            };
            if taken {
                if *remote {
                    ctx.cache.took_remote(full, record);
                }
                ctx.cache.used(stage.index, full, record);
                if let Some(content) = by_content {
                    // Found by content: the layer-id key finds it next time.
                    ctx.cache.put(&full, record);
                    ctx.cache.used(stage.index, content, record);
                }
                let chain = self.chain_after(full, &key, record);
                self.took(chain, record, makes_layer);
                return Ok(true);
            }
        }
        let record = found.map(|(r, _)| r);
        let reason = match (disabled, &record) {
            (Some(why), _) => why.to_string(),
            (None, Some(_)) => "its layer is no longer in the store".to_string(),
            (None, None) => self.miss_reason(ctx, step, &key),
        };
        let expected = disabled.is_some() || reason == NEW;
        ctx.events.send(BuildEvent::CacheMiss {
            stage: stage.index,
            index,
            reason,
            expected,
        });
        let layers_before = self.layers.len();
        // The step's record will be found by the digests of these files:
        // the step may copy them only as they were hashed.
        self.hashed = key.sources.as_ref().map(|s| Arc::clone(&s.files));
        let ran = self.step(at);
        self.hashed = None;
        ran?;
        let layer = if self.layers.len() > layers_before {
            let blob = self.layers.last().cloned();
            let diff_id = self
                .builder
                .config()
                .diff_ids()
                .ok()
                .and_then(|d| d.last().copied());
            blob.zip(diff_id).map(|(blob, diff_id)| Layer {
                digest: blob.digest,
                media_type: blob.media_type.clone(),
                size: blob.size,
                diff_id,
            })
        } else {
            None
        };
        let record = Record {
            layer,
            created: ctx.now.to_string(),
            description: step.command.to_string(),
            metadata: self.last_created_by().into_bytes(),
        };
        ctx.cache.put(&full, &record);
        ctx.cache.used(stage.index, full, &record);
        if let Some(content) = &key.by_content {
            if by_content.is_none() {
                by_content = self.content_key(ctx, step, content)?;
            }
        }
        if let Some(content) = by_content {
            ctx.cache.put(&content, &record);
            ctx.cache.used(stage.index, content, &record);
        }
        if let Some(sources) = &key.sources {
            let shape = Record {
                layer: None,
                created: ctx.now.to_string(),
                description: format!("sources of: {}", step.command),
                metadata: encode_listing(&sources.listed),
            };
            ctx.cache.put(&shape_key(&key.shape), &shape);
        }
        if makes_layer {
            self.key = self.chain_after(full, &key, &record);
        }
        self.created = Some(self.created.map_or(ctx.now, |c| c.max(ctx.now)));
        Ok(false)
    }

    /// The chain key after a step found or stored under `full`: `full`
    /// itself, but for a step with two keys ([`ByContent`]) the chain
    /// before it and the layer it made, the same whichever key hit.
    fn chain_after(&self, full: Digest, key: &Key, record: &Record) -> Digest {
        match (&key.by_content, &record.layer) {
            (Some(_), Some(layer)) => KeyBuilder::new("after-copy-from")
                .parent(&self.key)
                .field("diff_id", layer.diff_id.to_string())
                .finish(),
            _ => full,
        }
    }

    /// The content key of a `COPY --from` ([`ByContent`]), indexing its
    /// source's layers; `None` when its sources cannot be keyed so.
    fn content_key(
        &self,
        ctx: &StageContext,
        step: &Step,
        content: &ByContent,
    ) -> Result<Option<Digest>, BuildError> {
        let fs = content.fs.resolved(ctx)?;
        let digest = ctx
            .cache
            .image_sources_digest(&fs, &content.paths, content.mask)
            .map_err(|e| ctx.error_at(step.command.start_line, ErrorKind::Io, e, None))?;
        Ok(digest.map(|d| {
            content
                .shape
                .clone()
                .field("from-content", d.to_string())
                .finish()
        }))
    }

    /// Moves the chain on past a step taken from `record` (a config-only
    /// step leaves the chain where it is: see `State::key`).
    fn took(&mut self, key: Digest, record: &Record, makes_layer: bool) {
        if makes_layer {
            self.key = key;
        }
        let at = record.created.parse::<i64>().unwrap_or(0);
        self.created = Some(self.created.map_or(at, |c| c.max(at)));
    }

    /// Puts a recorded layer on the stage and replays the step's config
    /// change; false when the layer's blob is gone (a miss, then). A local
    /// record whose layer was never compressed (its build ended first) has
    /// it compressed now.
    fn replay(
        &mut self,
        ctx: &StageContext,
        step: &Step,
        record: &Record,
        remote: bool,
    ) -> Result<bool, BuildError> {
        let Some(layer) = &record.layer else {
            return Ok(false);
        };
        if !ctx.cache.can_get(ctx.store, &layer.digest) {
            return Ok(false);
        }
        let desc = Descriptor::new(&layer.media_type, layer.digest, layer.size);
        if !remote {
            ctx.compressor.defer(&desc);
        }
        self.fs.push(desc.clone());
        self.layers.push(desc);
        self.builder
            .layer_time(record.created.parse().unwrap_or(ctx.now));
        match &step.command.instruction {
            Instruction::Workdir(i) => {
                let abs = if self.is_windows() {
                    self.windows_workdir_path(&i.path).map_err(|m| {
                        ctx.error_at(step.command.start_line, ErrorKind::Io, m, None)
                    })?
                } else {
                    self.workdir_path(&i.path)
                };
                self.builder.workdir(&abs, Some(layer.diff_id));
            }
            _ => {
                let created_by = String::from_utf8_lossy(&record.metadata).into_owned();
                self.builder.add_layer(layer.diff_id, &created_by);
            }
        }
        Ok(true)
    }

    /// The last history entry's `created_by`, without BuildKit's suffix
    /// that [`kiln_oci::ConfigBuilder::add_layer`] adds back.
    fn last_created_by(&self) -> String {
        self.builder
            .config()
            .as_json()
            .get("history")
            .and_then(|h| h.as_array())
            .and_then(|h| h.last())
            .and_then(|e| e.get("created_by"))
            .and_then(|c| c.as_str())
            .map(|c| c.trim_end_matches(" # buildkit").to_string())
            .unwrap_or_default()
    }

    /// Why a step with no record missed: what changed in its sources when
    /// the same step was built before with others, else that it (or an
    /// earlier step) is new.
    fn miss_reason(&self, ctx: &StageContext, step: &Step, key: &Key) -> String {
        let Some(sources) = &key.sources else {
            return NEW.into();
        };
        match ctx
            .cache
            .get_local(&shape_key(&key.shape))
            .and_then(|r| what_changed(&r.metadata, &sources.listed))
        {
            Some(change) => format!("{}: {change}", short(&step.command.to_string())),
            None => NEW.into(),
        }
    }

    /// The step's key, or why it cannot have one.
    fn key(
        &self,
        ctx: &StageContext,
        stage: &Stage,
        step: &Step,
        done: &Finished<StageOutput>,
    ) -> Result<Result<Key, &'static str>, BuildError> {
        let line = step.command.start_line;
        // A step's key holds what its result depends on, as BuildKit's
        // LLB op does: the file system it starts from (the chain of
        // layer-making steps: config-only steps do not move it, so a
        // changed LABEL or an ARG nothing uses misses nothing), its
        // instruction (expanded), and the parts of the config it reads.
        // The environment's digest, not its list: listing it at every step
        // made ENV-heavy Dockerfiles quadratic.
        let instruction = &step.command.instruction;
        let config = self.builder.config();
        let mut shape = KeyBuilder::new("step")
            .parent(&self.key)
            .field("instruction", format!("{instruction:?}"));
        let reads_env = match instruction {
            // A COPY reads the environment only to expand a heredoc.
            Instruction::Copy(i) => has_heredoc(&i.sources),
            Instruction::Add(i) => has_heredoc(&i.sources),
            Instruction::Workdir(_) => false,
            _ => true,
        };
        if reads_env {
            let env = step.env.digest().map(|d| d.to_string()).unwrap_or_default();
            shape = shape.field("env-digest", env);
        }
        match instruction {
            // Relative destinations are under the working directory.
            Instruction::Copy(_) | Instruction::Add(_) => {
                shape = shape.field("workdir", config.working_dir());
            }
            // BuildKit makes the directory as the USER.
            Instruction::Workdir(_) => {
                shape = shape
                    .field("workdir", config.working_dir())
                    .field("user", config.user());
            }
            Instruction::Run(_) => {
                shape = shape
                    .field("workdir", config.working_dir())
                    .field("user", config.user())
                    .field("shell", format!("{:?}", config.shell()));
            }
            _ => {}
        }
        let mut shape = shape
            .field("mounts", format!("{:?}", step.mounts))
            .field("platform", format!("{:?}", stage.platform))
            .field("epoch", format!("{:?}", ctx.epoch))
            .field("compression", format!("{:?}", ctx.compression));
        let fail = |e: String| ctx.error_at(line, ErrorKind::Io, e, None);
        let mut context: Vec<String> = Vec::new();
        let mut dir_from: Option<(&Path, &kiln_frontend::dockerignore::Matcher)> = None;
        let mut mask = SourceMask::ALL;
        let mut by_content = None;
        match &step.command.instruction {
            Instruction::Copy(i) => {
                mask = source_mask(i.chmod.as_deref(), i.chown.is_some());
                let paths = source_paths(&i.sources);
                match &i.from {
                    None => context = paths,
                    Some(name) => match self.source(ctx, stage, line, done, name, FromOf::Copy)? {
                        From::Dir(dir, ignore) => {
                            dir_from = Some((dir, ignore));
                            context = paths;
                        }
                        From::Fs(fs, layers) => {
                            by_content = Some(ByContent {
                                shape: shape.clone(),
                                fs,
                                paths: paths.clone(),
                                mask,
                            });
                            shape = shape.field("from", layer_ids(&layers));
                        }
                    },
                }
            }
            Instruction::Add(i) => {
                mask = source_mask(i.chmod.as_deref(), i.chown.is_some());
                for src in source_paths(&i.sources) {
                    if crate::copy::is_remote_git(&src) {
                        return Ok(Err("ADD of a git repository is never cached"));
                    }
                    if crate::copy::is_remote_http(&src) {
                        match &i.checksum {
                            Some(sum) => shape = shape.field("checksum", sum),
                            None => {
                                return Ok(Err("ADD of a URL without --checksum is never cached"))
                            }
                        }
                    } else {
                        context.push(src);
                    }
                }
            }
            Instruction::Run(_) => {
                if let Some(run) = ctx.run.key() {
                    shape = shape.field("run-defaults", run);
                }
                for mount in &step.mounts {
                    let reads = matches!(mount.kind, MountType::Bind)
                        || (matches!(mount.kind, MountType::Cache) && !mount.from.is_empty());
                    if !reads {
                        continue;
                    }
                    if mount.from.is_empty() {
                        context.push(mount.source.clone());
                        continue;
                    }
                    match self.source(ctx, stage, line, done, &mount.from, FromOf::Mount)? {
                        From::Dir(dir, ignore) => {
                            let sources = ctx
                                .cache
                                .sources_digest(
                                    dir,
                                    ignore,
                                    std::slice::from_ref(&mount.source),
                                    SourceMask::ALL,
                                )
                                .map_err(fail)?;
                            shape = shape.field("mount-dir", sources.digest.to_string());
                        }
                        From::Fs(_, layers) => {
                            shape = shape.field("mount-from", layer_ids(&layers))
                        }
                    }
                }
            }
            _ => {}
        }
        let sources = if context.is_empty() {
            None
        } else {
            let (dir, ignore) = match dir_from {
                Some(d) => d,
                None => match ctx.context {
                    Some(dir) => (dir, ctx.ignore),
                    // No context: the step fails by itself.
                    None => return Ok(Err("the build has no context")),
                },
            };
            Some(
                ctx.cache
                    .sources_digest(dir, ignore, &context, mask)
                    .map_err(fail)?,
            )
        };
        Ok(Ok(Key {
            shape,
            sources,
            by_content,
        }))
    }
}

/// What a COPY or ADD with these flags overrides of its sources.
fn source_mask(chmod: Option<&str>, chown: bool) -> SourceMask {
    let octal = chmod.is_some_and(|m| {
        matches!(
            kiln_frontend::instructions::parse_chmod(m),
            Ok(kiln_frontend::instructions::Chmod::Octal(_))
        )
    });
    SourceMask {
        mode: if octal { 0o7000 } else { 0o7777 },
        owner: !chown,
    }
}

fn has_heredoc(sources: &[Source]) -> bool {
    sources.iter().any(|s| matches!(s, Source::Heredoc(_)))
}

fn source_paths(sources: &[Source]) -> Vec<String> {
    sources
        .iter()
        .filter_map(|s| match s {
            Source::Path(p) => Some(p.clone()),
            Source::Heredoc(_) => None,
        })
        .collect()
}

fn layer_ids(layers: &[crate::run::Layer]) -> String {
    layers
        .iter()
        .map(|l| l.diff_id.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// An instruction cut to a readable length for messages.
fn short(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    if first.chars().count() > 60 {
        format!("{}…", first.chars().take(60).collect::<String>())
    } else {
        first.to_string()
    }
}
