//! `kiln pipeline`: the images of a ZPipeline file, built in dependency
//! waves, the images of a wave at once, each through the same engine entry
//! point as `kiln build`.

use super::registry::{ForeignArgs, NetArgs, StoreArg};
use crate::build_file::{default_build_file, read_build_file, BuildFile};
use crate::output::{errln, outln};
use anyhow::{bail, Context};
use kiln_backend::{BuildBackend, BuildError, BuildRequest, Dockerfile, EventSink, Output};
use kiln_frontend::pipeline::{self, Pipeline};
use kiln_frontend::stages::Platform;
use kiln_oci::reference::Reference;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Subcommands that build several images.
#[derive(clap::Subcommand)]
pub enum PipelineCommand {
    /// Build the images of a ZPipeline file in dependency order, the
    /// images that do not depend on each other at once (see
    /// docs/pipelines.md).
    Pipeline(Box<PipelineArgs>),
}

/// Arguments of `kiln pipeline`.
#[derive(clap::Args)]
pub struct PipelineArgs {
    #[command(flatten)]
    root: StoreArg,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    foreign: ForeignArgs,
    /// The pipeline file; paths in it are relative to its directory.
    #[arg(short = 'f', long = "file", default_value = "ZPipeline.yaml")]
    file: PathBuf,
    /// Build only these images (and the images they depend on);
    /// repeatable, or comma-separated.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    only: Vec<String>,
    /// Set a variable of the file's `vars`, NAME=VALUE; repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Push each image to the registry of each of its tags.
    #[arg(long)]
    push: bool,
    /// Stop at the first failure: running builds are interrupted and no
    /// other image starts. Without it, every image whose dependencies
    /// built is built.
    #[arg(long)]
    fail_fast: bool,
}

/// Runs a pipeline subcommand.
pub fn run(cmd: PipelineCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PipelineCommand::Pipeline(args) => run_pipeline(*args),
    }
}

/// How one image of the pipeline ended.
enum Outcome {
    Built,
    Failed,
    /// Not started: a dependency failed, or --fail-fast stopped the run.
    Skipped,
}

fn run_pipeline(args: PipelineArgs) -> anyhow::Result<ExitCode> {
    let name = args.file.display().to_string();
    let source =
        std::fs::read(&args.file).with_context(|| format!("cannot read pipeline file {name}"))?;
    let mut set = BTreeMap::new();
    for pair in &args.set {
        match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                set.insert(k.to_string(), v.to_string());
            }
            _ => bail!("invalid --set {pair:?}: expected NAME=VALUE"),
        }
    }
    let pipeline = pipeline::parse(&name, &source, &set)?;
    let selected = pipeline.select(&args.only)?;
    let waves = pipeline.waves(&selected);
    let dir = args
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let interrupt: Arc<AtomicBool> = Arc::default();
    // Every request is ready before the first build starts, so a missing
    // Dockerfile or a bad tag stops the pipeline before anything builds.
    let mut requests: BTreeMap<usize, (BuildRequest, BuildFile)> = BTreeMap::new();
    for &i in &selected {
        let request = request(&pipeline, i, &dir, args.push, &interrupt)
            .with_context(|| format!("image {}", pipeline.images[i].name))?;
        requests.insert(i, request);
    }
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, interrupt.clone())
            .and_then(|_| signal_hook::flag::register(signal, interrupt.clone()))
            .context("cannot install the SIGINT/SIGTERM handler")?;
    }
    let store = args.root.open()?;
    let root = store.root().to_path_buf();
    drop(store);
    let registry = args.foreign.options(args.net.options()?);
    let snapshotter = crate::env::snapshotter()?;
    let mut outcomes: BTreeMap<usize, Outcome> = BTreeMap::new();
    let stopped = AtomicBool::new(false);
    for (n, wave) in waves.iter().enumerate() {
        let names: Vec<&str> = wave
            .iter()
            .map(|i| pipeline.images[*i].name.as_str())
            .collect();
        errln!("wave {}: {}", n + 1, names.join(", "));
        let results: Vec<(usize, Outcome)> = std::thread::scope(|scope| {
            let mut handles = Vec::new();
            for &i in wave {
                let image = &pipeline.images[i];
                if let Some(d) = image
                    .depends_on
                    .iter()
                    .find(|d| !matches!(outcomes.get(d), Some(Outcome::Built)))
                {
                    errln!(
                        "{}: skipped: it depends on {}, which did not build",
                        image.name,
                        pipeline.images[*d].name
                    );
                    handles.push((i, None));
                    continue;
                }
                if stopped.load(Ordering::SeqCst) {
                    handles.push((i, None));
                    continue;
                }
                let (req, file) = &requests[&i];
                let (root, registry, stopped, interrupt) = (&root, &registry, &stopped, &interrupt);
                let fail_fast = args.fail_fast;
                handles.push((
                    i,
                    Some(scope.spawn(move || {
                        let outcome =
                            build_one(&image.name, req, file, root, registry, snapshotter);
                        if matches!(outcome, Outcome::Failed) && fail_fast {
                            stopped.store(true, Ordering::SeqCst);
                            interrupt.store(true, Ordering::SeqCst);
                        }
                        outcome
                    })),
                ));
            }
            handles
                .into_iter()
                .map(|(i, h)| {
                    let outcome = match h.map(|h| h.join()) {
                        None => Outcome::Skipped,
                        Some(Ok(outcome)) => outcome,
                        Some(Err(_)) => Outcome::Failed,
                    };
                    (i, outcome)
                })
                .collect()
        });
        outcomes.extend(results);
        if stopped.load(Ordering::SeqCst) {
            let rest: Vec<&str> = waves[n + 1..]
                .iter()
                .flatten()
                .map(|i| pipeline.images[*i].name.as_str())
                .collect();
            if !rest.is_empty() {
                errln!("--fail-fast: not building {}", rest.join(", "));
            }
            break;
        }
    }
    let count = |f: fn(&Outcome) -> bool| outcomes.values().filter(|o| f(o)).count();
    let built = count(|o| matches!(o, Outcome::Built));
    let failed = count(|o| matches!(o, Outcome::Failed));
    let skipped = selected.len() - built - failed;
    errln!("pipeline: {built} built, {failed} failed, {skipped} not built");
    Ok(if built == selected.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Builds one image with a store of its own (as a separate `kiln build`
/// would have), printing how it ended.
fn build_one(
    name: &str,
    req: &BuildRequest,
    file: &BuildFile,
    root: &Path,
    registry: &kiln_registry::ClientOptions,
    snapshotter: crate::env::Snapshotter,
) -> Outcome {
    let store = match kiln_store::Store::open(root) {
        Ok(store) => store,
        Err(e) => {
            errln!("{name}: failed: cannot open the store: {e}");
            return Outcome::Failed;
        }
    };
    let backend = crate::env::native_backend(store, registry.clone(), snapshotter);
    match backend.build(req, &EventSink::discard()) {
        Ok(built) => {
            let tags: Vec<String> = built.tags.iter().map(|t| t.familiar()).collect();
            if tags.is_empty() {
                outln!("{name}: built {}", built.image_id());
            } else {
                outln!("{name}: built {} as {}", built.image_id(), tags.join(", "));
            }
            Outcome::Built
        }
        Err(BuildError::Interrupted) => {
            errln!("{name}: interrupted");
            Outcome::Failed
        }
        Err(BuildError::Dockerfile(err)) => {
            errln!("{name}: failed: {}", file.locate(*err));
            Outcome::Failed
        }
        Err(e) => {
            errln!("{name}: failed: {:#}", anyhow::Error::from(e));
            Outcome::Failed
        }
    }
}

/// The build request of image `i`, paths taken from `dir` (the pipeline
/// file's directory).
fn request(
    pipeline: &Pipeline,
    i: usize,
    dir: &Path,
    push: bool,
    interrupt: &Arc<AtomicBool>,
) -> anyhow::Result<(BuildRequest, BuildFile)> {
    let image = &pipeline.images[i];
    let context = dir.join(&image.context);
    if !context.is_dir() {
        bail!("its context {} is not a directory", context.display());
    }
    let path = match &image.file {
        Some(f) => dir.join(f),
        None => default_build_file(&context)?,
    };
    let file = read_build_file(&path)?;
    let dockerfile = Dockerfile {
        name: file.name.clone(),
        bytes: file.bytes.clone(),
        path: Some(path),
    };
    let mut req = BuildRequest::new(dockerfile, Some(context));
    req.build_args = image.build_args.clone();
    for tag in &image.tags {
        req.tags
            .push(Reference::parse(tag).with_context(|| format!("invalid tag {tag:?}"))?);
    }
    let mut platforms = Vec::new();
    for p in &image.platforms {
        platforms
            .push(Platform::parse(p).map_err(|e| anyhow::anyhow!("invalid platform {p:?}: {e}"))?);
    }
    if platforms.len() == 1 {
        req.platform = platforms.pop();
    } else {
        req.platforms = platforms;
    }
    if push {
        if req.tags.is_empty() {
            bail!("--push: it has no tags to push to");
        }
        req.outputs = vec![Output::Image { push: true }];
    }
    req.source_date_epoch = crate::env::source_date_epoch()?;
    req.interrupt = interrupt.clone();
    Ok((req, file))
}
