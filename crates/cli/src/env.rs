//! Everything kiln takes from its environment, read here and passed down
//! as options: the library crates read no environment variables, so an
//! embedder (or a remote daemon) decides what they see.

use kiln_registry::{AuthFiles, ClientOptions};
#[cfg(unix)]
use kiln_snapshot::DriverKind;
use std::ffi::OsString;
use std::path::PathBuf;

/// A variable's value, `None` when unset or empty.
pub fn var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

fn path(name: &str) -> Option<PathBuf> {
    var(name).map(PathBuf::from)
}

/// The user's home directory (`$HOME`, else root's).
fn home() -> PathBuf {
    path("HOME").unwrap_or_else(|| PathBuf::from("/root"))
}

/// Where registry credentials are read and written, as docker and podman
/// find them (`$REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG`, `$XDG_RUNTIME_DIR`).
pub fn auth_files() -> AuthFiles {
    AuthFiles::docker_and_containers(
        &home(),
        path("DOCKER_CONFIG"),
        path("XDG_RUNTIME_DIR"),
        path("REGISTRY_AUTH_FILE"),
    )
}

/// The `registries.conf` files podman and buildah read, in the order
/// that lets later ones win: `$CONTAINERS_REGISTRIES_CONF` alone when set;
/// else `~/.config/containers/registries.conf` if it exists, otherwise
/// `/etc/containers/registries.conf`, then the `*.conf` drop-ins of
/// `/etc/containers/registries.conf.d` and of
/// `~/.config/containers/registries.conf.d`, each directory sorted by name.
pub fn registries_conf_files() -> Vec<PathBuf> {
    if let Some(file) = path("CONTAINERS_REGISTRIES_CONF") {
        return vec![file];
    }
    let user = home().join(".config/containers");
    let main = user.join("registries.conf");
    let mut files = vec![if main.exists() {
        main
    } else {
        PathBuf::from("/etc/containers/registries.conf")
    }];
    for dir in [
        PathBuf::from("/etc/containers/registries.conf.d"),
        user.join("registries.conf.d"),
    ] {
        let mut dropins: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        dropins.sort();
        files.extend(dropins);
    }
    files
}

/// The registry client's defaults plus the environment:
/// `$KILN_INSECURE_REGISTRIES` (comma-separated hosts), `registries.conf`
/// ([`registries_conf_files`]), the auth files and the user's
/// `~/.docker/certs.d`.
pub fn client_options() -> anyhow::Result<ClientOptions> {
    let mut opts = ClientOptions::new(auth_files());
    opts.registries = kiln_registry::Registries::load(&registries_conf_files())?;
    if let Some(home) = path("HOME") {
        opts.cert_dirs.push(home.join(".docker/certs.d"));
    }
    opts.insecure_registries = var("KILN_INSECURE_REGISTRIES")
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    Ok(opts)
}

/// `$RUST_LOG`: the tracing directives `--debug` would otherwise set.
pub fn rust_log() -> Option<String> {
    var("RUST_LOG").map(|v| v.to_string_lossy().into_owned())
}

/// `$NO_COLOR` (any value): no colours unless `--color=always`.
pub fn no_color() -> bool {
    var("NO_COLOR").is_some()
}

/// `$SOURCE_DATE_EPOCH`, parsed.
pub fn source_date_epoch() -> anyhow::Result<Option<i64>> {
    let value = var("SOURCE_DATE_EPOCH").map(|v| v.to_string_lossy().into_owned());
    Ok(kiln_oci::config::parse_source_date_epoch(value.as_deref())?)
}

/// RUN's snapshotter as `$KILN_SNAPSHOTTER` forces it, if it does: on
/// Linux only, as no Linux RUN runs elsewhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshotter {
    #[cfg(unix)]
    forced: Option<DriverKind>,
}

/// The native backend on `store`, with RUN's snapshotter as `snapshotter`
/// forces it.
pub fn native_backend(
    store: kiln_store::Store,
    registry: ClientOptions,
    snapshotter: Snapshotter,
) -> kiln_native::NativeBackend {
    snapshotter.apply(kiln_native::NativeBackend::new(store, registry))
}

impl Snapshotter {
    #[cfg(unix)]
    fn apply(self, backend: kiln_native::NativeBackend) -> kiln_native::NativeBackend {
        backend.with_snapshotter(self.forced)
    }

    #[cfg(not(unix))]
    fn apply(self, backend: kiln_native::NativeBackend) -> kiln_native::NativeBackend {
        backend
    }
}

/// `$KILN_SNAPSHOTTER` means nothing where no Linux RUN runs.
#[cfg(not(unix))]
pub fn snapshotter() -> anyhow::Result<Snapshotter> {
    Ok(Snapshotter::default())
}

/// `$KILN_SNAPSHOTTER`: `overlay` or `copy` forces RUN's snapshotter.
#[cfg(unix)]
pub fn snapshotter() -> anyhow::Result<Snapshotter> {
    let forced = |kind| Ok(Snapshotter { forced: Some(kind) });
    match var("KILN_SNAPSHOTTER").map(|v| v.to_string_lossy().into_owned()) {
        None => Ok(Snapshotter::default()),
        Some(v) => match v.as_str() {
            "overlay" | "overlayfs" => forced(DriverKind::Overlay),
            "copy" | "native" => forced(DriverKind::Copy),
            other => {
                anyhow::bail!(
                    "KILN_SNAPSHOTTER={other:?} is not a snapshotter; use overlay or copy"
                )
            }
        },
    }
}

/// The store root when `--root` is not given: `$KILN_ROOT`, else the
/// default for this user (`$XDG_DATA_HOME`, `$HOME`).
pub fn store_root() -> anyhow::Result<PathBuf> {
    Ok(kiln_store::Store::default_root(
        path("KILN_ROOT"),
        path("XDG_DATA_HOME"),
        path("HOME"),
    )?)
}

/// `$KILN_BACKEND`: the build backend when `--backend` is not given.
pub fn backend() -> Option<String> {
    var("KILN_BACKEND").map(|v| v.to_string_lossy().into_owned())
}

/// `$KILN_REMOTE`: the kiln daemon `--backend remote` builds on, when
/// `--remote` is not given.
pub fn remote() -> Option<String> {
    var("KILN_REMOTE").map(|v| v.to_string_lossy().into_owned())
}

/// `$KILN_REMOTE_CA`, `$KILN_REMOTE_CERT` and `$KILN_REMOTE_KEY`: the
/// daemon's CA and this client's certificate and key, when the flags are
/// not given.
pub fn remote_tls() -> [Option<PathBuf>; 3] {
    [
        path("KILN_REMOTE_CA"),
        path("KILN_REMOTE_CERT"),
        path("KILN_REMOTE_KEY"),
    ]
}
