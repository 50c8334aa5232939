//! COPY and ADD steps: where `--from` points, the [`crate::copy`] call,
//! the layer, and BuildKit's history text.

use super::{with_parents, LazyFs, StageContext, StageOutput, State, StepAt};
use crate::copy::{self, CopyContext, CopySource};
use crate::run::{self, Layer};
use crate::solver::Finished;
use kiln_backend::{BuildError, NamedContext};
use kiln_frontend::instructions::{AddInstruction, CopyInstruction, Source};
use kiln_frontend::stages::{Stage, Step};
use kiln_frontend::ErrorKind;

/// Which instruction a `--from` belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum FromOf {
    /// `COPY --from`.
    Copy,
    /// `RUN --mount=from=`.
    Mount,
}

impl FromOf {
    /// How error messages name it.
    fn what(self) -> &'static str {
        match self {
            FromOf::Copy => "COPY --from",
            FromOf::Mount => "RUN --mount from",
        }
    }
}

/// Where a COPY reads from (or a RUN mounts from), once `--from` is
/// resolved.
pub(super) enum From<'a> {
    /// A directory: the build context or a named directory context.
    Dir(
        &'a std::path::Path,
        &'a kiln_frontend::dockerignore::Matcher,
    ),
    /// A file system: a stage's or an image's, with its layers.
    Fs(LazyFs, Vec<Layer>),
}

impl State {
    pub(super) fn copy(&mut self, at: &StepAt, instr: &CopyInstruction) -> Result<(), BuildError> {
        let StepAt {
            ctx,
            stage,
            step,
            done,
            ..
        } = *at;
        let line = step.command.start_line;
        // History shows the destination as written (`C:/app/`), not mapped.
        let written_dest = &instr.dest;
        let mapped;
        let instr = if self.is_windows() {
            mapped = self.windows_copy(ctx, line, instr)?;
            &mapped
        } else {
            instr
        };
        let scratch = self.scratch(ctx, line)?;
        let from = match &instr.from {
            None => {
                let (dir, ignore) = main_context(ctx, scratch.path());
                From::Dir(dir, ignore)
            }
            Some(name) => self.source(ctx, stage, line, done, name, FromOf::Copy)?,
        };
        let (dir, ignore) = match &from {
            From::Dir(d, i) => (*d, *i),
            From::Fs(..) => (scratch.path(), ctx.ignore),
        };
        let workdir = self.copy_workdir();
        let env = step.env.to_vec();
        let copy_ctx = CopyContext {
            context_dir: dir,
            ignore,
            dest_fs: self.fs.indexed(),
            workdir: &workdir,
            env: &env,
            source_date_epoch: ctx.epoch,
            scratch_dir: scratch.path(),
            hashed: self.hashed.clone(),
        };
        let stage_fs;
        let source = match &from {
            From::Dir(..) => CopySource::Context,
            From::Fs(fs, _) => {
                stage_fs = fs.resolved(ctx)?;
                CopySource::Stage(&stage_fs, ctx.store)
            }
        };
        let out = copy::copy(&copy_ctx, source, instr)
            .map_err(|e| ctx.error_at(line, ErrorKind::Io, e.to_string(), None))?;
        let created_by = history_text(
            "COPY",
            instr.parents,
            instr.chown.as_deref(),
            instr.chmod.as_deref(),
            &instr.sources,
            written_dest,
        );
        self.commit_copy(ctx, line, out.entries, &created_by)
    }

    pub(super) fn add(
        &mut self,
        ctx: &StageContext,
        step: &Step,
        instr: &AddInstruction,
    ) -> Result<(), BuildError> {
        let line = step.command.start_line;
        let written_dest = &instr.dest;
        let mapped;
        let instr = if self.is_windows() {
            mapped = self.windows_add(ctx, line, instr)?;
            &mapped
        } else {
            instr
        };
        let scratch = self.scratch(ctx, line)?;
        let (dir, ignore) = main_context(ctx, scratch.path());
        let workdir = self.copy_workdir();
        let env = step.env.to_vec();
        let copy_ctx = CopyContext {
            context_dir: dir,
            ignore,
            dest_fs: self.fs.indexed(),
            workdir: &workdir,
            env: &env,
            source_date_epoch: ctx.epoch,
            scratch_dir: scratch.path(),
            hashed: self.hashed.clone(),
        };
        let out = copy::add(&copy_ctx, instr)
            .map_err(|e| ctx.error_at(line, ErrorKind::Io, e.to_string(), None))?;
        let created_by = history_text(
            "ADD",
            false,
            instr.chown.as_deref(),
            instr.chmod.as_deref(),
            &instr.sources,
            written_dest,
        );
        self.commit_copy(ctx, line, out.entries, &created_by)
    }

    /// The WORKDIR destinations are relative to; `/` when none is set.
    fn copy_workdir(&self) -> String {
        if self.is_windows() {
            return self.windows_copy_workdir();
        }
        match self.builder.config().working_dir() {
            "" => "/".to_string(),
            dir => dir.to_string(),
        }
    }

    /// Turns a COPY or ADD's entries into a layer on top of the stage.
    fn commit_copy(
        &mut self,
        ctx: &StageContext,
        line: usize,
        entries: Vec<kiln_oci::LayerEntry>,
        created_by: &str,
    ) -> Result<(), BuildError> {
        let layer = if self.is_windows() {
            self.commit_windows(ctx, line, entries)?
        } else {
            let entries = with_parents(self.fs.indexed(), entries);
            self.write_layer(ctx, line, entries)?
        };
        self.builder.add_layer(layer.diff_id, created_by);
        Ok(())
    }

    pub(super) fn scratch(
        &self,
        ctx: &StageContext,
        line: usize,
    ) -> Result<tempfile::TempDir, BuildError> {
        tempfile::Builder::new()
            .prefix("step-")
            .tempdir_in(ctx.scratch)
            .map_err(|e| {
                ctx.error_at(
                    line,
                    ErrorKind::Io,
                    format!(
                        "cannot create a temporary directory in {}: {e}",
                        ctx.scratch.display()
                    ),
                    None,
                )
            })
    }

    /// What `--from=name` means: a stage (by name, or for a COPY by
    /// index), a named build context, or an image.
    pub(super) fn source<'a>(
        &self,
        ctx: &StageContext<'a>,
        stage: &Stage,
        line: usize,
        done: &Finished<StageOutput>,
        name: &str,
        of: FromOf,
    ) -> Result<From<'a>, BuildError> {
        let what = of.what();
        let fail = |e: String| {
            ctx.error_at(
                line,
                ErrorKind::Io,
                format!("{what}={name}: {e}"),
                Some(name),
            )
        };
        let lower = name.to_lowercase();
        // BuildKit reads a number as a stage index in COPY only; a mount's
        // `from=0` names an image (`docker.io/library/0`).
        let by_index = match of {
            FromOf::Copy => name.parse::<usize>().ok(),
            FromOf::Mount => None,
        };
        if let Some(s) = ctx
            .plan
            .stages
            .iter()
            // The last stage of a name given twice, as the front end
            // resolved it (BuildKit's rule).
            .rfind(|s| Some(s.index) == by_index || s.name.as_deref() == Some(lower.as_str()))
        {
            let out = done.get(&s.index).ok_or_else(|| {
                ctx.error_at(
                    line,
                    ErrorKind::Semantic,
                    format!("stage {name} has not finished"),
                    Some(name),
                )
            })?;
            let layers = run::layers(&out.layers, &out.config).map_err(fail)?;
            return Ok(From::Fs(out.fs.clone(), layers));
        }
        if let Some(NamedContext::Dir(dir)) = ctx.bases.context(name) {
            let ignore = ctx.named_ignores.get(name).unwrap_or(ctx.ignore);
            return Ok(From::Dir(dir.as_path(), ignore));
        }
        // A bare word that names no stage is almost always a typo; BuildKit
        // would try to pull docker.io/library/<word>, which fails slowly
        // and says nothing about stages.
        let bare = !name.contains(['/', ':', '@', '.']);
        if bare && ctx.bases.context(name).is_none() && ctx.store.resolve(name).is_err() {
            // Every stage of the Dockerfile, not only the ones this
            // build runs: the one meant may be unused so far.
            let names: Vec<String> = kiln_frontend::instructions::parse(ctx.ast)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| match c.instruction {
                    kiln_frontend::instructions::Instruction::From(f) => f.name,
                    _ => None,
                })
                .collect();
            let mut err = kiln_frontend::Error::new(
                ErrorKind::Semantic,
                format!("{what}={name}: no stage or image is named {name:?}"),
            );
            err.help = Some(if names.is_empty() {
                format!("name a stage with `FROM … AS {name}`, or give an image in full, like docker.io/library/{name}:latest")
            } else {
                format!(
                    "the stages this build can use are: {}; for an image, give its full name, like docker.io/library/{name}:latest",
                    names.join(", ")
                )
            });
            return Err(ctx.ast.error_at(err, line, Some(name)).into());
        }
        let image = ctx
            .bases
            .image(name, &stage.platform)
            .map_err(|e| fail(e.to_string()))?;
        let fs = LazyFs::of_layers(image.layers.clone(), image.config.layer_format());
        let layers = run::layers(&image.layers, &image.config).map_err(fail)?;
        Ok(From::Fs(fs, layers))
    }
}

/// The build context, or an empty directory for a build without one (so
/// COPY finds nothing and says so).
fn main_context<'a>(
    ctx: &StageContext<'a>,
    empty: &'a std::path::Path,
) -> (
    &'a std::path::Path,
    &'a kiln_frontend::dockerignore::Matcher,
) {
    (ctx.context.unwrap_or(empty), ctx.ignore)
}

/// BuildKit's history text for COPY and ADD: the keyword, `--parents`,
/// `--chown`, `--chmod`, the sources (heredocs as `<<NAME`) and the
/// destination. `--from`, `--link` and `--exclude` are not part of it.
fn history_text(
    keyword: &str,
    parents: bool,
    chown: Option<&str>,
    chmod: Option<&str>,
    sources: &[Source],
    dest: &str,
) -> String {
    let mut out = keyword.to_string();
    if parents {
        out.push_str(" --parents");
    }
    if let Some(c) = chown {
        out.push_str(&format!(" --chown={c}"));
    }
    if let Some(c) = chmod {
        out.push_str(&format!(" --chmod={c}"));
    }
    // BuildKit writes the paths first, then the heredocs, whatever the
    // order they were given in.
    for s in sources {
        if let Source::Path(p) = s {
            out.push_str(&format!(" {p}"));
        }
    }
    for s in sources {
        if let Source::Heredoc(h) = s {
            out.push_str(&format!(" <<{}", h.name));
        }
    }
    out.push(' ');
    out.push_str(dest);
    out
}
