//! Registry subcommands: pull, push, copy, login, logout.

use crate::output::outln;
use anyhow::{bail, Context};
use kiln_oci::reference::Reference;
use kiln_oci::{select_platform, Parsed, Platform};
use kiln_registry::{first_that_pulls, AuthFiles, Client, ClientOptions, Credentials, PushOptions};
use kiln_store::{media_type, ArchiveImage, Descriptor, Store};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Subcommands that talk to registries.
#[derive(clap::Subcommand)]
pub enum RegistryCommand {
    /// Pull an image from a registry into the store.
    Pull {
        #[command(flatten)]
        root: StoreArg,
        #[command(flatten)]
        net: NetArgs,
        #[command(flatten)]
        auth: AuthArgs,
        /// Platform to pull from a multi-platform image: os/arch[/variant],
        /// or windows(10.0.17763)/amd64 for a Windows build [default: this host's].
        #[arg(long)]
        platform: Option<Platform>,
        /// Pull every platform of a multi-platform image: the whole index,
        /// which can be pushed again unchanged (like `skopeo copy --all`).
        #[arg(long, conflicts_with = "platform")]
        all_platforms: bool,
        #[command(flatten)]
        foreign: ForeignArgs,
        /// The image: NAME[:TAG] or NAME@DIGEST.
        image: String,
    },
    /// Push an image from the store to a registry.
    Push {
        #[command(flatten)]
        root: StoreArg,
        #[command(flatten)]
        net: NetArgs,
        #[command(flatten)]
        auth: AuthArgs,
        #[command(flatten)]
        foreign: ForeignArgs,
        #[command(flatten)]
        backend: super::backends::BackendArg,
        /// How progress is shown on standard error: `tty` (a live view),
        /// `plain` (BuildKit's lines), `rawjson` (one JSON object per event,
        /// see docs/events.md), or `auto` (`tty` on a terminal, else
        /// `plain`), as for `kiln build`.
        #[arg(long, value_name = "MODE", default_value = "auto")]
        progress: String,
        /// Show no progress.
        #[arg(short = 'q', long)]
        quiet: bool,
        /// The image in the store (name or id).
        image: String,
        /// Where to push it [default: the image's own name].
        dest: Option<String>,
    },
    /// Copy an image between registries (docker://REF), OCI layouts
    /// (oci:DIR[:TAG]), docker-archives (docker-archive:FILE) and the
    /// store (store:REF), like `skopeo copy`.
    Copy {
        #[command(flatten)]
        root: StoreArg,
        #[command(flatten)]
        net: NetArgs,
        #[command(flatten)]
        auth: AuthArgs,
        /// Platform to copy from a multi-platform image [default: this host's].
        #[arg(long)]
        platform: Option<Platform>,
        /// Copy every platform of a multi-platform image: the whole index,
        /// unchanged (like `skopeo copy --all`).
        #[arg(long, conflicts_with = "platform")]
        all: bool,
        #[command(flatten)]
        foreign: ForeignArgs,
        /// Source.
        src: String,
        /// Destination.
        dest: String,
    },
    /// Check and save credentials for a registry, as `docker login` does.
    Login {
        #[command(flatten)]
        net: NetArgs,
        /// User name.
        #[arg(short, long)]
        username: Option<String>,
        /// Password or access token (prefer --password-stdin).
        #[arg(short, long)]
        password: Option<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Save the credentials in this file (docker's config.json format)
        /// instead of docker's or $REGISTRY_AUTH_FILE, as podman's `--authfile`.
        #[arg(long, value_name = "FILE")]
        authfile: Option<PathBuf>,
        /// The registry host[:port] [default: docker.io].
        registry: Option<String>,
    },
    /// Remove saved credentials for a registry.
    Logout {
        /// The registry host[:port] [default: docker.io].
        registry: Option<String>,
    },
}

/// Where the store is.
#[derive(clap::Args)]
pub struct StoreArg {
    /// Store root [default: $KILN_ROOT, else /var/lib/kiln as root, else
    /// $XDG_DATA_HOME/kiln].
    #[arg(long)]
    root: Option<PathBuf>,
}

impl StoreArg {
    pub(crate) fn open(&self) -> anyhow::Result<Store> {
        let root = match &self.root {
            Some(r) => r.clone(),
            None => crate::env::store_root()?,
        };
        crate::cmd::open_store(&root)
    }
}

/// How to reach registries.
#[derive(clap::Args)]
pub struct NetArgs {
    /// Verify registries' TLS certificates (`--tls-verify=false` treats
    /// every registry as insecure).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// A registry (host[:port]) reachable over plain HTTP or with an
    /// unverified certificate; repeatable. Also $KILN_INSECURE_REGISTRIES.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure: Vec<String>,
    /// An extra CA certificate (PEM) to trust; repeatable.
    #[arg(long = "ca-cert", value_name = "FILE")]
    ca_certs: Vec<PathBuf>,
    /// Give up on a transfer that makes no progress (no answer, no next
    /// bytes of a body, an upload not moving) for this many seconds; a
    /// slow transfer that keeps moving is never cut [default: 30].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    timeout: Option<Duration>,
    /// Give up on opening a connection to a registry after this many
    /// seconds [default: 30].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    connect_timeout: Option<Duration>,
    /// How many times a transient failure (timeout, a connection cut,
    /// 429, 5xx) is retried, with backoff [default: 4]; a refused
    /// connection or a name that does not resolve is not retried.
    #[arg(long, value_name = "N")]
    retry_times: Option<u32>,
}

/// Credentials other than the stored ones, as podman and buildah take them.
#[derive(clap::Args)]
pub struct AuthArgs {
    /// Read credentials from this file alone (docker's config.json or
    /// containers' auth.json format), as podman's `--authfile`
    /// [default: $REGISTRY_AUTH_FILE, else docker's and podman's files].
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// Credentials USER:PASSWORD for the registries this command talks to,
    /// ahead of stored ones (podman's `--creds`).
    #[arg(long, value_name = "USER:PASSWORD")]
    creds: Option<String>,
}

impl AuthArgs {
    /// `opts` with these credentials.
    pub(crate) fn options(&self, mut opts: ClientOptions) -> anyhow::Result<ClientOptions> {
        if let Some(file) = &self.authfile {
            opts.auth_files = AuthFiles {
                read: vec![file.clone()],
                write: file.clone(),
            };
        }
        if let Some(creds) = &self.creds {
            let Some((username, password)) = creds.split_once(':') else {
                bail!("--creds: expected USER:PASSWORD");
            };
            opts.credentials_for_all = Some(Credentials {
                username: username.to_string(),
                password: password.to_string(),
            });
        }
        Ok(opts)
    }
}

/// What happens to foreign layers (Windows base layers with `urls`).
#[derive(clap::Args)]
pub struct ForeignArgs {
    /// Pass foreign layers (layers with `urls`, as old Windows base images
    /// have) through: their descriptors stay byte for byte, their bytes are
    /// never pushed, and `pull`, `push` and `copy` do not fetch them (a
    /// build still does, as its steps may read them). The destination
    /// registry must allow their URLs (docker-registry:
    /// `validation.manifests.urls.allow`). By default they are fetched and
    /// pushed or exported as ordinary layers, which every registry accepts.
    #[arg(long)]
    pub(crate) keep_foreign_layers: bool,
}

impl ForeignArgs {
    /// `opts` with this choice.
    pub(crate) fn options(&self, mut opts: ClientOptions) -> ClientOptions {
        opts.keep_foreign_layers = self.keep_foreign_layers;
        opts
    }
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs.is_finite() => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

impl NetArgs {
    pub(crate) fn options(&self) -> anyhow::Result<ClientOptions> {
        let mut opts = crate::env::client_options()?;
        opts.tls_verify = self.tls_verify;
        opts.insecure_registries
            .extend(self.insecure.iter().cloned());
        opts.ca_certs.extend(self.ca_certs.iter().cloned());
        if let Some(t) = self.timeout {
            opts.timeout = t;
        }
        if let Some(t) = self.connect_timeout {
            opts.connect_timeout = t;
        }
        if let Some(n) = self.retry_times {
            opts.retries = n;
        }
        Ok(opts)
    }

    fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(self.options()?))
    }
}

/// Runs a registry subcommand.
pub fn run(cmd: RegistryCommand) -> anyhow::Result<ExitCode> {
    // The backend blocks on the runtime itself, so it runs outside it.
    if let RegistryCommand::Push {
        root,
        net,
        auth,
        foreign,
        backend,
        progress,
        quiet,
        image,
        dest,
    } = cmd
    {
        let mode = crate::progress::Mode::parse(&progress)?;
        let dest = dest.as_deref().map(parse_ref).transpose()?;
        let options = foreign.options(auth.options(net.options()?)?);
        if !foreign.keep_foreign_layers {
            // Foreign layers go out as ordinary ones, so their bytes must
            // be in the store the backend pushes from.
            let store = root.open()?;
            let resolved = store.resolve(&image)?;
            let client = Client::new(options.clone());
            let rt = kiln_backend::runtime().map_err(anyhow::Error::msg)?;
            rt.block_on(fetch_foreign(&client, &store, &resolved.descriptor, None))?;
        }
        let backend = backend.open(|| root.open(), options)?;
        let display = (!quiet).then(|| crate::progress::Display::for_push(mode));
        let sink = display
            .as_ref()
            .map_or_else(kiln_backend::EventSink::discard, |d| d.sink());
        let pushed = backend.push(&image, dest.as_ref(), &sink);
        drop(sink);
        if let Some(display) = &display {
            display.finish(None);
        }
        let pushed = pushed?;
        outln!("Pushed {}", pushed.reference.familiar());
        outln!("Digest: {}", pushed.digest);
        return Ok(ExitCode::SUCCESS);
    }
    let rt = kiln_backend::runtime().map_err(anyhow::Error::msg)?;
    rt.block_on(run_async(cmd))?;
    Ok(ExitCode::SUCCESS)
}

async fn run_async(cmd: RegistryCommand) -> anyhow::Result<()> {
    match cmd {
        RegistryCommand::Pull {
            root,
            net,
            auth,
            platform,
            all_platforms,
            foreign,
            image,
        } => {
            let client = Client::new(foreign.options(auth.options(net.options()?)?));
            let candidates = client.candidates(&image)?;
            let store = root.open()?;
            if all_platforms {
                let (reference, pulled) = first_that_pulls(&image, &candidates, |r| {
                    let (client, store) = (&client, &store);
                    async move { client.pull_all(store, &r).await }
                })
                .await?;
                outln!("Pulled {}", reference.familiar());
                if media_type::is_index(&pulled.top.media_type) {
                    let platforms: Vec<String> = pulled
                        .manifests
                        .iter()
                        .map(|m| {
                            m.platform()
                                .map_or_else(|| m.digest.to_string(), |p| p.to_string())
                        })
                        .collect();
                    outln!("Platforms: {}", platforms.join(", "));
                }
                outln!("Digest: {}", pulled.top.digest);
            } else {
                let (reference, pulled) = first_that_pulls(&image, &candidates, |r| {
                    let (client, store, platform) = (&client, &store, platform.as_ref());
                    async move { client.pull(store, &r, platform).await }
                })
                .await?;
                outln!("Pulled {}", reference.familiar());
                outln!("Digest: {}", pulled.manifest.digest);
            }
            Ok(())
        }
        RegistryCommand::Push { .. } => unreachable!("run pushes before the runtime starts"),
        RegistryCommand::Copy {
            root,
            net,
            auth,
            platform,
            all,
            foreign,
            src,
            dest,
        } => {
            let client = Client::new(foreign.options(auth.options(net.options()?)?));
            copy(&root, &client, platform.as_ref(), all, &src, &dest).await
        }
        RegistryCommand::Login {
            net,
            username,
            password,
            password_stdin,
            authfile,
            registry,
        } => {
            let registry = registry_name(registry.as_deref());
            // docker's prompts, on a terminal only: a script must say.
            let username = match username {
                Some(u) => u,
                None if crate::prompt::interactive() && !password_stdin => {
                    crate::prompt::line("Username: ")?
                }
                None => bail!("give a user name with --username (there is no terminal to ask on)"),
            };
            if username.is_empty() {
                bail!("the user name is empty");
            }
            let password = match (password, password_stdin) {
                (Some(_), true) => bail!("--password and --password-stdin cannot be used together"),
                (Some(p), false) => p,
                (None, true) => {
                    let mut p = String::new();
                    std::io::stdin()
                        .read_to_string(&mut p)
                        .context("reading the password from standard input")?;
                    p.trim_end_matches(['\n', '\r']).to_string()
                }
                (None, false) if crate::prompt::interactive() => {
                    crate::prompt::password("Password: ")?
                }
                (None, false) => bail!(
                    "give a password with --password-stdin or --password (there is no terminal to ask on)"
                ),
            };
            let creds = Credentials { username, password };
            net.client()?.login(&registry, &creds).await?;
            let files = match authfile {
                Some(file) => AuthFiles {
                    read: vec![file.clone()],
                    write: file,
                },
                None => crate::env::auth_files(),
            };
            let saved = files.store(&registry, &creds).map_err(anyhow::Error::msg)?;
            outln!("Login Succeeded (credentials for {registry} saved in {saved})");
            Ok(())
        }
        RegistryCommand::Logout { registry } => {
            let registry = registry_name(registry.as_deref());
            let files = crate::env::auth_files();
            if !files.erase(&registry).map_err(anyhow::Error::msg)? {
                bail!(
                    "not logged in to {registry} (no credentials in {})",
                    files.write.display()
                );
            }
            outln!("Removed login credentials for {registry}");
            Ok(())
        }
    }
}

fn parse_ref(s: &str) -> anyhow::Result<Reference> {
    Ok(Reference::parse(s)?)
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://h:5000/` → `h:5000`.
fn registry_name(arg: Option<&str>) -> String {
    let arg = arg.unwrap_or("docker.io");
    let rest = arg
        .strip_prefix("https://")
        .or_else(|| arg.strip_prefix("http://"))
        .unwrap_or(arg);
    match rest.split('/').next().unwrap_or(rest) {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        host => host.to_string(),
    }
}

/// One end of `kiln copy`.
enum Location {
    Registry(Reference),
    Layout(PathBuf, Option<String>),
    DockerArchive(PathBuf),
    Store(Reference),
}

fn location(s: &str) -> anyhow::Result<Location> {
    if let Some(r) = s.strip_prefix("docker://") {
        return Ok(Location::Registry(parse_ref(r)?));
    }
    if let Some(p) = s.strip_prefix("oci:") {
        let (path, tag) = match p.rsplit_once(':') {
            Some((path, tag)) if !tag.contains('/') => (path, Some(tag.to_string())),
            _ => (p, None),
        };
        return Ok(Location::Layout(path.into(), tag));
    }
    if let Some(p) = s.strip_prefix("docker-archive:") {
        return Ok(Location::DockerArchive(p.into()));
    }
    if let Some(r) = s.strip_prefix("store:") {
        return Ok(Location::Store(parse_ref(r)?));
    }
    bail!("{s:?} names no known transport; use docker://REF, oci:DIR[:TAG], docker-archive:FILE or store:REF")
}

/// Fetches the foreign layers of `image` that `store` lacks, from the
/// registry `source` names first when given, then from their URLs.
async fn fetch_foreign(
    client: &Client,
    store: &Store,
    image: &Descriptor,
    source: Option<&Reference>,
) -> anyhow::Result<()> {
    for layer in store.foreign_absent(image) {
        client.fetch_foreign(store, source, &layer).await?;
    }
    Ok(())
}

/// Pulls `from` into `store`: every platform with `all`, else one.
async fn pull_into(
    client: &Client,
    store: &Store,
    from: &Reference,
    platform: Option<&Platform>,
    all: bool,
) -> anyhow::Result<Descriptor> {
    Ok(if all {
        client.pull_all(store, from).await?.top
    } else {
        client.pull(store, from, platform).await?.manifest
    })
}

/// The manifest of `image` for `platform` (default: this host's) when it
/// is an index, among the platforms `store` has.
fn one_platform(
    store: &Store,
    image: Descriptor,
    platform: Option<&Platform>,
) -> anyhow::Result<Descriptor> {
    if !media_type::is_index(&image.media_type) {
        return Ok(image);
    }
    let bytes = store.read_blob(&image.digest)?;
    let Parsed::Index(_, index) =
        kiln_registry::parse_manifest(&image.media_type, &bytes).map_err(anyhow::Error::msg)?
    else {
        bail!("{} is not an index", image.digest);
    };
    let present: Vec<Descriptor> = index
        .manifests
        .into_iter()
        .filter(|e| store.has_blob(&e.digest))
        .collect();
    let wanted = platform.cloned().unwrap_or_else(Platform::host);
    match select_platform(&wanted, &present, Descriptor::platform) {
        Some(entry) => one_platform(store, entry.clone(), platform),
        None => bail!(
            "the source is a multi-platform image without {wanted}; it has {}; pass `--platform` with one of those, or `--all` to copy every platform",
            present
                .iter()
                .filter_map(|e| e.platform().map(|p| p.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

async fn copy(
    root: &StoreArg,
    client: &Client,
    platform: Option<&Platform>,
    all: bool,
    src: &str,
    dest: &str,
) -> anyhow::Result<()> {
    let (src, dest) = (location(src)?, location(dest)?);
    if all && matches!(dest, Location::DockerArchive(_)) {
        bail!("a docker-archive holds single-platform images, not an index; drop --all (and pick one with --platform), or copy to oci:DIR");
    }
    // Registry to store: a pull, tagged with the store name.
    if let (Location::Registry(from), Location::Store(to)) = (&src, &dest) {
        let store = root.open()?;
        let top = pull_into(client, &store, from, platform, all).await?;
        store.tag(to, &top)?;
        outln!("Copied {} to store:{}", from.familiar(), to.familiar());
        return Ok(());
    }
    // Everything else goes through a staging store, or the real one.
    let staging_dir = tempfile::tempdir().context("creating a staging directory")?;
    let staging = Store::open(staging_dir.path())?;
    let main;
    let (store, image): (&Store, Descriptor) = match &src {
        Location::Registry(r) => (
            &staging,
            pull_into(client, &staging, r, platform, all).await?,
        ),
        Location::Layout(path, _) | Location::DockerArchive(path) => {
            let images = staging.load(path)?;
            let first = images
                .into_iter()
                .next()
                .with_context(|| format!("{} holds no image", path.display()))?;
            (&staging, first.descriptor)
        }
        Location::Store(r) => {
            main = root.open()?;
            let d = main.resolve(&r.to_string())?.descriptor;
            (&main, d)
        }
    };
    let image = if all {
        image
    } else {
        one_platform(store, image, platform)?
    };
    // Foreign layers' bytes: a docker-archive always carries them (it has
    // no descriptors to keep), the rest unless the layers are kept.
    let keep = client.options().keep_foreign_layers;
    if !keep || matches!(dest, Location::DockerArchive(_)) {
        let source = match &src {
            Location::Registry(r) => Some(r),
            _ => None,
        };
        fetch_foreign(client, store, &image, source).await?;
    }
    match &dest {
        Location::Registry(to) => {
            let mount_from = match &src {
                Location::Registry(from) if from.registry == to.registry => vec![from.repository.clone()],
                _ => Vec::new(),
            };
            let opts = PushOptions {
                mount_from,
                ..PushOptions::default()
            };
            let pushed = client.push(store, &image, to, &opts).await?;
            outln!("Copied to {}", to.familiar());
            outln!("Digest: {}", pushed.digest);
        }
        Location::Layout(path, tag) => {
            // The store names layout entries by full reference; the source's
            // name with the requested tag is the one that means something.
            let tags = match (tag, &src) {
                (None, _) => Vec::new(),
                (Some(t), Location::Registry(r) | Location::Store(r)) => vec![r.with_tag(t)?],
                (Some(_), _) => bail!(
                    "a tag for the destination layout is only supported when copying from a registry or the store; drop `:TAG`"
                ),
            };
            let image = if keep {
                image
            } else {
                store.distributable(&image)?
            };
            store.export_oci(&[ArchiveImage { descriptor: image, tags }], path)?;
            outln!("Copied to oci:{}", path.display());
        }
        Location::DockerArchive(path) => {
            store.save_docker(&[ArchiveImage { descriptor: image, tags: Vec::new() }], path)?;
            outln!("Copied to docker-archive:{}", path.display());
        }
        Location::Store(_) => bail!(
            "copying into the store from an OCI layout, docker-archive or the store itself is not supported by `kiln copy`; use `kiln load` for archives and `kiln tag` within the store"
        ),
    }
    Ok(())
}
