//! `kiln backends`, the `--backend` flag and the `kiln manifest`
//! subcommands, which run on the chosen backend.

use super::registry::{NetArgs, StoreArg};
use crate::output::outln;
use kiln_backend::{BackendKind, BuildBackend, Unavailable};
use kiln_oci::reference::Reference;
use kiln_registry::ClientOptions;
use kiln_store::Store;
use std::path::PathBuf;
use std::process::ExitCode;

/// A client of the daemon at `address` (else `$KILN_REMOTE`), with the
/// TLS files given (`[ca, cert, key]`, each else its variable); `None`
/// when no daemon is configured.
fn remote_client(
    address: Option<String>,
    tls: [Option<PathBuf>; 3],
) -> anyhow::Result<Option<kiln_remote::Client>> {
    let Some(address) = address.or_else(crate::env::remote) else {
        return Ok(None);
    };
    let endpoint: kiln_remote::Endpoint = address.parse()?;
    let [ca, cert, key] = {
        let env = crate::env::remote_tls();
        let mut it = tls.into_iter().zip(env).map(|(flag, env)| flag.or(env));
        [
            it.next().flatten(),
            it.next().flatten(),
            it.next().flatten(),
        ]
    };
    let files = match (ca, cert, key) {
        (None, None, None) => None,
        (Some(ca), Some(cert), Some(key)) => Some(kiln_remote::TlsFiles {
            ca,
            identity: Some((cert, key)),
        }),
        (Some(ca), None, None) => Some(kiln_remote::TlsFiles { ca, identity: None }),
        _ => anyhow::bail!(
            "--remote-cert and --remote-key (or KILN_REMOTE_CERT and KILN_REMOTE_KEY) go together, with --remote-ca"
        ),
    };
    Ok(Some(kiln_remote::Client::new(endpoint, files.as_ref())?))
}

/// Why `--backend remote` cannot build when no daemon is configured.
fn no_daemon() -> Unavailable {
    Unavailable::new(
        "no kiln daemon is configured: give --remote unix:///PATH or tcp://HOST:PORT \
         (or KILN_REMOTE), with --remote-ca, --remote-cert and --remote-key for TCP; \
         a daemon is started with `kiln serve`",
    )
}

/// Which backend a command runs on.
#[derive(clap::Args)]
pub struct BackendArg {
    /// The backend: native, buildah, remote or hcs [default: $KILN_BACKEND,
    /// else native, hcs on Windows]; `kiln backends` shows which run here.
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
    /// The kiln daemon of `--backend remote`: unix:///PATH or
    /// tcp://HOST:PORT (mutual TLS) [default: $KILN_REMOTE].
    #[arg(long, value_name = "ADDRESS")]
    remote: Option<String>,
    /// The CA the daemon's certificate is checked against (TCP)
    /// [default: $KILN_REMOTE_CA].
    #[arg(long, value_name = "PEM")]
    remote_ca: Option<PathBuf>,
    /// This client's certificate for the daemon (TCP)
    /// [default: $KILN_REMOTE_CERT].
    #[arg(long, value_name = "PEM")]
    remote_cert: Option<PathBuf>,
    /// This client's private key (TCP) [default: $KILN_REMOTE_KEY].
    #[arg(long, value_name = "PEM")]
    remote_key: Option<PathBuf>,
}

impl BackendArg {
    /// The backend asked for, else `$KILN_BACKEND`, else the host's.
    pub(crate) fn kind(&self) -> anyhow::Result<BackendKind> {
        BackendKind::select(
            self.backend.as_deref(),
            crate::env::backend().as_deref(),
            self.remote.is_some() || crate::env::remote().is_some(),
        )
        .map_err(anyhow::Error::msg)
    }

    /// The daemon `--remote*` (else `KILN_REMOTE*`) names, if any.
    fn remote(&self) -> anyhow::Result<Option<kiln_remote::Client>> {
        remote_client(
            self.remote.clone(),
            [
                self.remote_ca.clone(),
                self.remote_cert.clone(),
                self.remote_key.clone(),
            ],
        )
    }

    /// The backend asked for, refused here, before any store is opened,
    /// when kiln does not have it on this host (or, for `remote`, no
    /// daemon is configured).
    pub(crate) fn check(&self) -> anyhow::Result<BackendKind> {
        let kind = self.kind()?;
        kind.ensure_implemented()?;
        if kind == BackendKind::Remote && self.remote()?.is_none() {
            return Err(kind.refuse(&no_daemon()).into());
        }
        Ok(kind)
    }

    /// The backend, on the store `open_store` opens, reaching registries
    /// with `registry`. A backend kiln does not implement fails here,
    /// before the store is opened.
    pub(crate) fn open(
        &self,
        open_store: impl FnOnce() -> anyhow::Result<Store>,
        registry: ClientOptions,
    ) -> anyhow::Result<Box<dyn BuildBackend>> {
        let kind = self.check()?;
        if kind == BackendKind::Remote {
            let client = self.remote()?.ok_or_else(|| kind.refuse(&no_daemon()))?;
            return Ok(Box::new(kiln_remote::RemoteBackend::new(
                client,
                open_store()?,
            )));
        }
        let store = open_store()?;
        Ok(match kind {
            BackendKind::Native => Box::new(crate::env::native_backend(
                store,
                registry,
                crate::env::snapshotter()?,
            )),
            BackendKind::Buildah => Box::new(kiln_buildah::BuildahBackend::new(store, registry)),
            #[cfg(windows)]
            BackendKind::Hcs => Box::new(kiln_native::HcsBackend::on_this_host(store, registry)),
            // `check` has refused hcs off Windows with its reason: its host
            // is HCS itself.
            #[cfg(not(windows))]
            BackendKind::Hcs => anyhow::bail!("backend {kind} needs a Windows host"),
            // Opened above, on its daemon.
            BackendKind::Remote => anyhow::bail!("backend {kind} needs a daemon"),
        })
    }
}

/// Whether `kind` can run here: what it runs with, or why not. Needs no
/// store, so `kiln backends` can ask before any exists.
fn availability(kind: BackendKind) -> Result<String, Unavailable> {
    match kind {
        BackendKind::Native => kiln_native::availability(),
        BackendKind::Buildah => kiln_buildah::probe(),
        BackendKind::Remote => match remote_client(None, [None, None, None]) {
            Ok(Some(client)) => client.probe(),
            Ok(None) => Err(no_daemon()),
            Err(e) => Err(Unavailable::new(e.to_string())),
        },
        BackendKind::Hcs => kiln_native::hcs::availability(),
    }
}

/// `kiln backends` and `kiln manifest`.
#[derive(clap::Subcommand)]
pub enum BackendsCommand {
    /// List the build backends, whether each can run here, and why not.
    Backends,
    /// Assemble and push manifest lists (image indexes) from images.
    #[command(subcommand)]
    Manifest(Box<ManifestCommand>),
}

/// `kiln manifest` subcommands.
#[derive(clap::Subcommand)]
pub enum ManifestCommand {
    /// Start an empty manifest list, replacing one of the same name.
    Create {
        #[command(flatten)]
        backend: BackendArg,
        #[command(flatten)]
        root: StoreArg,
        #[command(flatten)]
        net: NetArgs,
        /// The list's name.
        list: String,
    },
    /// Add an image to a manifest list, under its config's platform.
    Add {
        #[command(flatten)]
        backend: BackendArg,
        #[command(flatten)]
        root: StoreArg,
        #[command(flatten)]
        net: NetArgs,
        /// The list's name.
        list: String,
        /// The image (name or id).
        image: String,
    },
    /// Push a manifest list and its images to a registry.
    Push {
        #[command(flatten)]
        backend: BackendArg,
        #[command(flatten)]
        root: StoreArg,
        #[command(flatten)]
        net: NetArgs,
        /// The list's name.
        list: String,
        /// Where to push it: REGISTRY/REPOSITORY:TAG.
        dest: String,
    },
}

/// Runs `kiln backends` or a `kiln manifest` subcommand.
pub fn run(cmd: BackendsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BackendsCommand::Backends => list(),
        BackendsCommand::Manifest(m) => manifest(*m),
    }
}

fn list() -> anyhow::Result<ExitCode> {
    let chosen = BackendArg {
        backend: None,
        remote: None,
        remote_ca: None,
        remote_cert: None,
        remote_key: None,
    }
    .kind();
    outln!("{:<9} {:<10} DETAIL", "BACKEND", "AVAILABLE");
    for kind in BackendKind::ALL {
        let (available, detail) = match availability(kind) {
            Ok(what) => ("yes", what),
            Err(why) => ("no", why.to_string()),
        };
        outln!("{:<9} {available:<10} {detail}", kind.name());
    }
    match (chosen, crate::env::backend()) {
        (Ok(kind), Some(_)) => outln!("Builds use {kind} (from KILN_BACKEND)."),
        (Ok(BackendKind::Remote), None) => {
            outln!("Builds use remote (KILN_REMOTE names a kiln daemon).")
        }
        (Ok(kind), None) => outln!("Builds use {kind} (this host's default)."),
        (Err(e), _) => outln!("Builds fail: {e}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn manifest(cmd: ManifestCommand) -> anyhow::Result<ExitCode> {
    let parse = |s: &str| Reference::parse(s).map_err(anyhow::Error::from);
    match cmd {
        ManifestCommand::Create {
            backend,
            root,
            net,
            list,
        } => {
            backend
                .open(|| root.open(), net.options()?)?
                .manifest_create(&parse(&list)?)?;
            outln!("Created manifest list {list}");
        }
        ManifestCommand::Add {
            backend,
            root,
            net,
            list,
            image,
        } => {
            backend
                .open(|| root.open(), net.options()?)?
                .manifest_add(&parse(&list)?, &image)?;
            outln!("Added {image} to {list}");
        }
        ManifestCommand::Push {
            backend,
            root,
            net,
            list,
            dest,
        } => {
            let pushed = backend
                .open(|| root.open(), net.options()?)?
                .manifest_push(&parse(&list)?, &parse(&dest)?)?;
            outln!("Pushed {}", pushed.reference.familiar());
            outln!("Digest: {}", pushed.digest);
        }
    }
    Ok(ExitCode::SUCCESS)
}
