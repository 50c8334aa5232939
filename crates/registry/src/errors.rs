//! The registry client's errors: each names the registry, the repository
//! and the reference it was working on, says what went wrong, and what to do.

use kiln_oci::Digest;
use std::fmt;

/// What kiln was doing and where, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Registry host (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// Repository inside it (`library/busybox`); empty for registry-wide
    /// operations such as login.
    pub repository: String,
    /// Tag or digest (`latest`, `sha256:…`); empty when not about one image.
    pub reference: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.repository.is_empty(), self.reference.is_empty()) {
            (true, _) => write!(f, "registry {}", self.registry),
            (false, true) => write!(f, "{}/{}", self.registry, self.repository),
            (false, false) if self.reference.starts_with("sha256:") => {
                write!(
                    f,
                    "{}/{}@{}",
                    self.registry, self.repository, self.reference
                )
            }
            (false, false) => write!(
                f,
                "{}/{}:{}",
                self.registry, self.repository, self.reference
            ),
        }
    }
}

/// A registry operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("{action} {target}: {kind}")]
pub struct Error {
    /// What kiln was doing: "pulling", "pushing", "logging in to".
    pub action: &'static str,
    /// The registry, repository and reference involved.
    pub target: Box<Target>,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// What went wrong; the text of each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// 401: no or wrong credentials.
    #[error(
        "the registry asks for credentials (401 Unauthorized{detail}); run `kiln login {registry}` \
         or check the credentials in your docker config or auth.json"
    )]
    Unauthorized {
        /// The registry host, for the hint.
        registry: String,
        /// The registry's own explanation, formatted as `: …`, or empty.
        detail: String,
    },
    /// 403: the credentials do not allow this.
    #[error(
        "access denied (403 Forbidden{detail}); the account you are logged in with may not \
         read or write this repository"
    )]
    Forbidden {
        /// The registry's own explanation, formatted as `: …`, or empty.
        detail: String,
    },
    /// 404 on a manifest or blob.
    #[error("{what} not found (404){detail}; check the name and tag, or that it was pushed")]
    NotFound {
        /// What was missing: "manifest", "blob sha256:…".
        what: String,
        /// The registry's own explanation, formatted as `: …`, or empty.
        detail: String,
    },
    /// 429, after the retries ran out.
    #[error("the registry is rate limiting requests (429 Too Many Requests) and kept doing so after {attempts} attempts; wait and try again, or log in for a higher limit")]
    TooManyRequests {
        /// How many attempts were made.
        attempts: u32,
    },
    /// 5xx, after the retries ran out.
    #[error("the registry failed with {status} after {attempts} attempts{detail}; it may be overloaded or down, try again later")]
    Server {
        /// The HTTP status.
        status: u16,
        /// How many attempts were made.
        attempts: u32,
        /// The registry's own explanation, formatted as `: …`, or empty.
        detail: String,
    },
    /// Another unexpected HTTP status.
    #[error("unexpected response {status} to {request}{detail}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The full URL requested.
        request: String,
        /// The registry's own explanation, formatted as `: …`, or empty.
        detail: String,
    },
    /// The request timed out, after the retries ran out.
    #[error("the registry did not answer within {limit:?} ({attempts} attempts); check that it is up and the network, or allow longer with `--timeout SECONDS`")]
    Timeout {
        /// How many attempts were made.
        attempts: u32,
        /// How long each attempt could stall ([`crate::ClientOptions::timeout`]).
        limit: std::time::Duration,
    },
    /// The connection failed, after the retries ran out.
    #[error("cannot reach the registry at {url} after {attempts} attempts ({message}); check that it is running and the address is right")]
    Connect {
        /// The URL being requested.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The underlying error.
        message: String,
    },
    /// Nothing listens at the address, or its name does not resolve: an
    /// answer that does not change in the seconds retries would wait, so
    /// it is not retried.
    #[error("cannot reach the registry at {url}: {why} ({message}); check that it is running and the address is right")]
    Unreachable {
        /// The URL being requested.
        url: String,
        /// `the connection was refused` or `its host name does not resolve`.
        why: &'static str,
        /// The underlying error.
        message: String,
    },
    /// The connection broke after it was made, before the answer came,
    /// after the retries ran out.
    #[error("the connection to {url} broke before an answer came, {attempts} {} ({message}); the registry or something between it and kiln is closing connections; try again later",
        if *.attempts == 1 { "time" } else { "times" })]
    Dropped {
        /// The full URL being requested.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The underlying error.
        message: String,
    },
    /// The TLS handshake failed.
    #[error("TLS failed talking to {url} ({message}); if the registry uses a private CA pass `--ca-cert FILE` or put it in /etc/containers/certs.d/{host}/ca.crt, or if it is trusted but has no valid certificate use `--tls-verify=false` or `--insecure-registry {host}`")]
    Tls {
        /// The URL being requested.
        url: String,
        /// The registry host, for the hint.
        host: String,
        /// The underlying error.
        message: String,
    },
    /// Content did not hash to its digest.
    #[error("{what} has digest {actual}, but {expected} was expected; the registry or something between it and kiln served corrupt data, nothing was stored")]
    DigestMismatch {
        /// What was being checked.
        what: String,
        /// The digest it should have had.
        expected: Digest,
        /// The digest it had.
        actual: Digest,
    },
    /// A blob's length is not the size its descriptor gives.
    #[error("{what} at {url} is {actual} bytes, but {declared_by} gives its size as {expected}; the registry holds other bytes under that digest, or something between it and kiln altered them; nothing was stored")]
    SizeMismatch {
        /// What was being fetched: "blob sha256:…".
        what: String,
        /// What gives the size: "the manifest" for a blob, "the index"
        /// for a platform's manifest.
        declared_by: &'static str,
        /// The full URL it was fetched from.
        url: String,
        /// The size the descriptor gives.
        expected: u64,
        /// The size the registry has: `812`, `more than 1024`, `at most 50000`.
        actual: String,
    },
    /// A registry stated a digest (`Docker-Content-Digest`) other than the
    /// one of the content sent or received.
    #[error("the registry states (Docker-Content-Digest) that {what} is {stated}, but it is {actual}; the registry or something between it and kiln is not handling the content faithfully, so kiln stops here; nothing is stored or tagged from that answer, find out what the registry or a proxy in front of it does wrong")]
    StatedDigestMismatch {
        /// What it is about, with the full URL of the request answered:
        /// "the manifest at https://…".
        what: String,
        /// The header's value.
        stated: String,
        /// The digest kiln computed or asked for.
        actual: Digest,
    },
    /// A body's connection broke part way every time, after the retries ran out.
    #[error("the connection to {url} broke {attempts} {}, the last after {received}{} bytes ({message}); the registry or something between it and kiln is closing connections; try again later",
        if *.attempts == 1 { "time" } else { "times" },
        .expected.map_or_else(String::new, |e| format!(" of {e}")))]
    Interrupted {
        /// The full URL being read.
        url: String,
        /// How many attempts were cut.
        attempts: u32,
        /// Bytes received when the last one broke.
        received: u64,
        /// Bytes expected in all, when known.
        expected: Option<u64>,
        /// The underlying error.
        message: String,
    },
    /// A body stopped arriving for longer than the stall timeout
    /// ([`crate::ClientOptions::timeout`]), after the retries ran out.
    #[error("{url} sent nothing for {limit:?} after {received} bytes ({attempts} {}); the registry or the network is stuck; check them, or allow longer pauses with `--timeout SECONDS`",
        if *.attempts == 1 { "attempt" } else { "attempts" })]
    Stalled {
        /// The full URL being read.
        url: String,
        /// How many attempts stalled.
        attempts: u32,
        /// Bytes received when the last one stalled.
        received: u64,
        /// How long a pause is tolerated.
        limit: std::time::Duration,
    },
    /// A manifest, index or token response that is not what the spec says.
    #[error("{0}")]
    Invalid(String),
    /// No manifest in an index matches the wanted platform.
    #[error("no image for platform {wanted} in the index; it has {available}; pass `--platform` with one of those")]
    NoMatchingPlatform {
        /// The platform asked for.
        wanted: String,
        /// The platforms the index offers.
        available: String,
    },
    /// Reading or writing credentials failed.
    #[error("{0}")]
    Credentials(String),
    /// Where pulled content goes, or pushed content comes from, failed.
    #[error(transparent)]
    Content(#[from] kiln_oci::content::ContentError),
    /// A local file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What kiln was doing.
        action: &'static str,
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// kiln does not do this.
    #[error("{0}")]
    NotSupported(String),
    /// No registry a short name resolves to has the image; says what each
    /// answered.
    #[error("{0}")]
    ShortName(String),
    /// `registries.conf` blocks the reference.
    #[error(transparent)]
    Blocked(#[from] crate::registries::Blocked),
    /// A foreign layer came from nowhere kiln tried.
    #[error("foreign layer {digest} could not be fetched from anywhere kiln tried: {}; check that one of its URLs is reachable from here (kiln fetches foreign layers over https from public addresses only; `--insecure-registry HOST[:PORT]` allows plain http and private addresses for that host){}",
        .tried.join("; "),
        if *.keep_possible { ", or pass --keep-foreign-layers to pass the layer through without its bytes" } else { "" })]
    ForeignLayer {
        /// The layer.
        digest: Digest,
        /// Each place tried, with what went wrong there: `URL: why`.
        tried: Vec<String>,
        /// Whether the layer's bytes are wanted only to push or export
        /// them, so passing it through would do.
        keep_possible: bool,
    },
    /// A registry refused a manifest whose foreign layers kept their `urls`.
    #[error("the registry refused the manifest{detail}: its manifest URL validation refuses foreign layers, whose descriptors keep their `urls` with --keep-foreign-layers (a stock registry allows no URL at all); the registry's operator can allow them (`validation.manifests.urls.allow` in its configuration), or drop --keep-foreign-layers to push them as ordinary layers")]
    ForeignUrlsRefused {
        /// The registry's own explanation, formatted as `: …`.
        detail: String,
    },
}

/// An HTTP status worth retrying with backoff: 429 and the 5xx a busy or
/// restarting server answers.
pub(crate) fn is_transient_status(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

impl ErrorKind {
    /// The same failure, saying it came after `n` attempts.
    pub(crate) fn after_attempts(mut self, n: u32) -> ErrorKind {
        match &mut self {
            ErrorKind::TooManyRequests { attempts }
            | ErrorKind::Server { attempts, .. }
            | ErrorKind::Timeout { attempts, .. }
            | ErrorKind::Connect { attempts, .. }
            | ErrorKind::Dropped { attempts, .. } => *attempts = n,
            _ => {}
        }
        self
    }

    /// True for failures worth retrying with backoff.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(
            self,
            ErrorKind::TooManyRequests { .. }
                | ErrorKind::Server { .. }
                | ErrorKind::Timeout { .. }
                | ErrorKind::Connect { .. }
                | ErrorKind::Dropped { .. }
        )
    }
}

impl From<kiln_oci::ManifestError> for ErrorKind {
    fn from(e: kiln_oci::ManifestError) -> ErrorKind {
        ErrorKind::Invalid(e.to_string())
    }
}

/// Shorthand for results with the registry [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Formats a registry's error body (`{"errors":[{"code","message","detail"}]}`)
/// as `: CODE: message`, or empty when it has none.
pub(crate) fn detail_from_body(body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let parts: Vec<String> = value
        .get("errors")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
            (!code.is_empty() || !message.is_empty()).then(|| format!("{code}: {message}"))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_display_names_registry_repository_and_reference() {
        let t = |repo: &str, r: &str| Target {
            registry: "r.example:5000".into(),
            repository: repo.into(),
            reference: r.into(),
        };
        assert_eq!(t("a/b", "v1").to_string(), "r.example:5000/a/b:v1");
        let d = Digest::of(b"x").to_string();
        assert_eq!(t("a/b", &d).to_string(), format!("r.example:5000/a/b@{d}"));
        assert_eq!(t("", "").to_string(), "registry r.example:5000");
    }

    #[test]
    fn registry_error_bodies_become_details() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(
            detail_from_body(body),
            ": MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(detail_from_body(b"not json"), "");
    }
}
