//! `kiln serve`: the remote build daemon (`kiln-remote`'s server), building
//! with the native backend into this host's store.

use super::registry::{AuthArgs, NetArgs, StoreArg};
use crate::output::errln;
use anyhow::Context;
use kiln_backend::BuildBackend;
use kiln_remote::{BackendFactory, Endpoint, Server, TlsFiles};
use kiln_store::Store;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The daemon subcommand.
#[derive(clap::Subcommand)]
pub enum ServeCommand {
    /// Run a build daemon for `kiln build --backend remote`: HTTP/2 on a unix socket, or on
    /// TCP with mutual TLS (clients need a certificate signed by --tls-ca). See docs/remote.md.
    Serve(ServeArgs),
}

/// Arguments of `kiln serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    root: StoreArg,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    auth: AuthArgs,
    /// Where to listen: unix:///PATH (access is the socket file's
    /// permissions) or tcp://HOST:PORT (port 0 picks one; the address is
    /// printed); repeatable.
    #[arg(long, value_name = "ADDRESS", required = true)]
    listen: Vec<String>,
    /// The CA client certificates must be signed by (TCP).
    #[arg(long, value_name = "PEM")]
    tls_ca: Option<PathBuf>,
    /// The daemon's certificate chain (TCP).
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The daemon's private key (TCP).
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
}

/// Runs `kiln serve` until it is killed or a listener fails.
pub fn run(cmd: ServeCommand) -> anyhow::Result<ExitCode> {
    let ServeCommand::Serve(args) = cmd;
    let endpoints: Vec<Endpoint> = args
        .listen
        .iter()
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let tls = if endpoints.iter().any(|e| matches!(e, Endpoint::Tcp { .. })) {
        let (Some(ca), Some(cert), Some(key)) = (&args.tls_ca, &args.tls_cert, &args.tls_key)
        else {
            anyhow::bail!(
                "a tcp:// listener needs mutual TLS: give --tls-ca, --tls-cert and --tls-key"
            );
        };
        Some(kiln_remote::net::server_config(&TlsFiles {
            ca: ca.clone(),
            identity: Some((cert.clone(), key.clone())),
        })?)
    } else {
        None
    };
    let store = args.root.open()?;
    let root = store.root().to_path_buf();
    let registry = args.auth.options(args.net.options()?)?;
    let snapshotter = crate::env::snapshotter()?;
    // A store (and so a lease) per build: what a build holds is released
    // when it ends, not when the daemon does.
    let factory: BackendFactory = Arc::new(move || {
        let backend =
            crate::env::native_backend(Store::open(&root)?, registry.clone(), snapshotter);
        Ok(Box::new(backend) as Box<dyn BuildBackend>)
    });
    let server = Server::new(&store.root().join("remote"), factory, |line| {
        errln!("kiln serve: {line}")
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the daemon's runtime")?;
    runtime.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for endpoint in endpoints {
            let server = server.clone();
            match endpoint {
                #[cfg(not(unix))]
                Endpoint::Unix(_) => anyhow::bail!(
                    "unix sockets are not supported on this OS: listen on tcp://HOST:PORT with mutual TLS"
                ),
                #[cfg(unix)]
                Endpoint::Unix(path) => {
                    remove_stale_socket(&path)?;
                    let listener = tokio::net::UnixListener::bind(&path)
                        .with_context(|| format!("cannot listen on {}", path.display()))?;
                    errln!("kiln serve: listening on unix://{}", path.display());
                    tasks.spawn(async move { server.serve_unix(listener).await });
                }
                Endpoint::Tcp { host, port } => {
                    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
                        .await
                        .with_context(|| format!("cannot listen on {host}:{port}"))?;
                    let local = listener.local_addr()?;
                    errln!("kiln serve: listening on tcp://{local}");
                    let tls = tls.clone().expect("made above for tcp listeners");
                    tasks.spawn(async move { server.serve_tls(listener, tls).await });
                }
            }
        }
        match tasks.join_next().await {
            Some(Ok(Err(e))) => Err(e.into()),
            Some(Err(e)) => Err(anyhow::anyhow!("a listener stopped: {e}")),
            Some(Ok(Ok(()))) | None => Ok(ExitCode::SUCCESS),
        }
    })
}

/// A socket file an earlier daemon left: nobody answers on it, so it may
/// go. Anything else at the path is left alone and the bind fails.
#[cfg(unix)]
fn remove_stale_socket(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if meta.file_type().is_socket() && std::os::unix::net::UnixStream::connect(path).is_err() {
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    Ok(())
}
