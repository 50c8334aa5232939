//! `kiln build`: a Dockerfile and a context in, an image out, with its
//! progress on standard error (see `crate::progress`).

use super::backends::BackendArg;
mod context_arg;
use context_arg::ContextArg;
mod deliver;
mod run_flags;

use super::frontend::parse_build_args;
use super::registry::{AuthArgs, ForeignArgs, NetArgs, StoreArg};
use crate::build_file::{default_build_file, read_build_file, BuildFile};
use crate::output::{errln, outln};
use crate::progress::{Display, Mode};
use anyhow::{bail, Context};
use kiln_backend::{BuildBackend, BuildRequest, Dockerfile, NamedContext};
use kiln_backend::{BuildError, BuiltImage, EventSink, Output};
use kiln_frontend::stages::Platform;
use kiln_oci::reference::Reference;
use kiln_oci::Compression;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Subcommands that build images.
#[derive(clap::Subcommand)]
pub enum BuildCommand {
    /// Build an image from a Dockerfile or a ZImagefile: COPY, ADD and config steps without
    /// a container, RUN in one (runc or crun on overlayfs snapshots).
    Build(Box<BuildArgs>),
}

/// Arguments of `kiln build`.
#[derive(clap::Args)]
pub struct BuildArgs {
    #[command(flatten)]
    root: StoreArg,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    foreign: ForeignArgs,
    #[command(flatten)]
    backend: BackendArg,
    /// The Dockerfile, or a ZImagefile (named `ZImagefile`, `*.yaml` or
    /// `*.yml`) [default: CONTEXT/Dockerfile, or CONTEXT/ZImagefile when
    /// there is no Dockerfile]; `-` reads a Dockerfile from standard input.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Name the image NAME[:TAG]; repeatable.
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    tags: Vec<String>,
    /// A build argument, NAME=VALUE (or NAME to take it from the environment).
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    build_args: Vec<String>,
    /// The stage to build [default: the last one].
    #[arg(long)]
    target: Option<String>,
    /// The target platform, os/arch[/variant] [default: this host's]; several,
    /// comma-separated, build an image index.
    #[arg(long)]
    platform: Option<String>,
    /// A label KEY=VALUE for the image; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Take no step from the build cache (results are still recorded).
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_value_t = false,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    no_cache: bool,
    /// Take no step of this stage (a name or index) from the build cache;
    /// repeatable, or comma-separated.
    #[arg(long, value_name = "STAGE", value_delimiter = ',')]
    no_cache_filter: Vec<String>,
    /// Take steps from a shared cache: `type=registry,ref=IMAGE`,
    /// `type=local,src=DIR`, or just IMAGE; repeatable.
    #[arg(long, value_name = "SPEC")]
    cache_from: Vec<String>,
    /// Write the build's steps to a shared cache:
    /// `type=registry,ref=IMAGE[,mode=min|max]` or
    /// `type=local,dest=DIR[,mode=min|max]` (min: the image's steps; max:
    /// every stage's); repeatable.
    #[arg(long, value_name = "SPEC")]
    cache_to: Vec<String>,
    /// When base images come from the registry: `always` (what `--pull`
    /// alone means, as in buildx), `missing` (only when the store lacks
    /// them), `newer` (the registry's when it answers, else the store's)
    /// or `never`, as podman's `--pull`.
    #[arg(
        long,
        value_name = "POLICY",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "always",
        default_value = "missing"
    )]
    pull: String,
    /// Write the image id (the manifest digest, sha256:…) to this file.
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// Write build results as JSON (buildx's keys) to this file.
    #[arg(long, value_name = "FILE")]
    metadata_file: Option<PathBuf>,
    /// Where the result goes: type=image[,push=true] (the store, default),
    /// type=registry, type=oci,dest=DIR|FILE.tar, type=docker,dest=FILE.tar,
    /// type=local,dest=DIR, type=tar,dest=FILE; repeatable. `dest=-`, or
    /// `-` alone (type=tar), writes standard output; type=docker without a
    /// dest is `--load`.
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    outputs: Vec<String>,
    /// Push the image to the registry of each tag (same as type=image,push=true).
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_value_t = false,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    push: bool,
    /// An extra named context NAME=DIR|docker-image://REF|oci-layout://DIR[:TAG]
    /// for FROM and COPY --from; repeatable.
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    build_contexts: Vec<String>,
    /// The image's media types, as buildah and podman's flag: `oci`, or
    /// `docker` (Docker schema 2, which podman 4 needs for HEALTHCHECK);
    /// `-o type=image,oci-mediatypes=false` is buildx's spelling.
    #[arg(long, value_name = "oci|docker", default_value = "oci")]
    format: String,
    /// Layer compression: gzip, zstd or uncompressed.
    #[arg(long, default_value = "gzip")]
    compression: String,
    /// Compression level (gzip 0-9, zstd 1-22).
    #[arg(long, value_name = "N")]
    compression_level: Option<String>,
    /// Seconds since 1970 used for `created`, history times and as the
    /// newest file time [default: $SOURCE_DATE_EPOCH].
    #[arg(long, value_name = "SECONDS")]
    source_date_epoch: Option<i64>,
    /// A secret for RUN --mount=type=secret: id=ID[,src=FILE|,env=VAR];
    /// repeatable. Never stored in the image.
    #[arg(long = "secret", value_name = "id=ID,src=FILE")]
    secrets: Vec<String>,
    /// An SSH agent for RUN --mount=type=ssh: default|ID[=SOCKET] (SOCKET
    /// defaults to $SSH_AUTH_SOCK); repeatable.
    #[arg(long = "ssh", value_name = "ID[=SOCKET]")]
    ssh: Vec<String>,
    /// Grant an entitlement, as buildx does: `network.host` lets RUN steps
    /// use `--network=host`; repeatable or comma-separated.
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_delimiter = ',')]
    allow: Vec<String>,
    /// The OCI runtime for RUN: runc, crun or a path [default: the first of
    /// crun and runc that works on this host].
    #[arg(long, value_name = "RUNTIME")]
    runtime: Option<String>,
    /// How progress is shown on standard error: `tty` (a live view, with a
    /// summary), `plain` (BuildKit's lines), `rawjson` (one JSON object per
    /// build event, see docs/events.md), or `auto` (`tty` on a terminal,
    /// else `plain`). NO_COLOR turns colours off.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    progress: String,
    /// `--call check`: run BuildKit's Dockerfile checks and print what
    /// they find instead of building (exit 1 when they find anything).
    #[arg(long, value_name = "METHOD")]
    call: Option<String>,
    /// `--call check`.
    #[arg(long)]
    check: bool,
    /// Show no progress; print only the image id when the build succeeds.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Load the result into docker (when its daemon answers) or podman,
    /// streaming a docker-archive into `docker load` / `podman load`.
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_value_t = false,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    load: bool,
    /// The network of RUN steps without `--network`: `default` (their own
    /// namespace, connected through pasta or slirp4netns), `none`, or
    /// `host` (with `--allow network.host`).
    #[arg(long, value_name = "MODE")]
    network: Option<String>,
    /// An extra /etc/hosts entry for RUN steps, HOST:IP; repeatable.
    #[arg(long = "add-host", value_name = "HOST:IP")]
    add_hosts: Vec<String>,
    /// An annotation, `[TYPE:]KEY=VALUE`, TYPE (comma-separated) one of
    /// `manifest` (the default), `index`, `manifest-descriptor` and
    /// `index-descriptor`, as buildx; repeatable.
    #[arg(long = "annotation", value_name = "[TYPE:]KEY=VALUE")]
    annotations: Vec<String>,
    /// The size of /dev/shm in RUN steps (`64m`, `1g`) [default: 64m].
    #[arg(long = "shm-size", value_name = "SIZE")]
    shm_size: Option<String>,
    /// A resource limit of RUN steps, NAME=SOFT[:HARD] (`nofile=1024:2048`,
    /// -1 for unlimited); repeatable.
    #[arg(long, value_name = "NAME=SOFT[:HARD]")]
    ulimit: Vec<String>,
    /// Squash the layers the build adds on its base image into one, as
    /// podman's flag (the base's layers stay as they are).
    #[arg(long)]
    squash: bool,
    /// Provenance attestation: only `false` (kiln does not produce
    /// attestations yet).
    #[arg(long, value_name = "VALUE")]
    provenance: Option<String>,
    /// SBOM attestation: only `false` (kiln does not produce attestations
    /// yet).
    #[arg(long, value_name = "VALUE")]
    sbom: Option<String>,
    /// `--attest type=sbom|provenance[,…]`: only with `disabled=true`
    /// (kiln does not produce attestations yet).
    #[arg(long, value_name = "SPEC")]
    attest: Vec<String>,
    /// buildx's builder instance: kiln has none (see `--backend`).
    #[arg(long, value_name = "NAME")]
    builder: Option<String>,
    /// The cgroup parent of RUN containers (not supported yet).
    #[arg(long, value_name = "PATH")]
    cgroup_parent: Option<String>,
    #[command(flatten)]
    legacy: LegacyFlags,
    /// The build context: a directory; `-`, standard input holding a tar
    /// archive (plain, gzip, bzip2, xz or zstd) or a Dockerfile (then there
    /// is no context; `-f FILE -` with nothing piped in builds without one
    /// too); a git repository (`https://host/repo.git#ref:dir`,
    /// `git@host:repo.git`); or the URL of a tarball or a Dockerfile. `-f`
    /// names a file inside a context that is fetched or read from standard
    /// input.
    context: PathBuf,
}

/// `docker build` flags of the classic builder that buildx keeps, hidden,
/// so scripts written for it still run: the ones about intermediate
/// containers and sending the context mean nothing to kiln, as to BuildKit;
/// `--isolation` and `--security-opt` are accepted with buildx's warning;
/// the resource limits are refused, as kiln does not apply them yet.
#[derive(clap::Args, Debug)]
struct LegacyFlags {
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true, value_name = "BOOL")]
    rm: Option<Option<bool>>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true, value_name = "BOOL")]
    force_rm: Option<Option<bool>>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true, value_name = "BOOL")]
    compress: Option<Option<bool>>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true, value_name = "BOOL")]
    disable_content_trust: Option<Option<bool>>,
    #[arg(long, hide = true)]
    isolation: Option<String>,
    #[arg(long, hide = true)]
    security_opt: Vec<String>,
    #[arg(short = 'm', long, hide = true)]
    memory: Option<String>,
    #[arg(long, hide = true)]
    memory_swap: Option<String>,
    #[arg(short = 'c', long, hide = true)]
    cpu_shares: Option<String>,
    #[arg(long, hide = true)]
    cpu_period: Option<String>,
    #[arg(long, hide = true)]
    cpu_quota: Option<String>,
    #[arg(long, hide = true)]
    cpuset_cpus: Option<String>,
    #[arg(long, hide = true)]
    cpuset_mems: Option<String>,
}

impl LegacyFlags {
    /// Warns about the flags kiln ignores with a word, and refuses the
    /// resource limits.
    fn check(&self) -> anyhow::Result<()> {
        if self.isolation.is_some() {
            errln!("warning: --isolation is deprecated with BuildKit; kiln ignores it");
        }
        if !self.security_opt.is_empty() {
            errln!("warning: --security-opt is deprecated with BuildKit, and kiln ignores it: RUN steps get docker's default sandbox (see the README)");
        }
        let limits = [
            ("--memory", &self.memory),
            ("--memory-swap", &self.memory_swap),
            ("--cpu-shares", &self.cpu_shares),
            ("--cpu-period", &self.cpu_period),
            ("--cpu-quota", &self.cpu_quota),
            ("--cpuset-cpus", &self.cpuset_cpus),
            ("--cpuset-mems", &self.cpuset_mems),
        ];
        if let Some((flag, Some(value))) = limits.iter().find(|(_, v)| v.is_some()) {
            bail!("NotSupported: {flag} {value}: kiln does not limit the resources of RUN containers yet; drop the flag");
        }
        Ok(())
    }
}

/// Refuses, with the reason, the `docker buildx build` flags kiln knows
/// but does not implement yet, so a script fails on the flag's meaning
/// rather than on an "unexpected argument".
fn check_unsupported(args: &BuildArgs) -> anyhow::Result<()> {
    let not_yet = |flag: &str, why: &str| anyhow::anyhow!("NotSupported: {flag}: {why}");
    for (flag, value) in [("--provenance", &args.provenance), ("--sbom", &args.sbom)] {
        if let Some(v) = value.as_deref().filter(|v| !matches!(*v, "false" | "0")) {
            return Err(not_yet(
                &format!("{flag}={v}"),
                "kiln does not produce attestations yet; drop the flag or pass false",
            ));
        }
    }
    if let Some(spec) = args
        .attest
        .iter()
        .find(|a| !a.split(',').any(|f| f.trim() == "disabled=true"))
    {
        return Err(not_yet(
            &format!("--attest {spec}"),
            "kiln does not produce attestations yet; drop the flag or add disabled=true",
        ));
    }
    if let Some(name) = &args.builder {
        return Err(not_yet(
            &format!("--builder {name}"),
            "kiln has no buildx builder instances; it builds in this process (pick an engine with --backend native|buildah)",
        ));
    }
    args.legacy.check()?;
    if let Some(path) = &args.cgroup_parent {
        return Err(not_yet(
            &format!("--cgroup-parent {path}"),
            "kiln does not place RUN containers under a cgroup parent yet; drop the flag",
        ));
    }
    Ok(())
}

/// Runs a build subcommand.
pub fn run(cmd: BuildCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BuildCommand::Build(args) => build(*args),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    check_unsupported(&args)?;
    match (args.call.as_deref(), args.check) {
        (None | Some("build"), false) => {}
        (Some("check") | None, true) | (Some("check"), false) => return call_check(&args),
        (Some(other), _) => bail!(
            "NotSupported: --call {other}: kiln runs `build` and `check` (BuildKit's Dockerfile checks); outline and targets are not implemented"
        ),
    }
    let mode = Mode::parse(&args.progress)?;
    let Request {
        mut req,
        file,
        sinks,
        _context,
    } = request(&args)?;
    // A backend kiln does not implement is refused before the store is
    // opened, so nothing is written.
    args.backend.check()?;
    check_outputs(&req.outputs, args.iidfile.is_some())?;
    // `# check=error=true`: the file's checks must pass before it builds.
    if let Ok(ast) = kiln_frontend::parse(&req.dockerfile.name, &req.dockerfile.bytes) {
        let (findings, fail) = super::lint::findings(&file, &ast);
        if fail && !findings.is_empty() {
            super::lint::print_lines(&findings);
            bail!(
                "{}: `# check=error=true` and {} check(s) failed; fix them or drop the directive",
                file.name,
                findings.len()
            );
        }
    }
    let store = args.root.open()?;
    let deliveries = deliver::Deliveries::bind(&mut req.outputs, &sinks, store.tmp_dir())?;
    let registry = args
        .foreign
        .options(args.auth.options(args.net.options()?)?);
    let backend = args.backend.open(move || Ok(store), registry)?;
    // A ZImagefile's `build:` bases, built first into layouts that live as
    // long as the build.
    let bases = tempfile::Builder::new()
        .prefix("kiln-bases-")
        .tempdir()
        .context("cannot create a temporary directory for the ZImagefile's `build:` bases")?;
    if let Some(context) = req.context.clone() {
        build_bases(backend.as_ref(), &file, &context, &mut req, bases.path(), 0)?;
    }
    let display = (!args.quiet).then(|| Display::new(mode, file.clone()));
    // The first SIGINT or SIGTERM stops the build cleanly (containers
    // killed, snapshots removed); a second one exits at once, which leaves
    // at most what a SIGKILL would and the next build cleans that up.
    for signal in [SIGINT, SIGTERM] {
        display
            .as_ref()
            .map_or(Ok(()), |d| d.before_exit_on(signal, req.interrupt.clone()))
            .and_then(|()| {
                signal_hook::flag::register_conditional_shutdown(signal, 130, req.interrupt.clone())
            })
            .and_then(|_| signal_hook::flag::register(signal, req.interrupt.clone()))
            .context("cannot install the SIGINT/SIGTERM handler")?;
    }
    let sink = display
        .as_ref()
        .map_or_else(EventSink::discard, Display::sink);
    let built = backend.build(&req, &sink);
    drop(sink);
    if let Some(display) = &display {
        display.finish(built.as_ref().ok());
    }
    let built = match built {
        Err(BuildError::Interrupted) => {
            errln!("error: build interrupted; nothing was stored");
            return Ok(ExitCode::from(130));
        }
        Err(BuildError::Dockerfile(err)) => return Err(file.locate(*err).into()),
        other => other?,
    };
    if let Some(path) = &args.iidfile {
        std::fs::write(path, built.image_id().to_string())
            .with_context(|| format!("cannot write the image id to {}", path.display()))?;
    }
    if let Some(path) = &args.metadata_file {
        let json = serde_json::to_vec_pretty(&metadata(&built))?;
        std::fs::write(path, json)
            .with_context(|| format!("cannot write build metadata to {}", path.display()))?;
    }
    let uses_stdout = deliveries.uses_stdout();
    deliveries.deliver()?;
    let names: Vec<String> = built.tags.iter().map(|t| t.familiar()).collect();
    if uses_stdout {
        // Standard output carries the archive alone.
    } else if args.quiet {
        // docker build -q: the image id alone, for scripts.
        outln!("{}", built.image_id());
    } else if names.is_empty() {
        outln!("Built {}", built.image_id());
    } else {
        outln!("Built {} as {}", built.image_id(), names.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses, before anything is built, outputs buildx refuses: a local
/// destination that is a file, a tar destination that is a directory,
/// `--iidfile` with only a file system output (no image, so no id).
fn check_outputs(outputs: &[Output], iidfile: bool) -> anyhow::Result<()> {
    for output in outputs {
        match output {
            Output::Local { dest } if dest.exists() && !dest.is_dir() => {
                bail!("destination directory {} is a file", dest.display())
            }
            Output::Tar { dest } if dest != Path::new("-") && dest.is_dir() => {
                bail!("destination file {} is a directory", dest.display())
            }
            _ => {}
        }
    }
    let only_files = !outputs.is_empty()
        && outputs
            .iter()
            .all(|o| matches!(o, Output::Local { .. } | Output::Tar { .. }));
    if iidfile && only_files {
        bail!("local and tar exporters are incompatible with image ID file (--iidfile): they make no image");
    }
    Ok(())
}

/// `--call check`: parses the build file and runs BuildKit's checks on
/// it; nothing is built or stored.
fn call_check(args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let Request { req, file, .. } = request(args)?;
    let ast = kiln_frontend::parse(&req.dockerfile.name, &req.dockerfile.bytes)
        .map_err(|e| file.locate(e))?;
    let (findings, _) = super::lint::findings(&file, &ast);
    Ok(if super::lint::print_blocks(&findings) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Builds the `build:` bases `file` (a ZImagefile) names, each directory
/// relative to `context`, with its own Dockerfile or ZImagefile (whose own
/// bases are built first), into an OCI layout under `dir`, and gives each
/// to `req` as the build context its FROM names. Platform, cache, secrets,
/// `--build-context`s and the rest come from `req`; tags, labels, outputs
/// and exported caches do not.
fn build_bases(
    backend: &dyn BuildBackend,
    file: &BuildFile,
    context: &Path,
    req: &mut BuildRequest,
    dir: &Path,
    depth: usize,
) -> anyhow::Result<()> {
    let Some(converted) = &file.converted else {
        return Ok(());
    };
    if depth > 8 && !converted.builds.is_empty() {
        bail!(
            "{}: `build:` bases nest more than 8 deep; is one directory building itself?",
            file.name
        );
    }
    for base in &converted.builds {
        let base_context = context.join(&base.context);
        if !base_context.is_dir() {
            bail!(
                "{}: `build: {}`: {} is not a directory",
                file.name,
                base.context,
                base_context.display()
            );
        }
        let path = match &base.file {
            Some(f) => base_context.join(f),
            None => default_build_file(&base_context)?,
        };
        let base_file = read_build_file(&path)?;
        let mut sub = req.clone();
        sub.dockerfile = Dockerfile {
            name: base_file.name.clone(),
            bytes: base_file.bytes.clone(),
            path: Some(path),
        };
        sub.context = Some(base_context.clone());
        sub.build_args = base.args.iter().cloned().collect();
        sub.target = base.target.clone();
        sub.tags = Vec::new();
        sub.labels = Default::default();
        sub.cache_to = Vec::new();
        // Removed with `dir` when the build ends.
        let layout = tempfile::Builder::new()
            .prefix("base-")
            .tempdir_in(dir)?
            .keep()
            .join("layout");
        sub.outputs = vec![Output::Oci {
            dest: layout.clone(),
        }];
        build_bases(backend, &base_file, &base_context, &mut sub, dir, depth + 1)?;
        errln!(
            "building {} first: the `build:` base of {}",
            base_context.display(),
            file.name
        );
        match backend.build(&sub, &EventSink::discard()) {
            Ok(_) => {}
            Err(BuildError::Dockerfile(err)) => return Err(base_file.locate(*err).into()),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "building `build: {}` of {}",
                    base.context, file.name
                )))
            }
        }
        req.build_contexts.insert(
            base.name.clone(),
            NamedContext::OciLayout {
                path: layout,
                reference: None,
            },
        );
    }
    Ok(())
}

/// buildx's `--metadata-file` keys for an image build.
fn metadata(built: &BuiltImage) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    out.insert(
        "containerimage.config.digest".into(),
        built.config.digest.to_string().into(),
    );
    out.insert(
        "containerimage.descriptor".into(),
        serde_json::json!({
            "mediaType": built.manifest.media_type,
            "digest": built.manifest.digest.to_string(),
            "size": built.manifest.size,
        }),
    );
    out.insert(
        "containerimage.digest".into(),
        built.manifest.digest.to_string().into(),
    );
    if !built.tags.is_empty() {
        let names: Vec<String> = built.tags.iter().map(|t| t.to_string()).collect();
        out.insert("image.name".into(), names.join(",").into());
    }
    serde_json::Value::Object(out)
}

/// The request of a build, the build file it came from (which leads
/// errors about a ZImagefile's translation back to the YAML), the outputs
/// the CLI hands on once the build is done, and the context argument
/// (which holds a fetched context until the build is over).
struct Request {
    req: BuildRequest,
    file: BuildFile,
    sinks: deliver::Sinks,
    _context: ContextArg,
}

fn request(args: &BuildArgs) -> anyhow::Result<Request> {
    let ctx = ContextArg::resolve(&args.context, args.file.as_deref())?;
    let (file, path) = match (&ctx.dockerfile, &args.file, &ctx.dir) {
        (Some((name, bytes)), _, _) => (
            BuildFile {
                name: name.clone(),
                bytes: bytes.clone(),
                converted: None,
            },
            None,
        ),
        (None, Some(f), _) => {
            let path = ctx.file_path(f);
            (read_build_file(&path)?, Some(path))
        }
        (None, None, Some(dir)) => {
            let path = default_build_file(dir)?;
            (read_build_file(&path)?, Some(path))
        }
        (None, None, None) => bail!("no Dockerfile: give one with -f, or a context directory"),
    };
    let dockerfile = Dockerfile {
        name: file.name.clone(),
        bytes: file.bytes.clone(),
        path: path.filter(|p| p != Path::new("-")),
    };
    let mut req = BuildRequest::new(dockerfile, ctx.dir.clone());
    req.build_args = parse_build_args(&args.build_args, |k| std::env::var(k).ok())?;
    req.target = args.target.clone();
    if let Some(list) = &args.platform {
        let mut platforms = Vec::new();
        for p in list.split(',').map(str::trim) {
            let parsed =
                Platform::parse(p).map_err(|e| anyhow::anyhow!("invalid --platform {p:?}: {e}"))?;
            if platforms.contains(&parsed) {
                bail!("--platform {list}: {parsed} is given twice");
            }
            platforms.push(parsed);
        }
        if platforms.len() == 1 {
            req.platform = platforms.pop();
        } else {
            req.platforms = platforms;
        }
    }
    for tag in &args.tags {
        req.tags
            .push(Reference::parse(tag).with_context(|| format!("invalid --tag {tag:?}"))?);
    }
    req.labels = pairs("--label", &args.labels)?;
    req.squash = args.squash;
    req.pull = args.pull.parse().map_err(anyhow::Error::msg)?;
    for (name, value) in pairs("--build-context", &args.build_contexts)? {
        // buildx takes a context's name as an image name: `Alpine` is
        // refused, not quietly never used.
        Reference::parse(&name).map_err(|e| anyhow::anyhow!("invalid context name {name}: {e}"))?;
        let ctx: NamedContext = value
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid --build-context {name}={value}: {e}"))?;
        req.build_contexts.insert(name, ctx);
    }
    let mut outputs = Vec::new();
    let mut sinks = Vec::new();
    let mut oci_media_types = match args.format.as_str() {
        "oci" => true,
        "docker" => false,
        other => bail!("--format {other}: expected oci or docker"),
    };
    for spec in &args.outputs {
        // buildx's oci-mediatypes= applies to the whole image, so it is
        // read here and the rest of the spec goes to the output parser.
        let mut rest = Vec::new();
        for field in spec.split(',') {
            match field.split_once('=') {
                Some(("oci-mediatypes", v)) => {
                    oci_media_types = match v {
                        "true" => true,
                        "false" => false,
                        other => bail!(
                            "--output {spec}: oci-mediatypes must be true or false, not {other:?}"
                        ),
                    }
                }
                _ => rest.push(field),
            }
        }
        let rest = rest.join(",");
        match deliver::parse(&rest)? {
            Some((output, sink)) => {
                sinks.push((outputs.len(), sink));
                outputs.push(output);
            }
            None => outputs.push(Output::parse(&rest).map_err(anyhow::Error::msg)?),
        }
    }
    if args.load {
        // kiln's store keeps the image too, unless -o says otherwise.
        if outputs.is_empty() {
            outputs.push(Output::Image { push: false });
        }
        if !sinks.iter().any(|(_, s)| *s == deliver::Sink::Load) {
            sinks.push((outputs.len(), deliver::Sink::Load));
            outputs.push(Output::Docker {
                dest: PathBuf::new(),
            });
        }
    }
    if args.push {
        match outputs
            .iter_mut()
            .find(|o| matches!(o, Output::Image { .. }))
        {
            Some(o) => *o = Output::Image { push: true },
            None => outputs.push(Output::Image { push: true }),
        }
    }
    if !outputs.is_empty() {
        req.outputs = outputs;
    }
    for value in &args.secrets {
        let (id, source) = crate::secret::parse(value, &|name| crate::env::var(name))
            .map_err(anyhow::Error::msg)?;
        req.secrets.insert(id, source);
    }
    for value in &args.ssh {
        let (id, socket) = match value.split_once('=') {
            Some((id, path)) => (id.to_string(), PathBuf::from(path)),
            None => match std::env::var_os("SSH_AUTH_SOCK") {
                Some(sock) => (value.clone(), PathBuf::from(sock)),
                None => bail!(
                    "--ssh {value}: SSH_AUTH_SOCK is not set; give the agent socket as --ssh {value}=PATH"
                ),
            },
        };
        req.ssh.insert(id, socket);
    }
    req.runtime = args.runtime.clone();
    for entitlement in &args.allow {
        match entitlement.as_str() {
            "network.host" => req.allow_network_host = true,
            "security.insecure" => bail!(
                "--allow security.insecure: NotSupported: kiln does not run privileged build steps"
            ),
            other => bail!("--allow {other}: unknown entitlement; kiln knows network.host"),
        }
    }
    req.run = run_flags::RunFlags {
        network: args.network.as_deref(),
        add_hosts: &args.add_hosts,
        shm_size: args.shm_size.as_deref(),
        ulimits: &args.ulimit,
        allow_network_host: req.allow_network_host,
    }
    .parse()?;
    for spec in &args.annotations {
        req.annotations.add(spec).map_err(anyhow::Error::msg)?;
    }
    req.no_cache = args.no_cache;
    req.no_cache_filter = args.no_cache_filter.clone();
    for spec in &args.cache_from {
        req.cache_from
            .push(kiln_backend::parse_cache_from(spec).map_err(anyhow::Error::msg)?);
    }
    for spec in &args.cache_to {
        req.cache_to
            .push(kiln_backend::parse_cache_to(spec).map_err(anyhow::Error::msg)?);
    }
    req.compression = Compression::parse(&args.compression, args.compression_level.as_deref())?;
    req.docker_media_types = !oci_media_types;
    req.source_date_epoch = match args.source_date_epoch {
        Some(e) => Some(e),
        None => crate::env::source_date_epoch()?,
    };
    Ok(Request {
        req,
        file,
        sinks,
        _context: ctx,
    })
}

fn pairs(flag: &str, values: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for v in values {
        match v.split_once('=') {
            Some((k, val)) if !k.is_empty() => {
                out.insert(k.to_string(), val.to_string());
            }
            _ => bail!("invalid {flag} {v:?}: expected NAME=VALUE"),
        }
    }
    Ok(out)
}
