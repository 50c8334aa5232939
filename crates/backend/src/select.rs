//! Which backend a build uses: the one asked for (`--backend`, else the
//! value of `KILN_BACKEND`, which the caller reads), else this host's
//! default. Backends kiln names but does not implement are refused here
//! with what is missing, so no caller ever holds a backend that pretends.

use crate::BuildError;
use std::fmt;

/// The backends kiln knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// Builds in this process (the `kiln-native` crate).
    Native,
    /// Drives the `buildah` command (the `kiln-buildah` crate).
    Buildah,
    /// A kiln daemon (`kiln serve`, the `kiln-remote` crate), where the
    /// caller has configured one.
    Remote,
    /// Windows' Host Compute Service, on a Windows host (`kiln_native::HcsBackend`;
    /// refused elsewhere).
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

    /// This host's default: hcs on Windows (the native pipeline, with RUN
    /// in Windows images through HCS; a build without RUN needs no HCS),
    /// native elsewhere (on Linux it builds everything kiln can).
    pub fn host_default() -> BackendKind {
        if cfg!(windows) {
            BackendKind::Hcs
        } else {
            BackendKind::Native
        }
    }

    /// The backend for a build: `explicit` (`--backend`), else `from_env`
    /// (the value of `KILN_BACKEND`, read by the caller), else `remote`
    /// when the caller has a kiln daemon configured (`daemon`: builds this
    /// host cannot run, another OS's RUN or another architecture's, go
    /// there), else [`BackendKind::host_default`]. The error names the flag
    /// or the variable that was wrong.
    pub fn select(
        explicit: Option<&str>,
        from_env: Option<&str>,
        daemon: bool,
    ) -> Result<BackendKind, String> {
        match (explicit, from_env) {
            (None, None) if daemon => Ok(BackendKind::Remote),
            (Some(name), _) => BackendKind::parse(name).map_err(|e| format!("--backend: {e}")),
            (None, Some(name)) => {
                BackendKind::parse(name).map_err(|e| format!("KILN_BACKEND: {e}"))
            }
            (None, None) => Ok(BackendKind::host_default()),
        }
    }

    /// For a backend kiln does not implement, or does not build for this
    /// host (hcs off Windows), why it cannot be used and where such a build
    /// can run; `None` for the ones a caller can open here.
    pub fn not_implemented(self) -> Option<Unavailable> {
        match self {
            BackendKind::Native | BackendKind::Buildah | BackendKind::Remote => None,
            BackendKind::Hcs if cfg!(windows) => None,
            BackendKind::Hcs => Some(hcs_missing()),
        }
    }

    /// [`BackendKind::not_implemented`] as the error a build ends with, so
    /// a caller can refuse before it opens a store.
    pub fn ensure_implemented(self) -> Result<(), BuildError> {
        match self.not_implemented() {
            None => Ok(()),
            Some(why) => Err(self.refuse(&why)),
        }
    }
}

fn hcs_missing() -> Unavailable {
    Unavailable::new(format!(
        "HCS needs a Windows host, and this one is {}; Windows images without RUN \
         build here with --backend native (kiln's HCS backend is tested on Linux \
         only, against a fake host)",
        std::env::consts::OS
    ))
}

impl BackendKind {
    /// The error a build on this backend ends with when it cannot run
    /// here, for `why`.
    pub fn refuse(self, why: &Unavailable) -> BuildError {
        BuildError::NotSupported(format!("NotSupported: backend {self}: {why}"))
    }
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
            BackendKind::select(Some("buildah"), Some("native"), true),
            Ok(BackendKind::Buildah)
        );
        assert_eq!(
            BackendKind::select(None, Some("buildah"), true),
            Ok(BackendKind::Buildah)
        );
        assert_eq!(
            BackendKind::select(None, None, false),
            Ok(BackendKind::Native)
        );
        // A configured daemon is the default, below the flag and variable.
        assert_eq!(
            BackendKind::select(None, None, true),
            Ok(BackendKind::Remote)
        );
        assert!(BackendKind::select(None, Some("docker"), false)
            .unwrap_err()
            .starts_with("KILN_BACKEND: unknown backend \"docker\""));
    }

    #[test]
    fn unimplemented_backends_say_what_is_missing() {
        assert!(BackendKind::Remote.not_implemented().is_none());
        let hcs = BackendKind::Hcs
            .ensure_implemented()
            .unwrap_err()
            .to_string();
        assert!(hcs.contains("HCS needs a Windows host"), "{hcs}");
        assert!(BackendKind::Native.not_implemented().is_none());
    }
}
