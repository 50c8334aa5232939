//! `kiln backends`, the `--backend` flag and the `kiln manifest`
//! subcommands, which run on the chosen backend.

use super::registry::{NetArgs, StoreArg};
use crate::output::outln;
use kiln_backend::{BackendKind, BuildBackend, Unavailable};
use kiln_oci::reference::Reference;
use kiln_registry::ClientOptions;
use kiln_store::Store;
use std::process::ExitCode;

/// Which backend a command runs on.
#[derive(clap::Args)]
pub struct BackendArg {
    /// The backend: native, buildah, remote or hcs [default: $KILN_BACKEND,
    /// else native on Linux]; `kiln backends` shows which run here.
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
}

impl BackendArg {
    /// The backend asked for, else `$KILN_BACKEND`, else the host's.
    pub(crate) fn kind(&self) -> anyhow::Result<BackendKind> {
        BackendKind::select(self.backend.as_deref(), crate::env::backend().as_deref())
            .map_err(anyhow::Error::msg)
    }

    /// The backend, on the store `open_store` opens, reaching registries
    /// with `registry`. A backend kiln does not implement fails here,
    /// before the store is opened.
    pub(crate) fn open(
        &self,
        open_store: impl FnOnce() -> anyhow::Result<Store>,
        registry: ClientOptions,
    ) -> anyhow::Result<Box<dyn BuildBackend>> {
        let kind = self.kind()?;
        kind.ensure_implemented()?;
        let store = open_store()?;
        Ok(match kind {
            BackendKind::Native => Box::new(
                kiln_native::NativeBackend::new(store, registry)
                    .with_snapshotter(crate::env::snapshotter()?),
            ),
            BackendKind::Buildah => Box::new(kiln_buildah::BuildahBackend::new(store, registry)),
            #[cfg(windows)]
            BackendKind::Hcs => Box::new(kiln_native::HcsBackend::on_this_host(store, registry)),
            // `ensure_implemented` has refused these with its reason (hcs
            // off Windows: its host is HCS itself).
            #[cfg(not(windows))]
            BackendKind::Hcs => anyhow::bail!("backend {kind} needs a Windows host"),
            BackendKind::Remote => anyhow::bail!("backend {kind} is not implemented"),
        })
    }
}

/// Whether `kind` can run here: what it runs with, or why not. Needs no
/// store, so `kiln backends` can ask before any exists.
fn availability(kind: BackendKind) -> Result<String, Unavailable> {
    match kind {
        BackendKind::Native => kiln_native::availability(),
        BackendKind::Buildah => kiln_buildah::probe(),
        BackendKind::Hcs => kiln_native::hcs::availability(),
        BackendKind::Remote => Err(kind
            .not_implemented()
            .unwrap_or_else(|| Unavailable::new(format!("{kind} is not implemented")))),
    }
}

/// `kiln backends` and `kiln manifest`.
#[derive(clap::Subcommand)]
pub enum BackendsCommand {
    /// List the build backends, whether each can run here, and why not.
    Backends,
    /// Assemble and push manifest lists (image indexes) from images.
    #[command(subcommand)]
    Manifest(ManifestCommand),
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
        BackendsCommand::Manifest(m) => manifest(m),
    }
}

fn list() -> anyhow::Result<ExitCode> {
    let chosen = BackendArg { backend: None }.kind();
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
