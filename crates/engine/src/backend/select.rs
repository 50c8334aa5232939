//! Which backend a build uses: the one asked for (`--backend`, else the
//! value of `KILN_BACKEND`, which the caller reads), else this host's
//! default. Backends kiln names but does not implement are refused here
//! with what is missing, so no caller ever holds a backend that pretends.
//!
//! The remote backend lives in `kiln-remote`, which depends on this crate;
//! the program that links it (the CLI) hands it in as a
//! [`RemoteConnector`] once it knows the daemon's address.

use super::{BuildBackend, BuildError, BuildahBackend, NativeBackend};
use kiln_registry::ClientOptions;
use kiln_store::Store;
use std::fmt;
use std::sync::OnceLock;

/// How the remote backend reaches a kiln daemon: set by the program that
/// links a remote client ([`set_remote_connector`]), since that client's
/// crate depends on this one.
pub trait RemoteConnector: Send + Sync {
    /// Whether the daemon answers and can build: what it runs, or why not.
    fn availability(&self) -> Result<String, Unavailable>;
    /// The backend, bringing images into `store`.
    fn open(&self, store: Store) -> Result<Box<dyn BuildBackend>, BuildError>;
}

static REMOTE: OnceLock<Box<dyn RemoteConnector>> = OnceLock::new();

/// Makes `--backend remote` use `connector` (a daemon is configured); the
/// first call wins. Without one, the remote backend says no daemon is
/// configured.
pub fn set_remote_connector(connector: Box<dyn RemoteConnector>) {
    let _ = REMOTE.set(connector);
}

/// The backends kiln knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// Builds in this process ([`super::NativeBackend`]).
    Native,
    /// Drives the `buildah` command ([`super::BuildahBackend`]).
    Buildah,
    /// A kiln daemon (`kiln serve`), through the [`RemoteConnector`] the
    /// program set.
    Remote,
    /// Windows' Host Compute Service, on a Windows host (not implemented).
    Hcs,
}

impl BackendKind {
    /// Every backend, in the order `kiln backends` lists them.
    pub const ALL: [BackendKind; 4] = [
        BackendKind::Native,
        BackendKind::Buildah,
        BackendKind::Remote,
        BackendKind::Hcs,
    ];

    /// The name `--backend` takes.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Native => "native",
            BackendKind::Buildah => "buildah",
            BackendKind::Remote => "remote",
            BackendKind::Hcs => "hcs",
        }
    }

    /// Parses a backend name.
    pub fn parse(name: &str) -> Result<BackendKind, String> {
        BackendKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| format!("unknown backend {name:?}: use native, buildah, remote or hcs"))
    }

    /// This host's default: native on Linux, where it builds everything
    /// kiln can; elsewhere there is no backend that runs, and native says
    /// why when asked.
    pub fn host_default() -> BackendKind {
        BackendKind::Native
    }

    /// The backend for a build: `explicit` (`--backend`), else `from_env`
    /// (the value of `KILN_BACKEND`, read by the caller), else
    /// [`BackendKind::host_default`]. The error names the flag or the
    /// variable that was wrong.
    pub fn select(explicit: Option<&str>, from_env: Option<&str>) -> Result<BackendKind, String> {
        match (explicit, from_env) {
            (Some(name), _) => BackendKind::parse(name).map_err(|e| format!("--backend: {e}")),
            (None, Some(name)) => {
                BackendKind::parse(name).map_err(|e| format!("KILN_BACKEND: {e}"))
            }
            (None, None) => Ok(BackendKind::host_default()),
        }
    }

    /// For a backend kiln does not implement, why it cannot be used and
    /// where such a build can run; `None` for the implemented ones.
    pub fn not_implemented(self) -> Option<Unavailable> {
        match self {
            BackendKind::Native | BackendKind::Buildah => None,
            BackendKind::Remote => REMOTE.get().is_none().then(remote_missing),
            BackendKind::Hcs => Some(hcs_missing()),
        }
    }

    /// Whether this backend can run here: what it runs with, or why not.
    /// Needs no store, so `kiln backends` can ask before any exists.
    pub fn availability(self) -> Result<String, Unavailable> {
        match self {
            BackendKind::Native => super::native_availability(),
            BackendKind::Buildah => super::buildah::probe(),
            BackendKind::Remote => match REMOTE.get() {
                Some(remote) => remote.availability(),
                None => Err(remote_missing()),
            },
            BackendKind::Hcs => Err(hcs_missing()),
        }
    }

    /// The backend itself, building into `store` and reaching registries
    /// with `registry`; `snapshotter` forces the native backend's RUN
    /// snapshotter. A backend kiln does not implement is a
    /// [`BuildError::NotSupported`] saying what is missing.
    pub fn open(
        self,
        store: Store,
        registry: ClientOptions,
        snapshotter: Option<kiln_snapshot::DriverKind>,
    ) -> Result<Box<dyn BuildBackend>, BuildError> {
        match self {
            BackendKind::Native => Ok(Box::new(
                NativeBackend::new(store, registry).with_snapshotter(snapshotter),
            )),
            BackendKind::Buildah => Ok(Box::new(BuildahBackend::new(store, registry))),
            BackendKind::Remote => match REMOTE.get() {
                Some(remote) => remote.open(store),
                None => Err(refusal(self, &remote_missing())),
            },
            BackendKind::Hcs => Err(refusal(self, &hcs_missing())),
        }
    }

    /// [`BackendKind::not_implemented`] as the error a build ends with, so
    /// a caller can refuse before it opens a store.
    pub fn ensure_implemented(self) -> Result<(), BuildError> {
        match self.not_implemented() {
            None => Ok(()),
            Some(why) => Err(refusal(self, &why)),
        }
    }
}

fn remote_missing() -> Unavailable {
    Unavailable::new(
        "no kiln daemon is configured: give --remote unix:///PATH or tcp://HOST:PORT \
         (or KILN_REMOTE), with --remote-ca, --remote-cert and --remote-key for TCP; \
         a daemon is started with `kiln serve`",
    )
}

fn hcs_missing() -> Unavailable {
    Unavailable::new(if cfg!(windows) {
        "kiln does not implement the HCS backend yet; \
         Windows images without RUN build with --backend native"
    } else {
        "HCS needs a Windows host, and kiln does not implement it yet; \
         Windows images without RUN build here with --backend native"
    })
}

fn refusal(kind: BackendKind, why: &Unavailable) -> BuildError {
    BuildError::NotSupported(format!("NotSupported: backend {kind}: {why}"))
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a backend cannot run on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable {
    reason: String,
}

impl Unavailable {
    /// A reason, written for the user (`buildah not found in PATH`).
    pub fn new(reason: impl Into<String>) -> Unavailable {
        Unavailable {
            reason: reason.into(),
        }
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Unavailable {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_over_environment_over_default() {
        assert_eq!(
            BackendKind::select(Some("buildah"), Some("native")),
            Ok(BackendKind::Buildah)
        );
        assert_eq!(
            BackendKind::select(None, Some("buildah")),
            Ok(BackendKind::Buildah)
        );
        assert_eq!(BackendKind::select(None, None), Ok(BackendKind::Native));
        assert!(BackendKind::select(None, Some("docker"))
            .unwrap_err()
            .starts_with("KILN_BACKEND: unknown backend \"docker\""));
    }

    #[test]
    fn unimplemented_backends_say_what_is_missing() {
        let remote = BackendKind::Remote
            .ensure_implemented()
            .unwrap_err()
            .to_string();
        assert!(remote.contains("no kiln daemon is configured"), "{remote}");
        assert!(BackendKind::Remote.availability().is_err());
        let hcs = BackendKind::Hcs
            .ensure_implemented()
            .unwrap_err()
            .to_string();
        assert!(hcs.contains("HCS needs a Windows host"), "{hcs}");
        assert!(BackendKind::Native.not_implemented().is_none());
    }
}
