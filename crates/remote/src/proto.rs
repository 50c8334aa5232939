//! The wire protocol: the JSON bodies of every endpoint and the lines of a
//! build's event stream. `docs/remote.md` describes the same schema for
//! other clients; keep the two together.
//!
//! Every message is plain serde data, so the protocol does not change
//! when an engine type gains a field: the conversions to and from the
//! engine's types live here and say what the remote path leaves out.

use kiln_backend::events::BuildEvent;
use kiln_store::Descriptor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component, Path};

/// The protocol version in every path (`/v1/...`); a daemon answers 404
/// to a version it does not speak.
pub const API_VERSION: &str = "v1";

/// `GET /v1/info`: what the daemon is and what it builds with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// The daemon's kiln version.
    pub version: String,
    /// The backend the daemon builds with (`native`).
    pub backend: String,
    /// What that backend runs with (`runc 1.1.5, overlayfs`), or why it
    /// cannot run on the daemon's host.
    pub detail: String,
    /// Whether the backend can run there.
    pub available: bool,
}

/// What a context entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file; its bytes are the blob named by `digest`.
    File,
    /// A symbolic link to `target`.
    Symlink,
}

/// One entry of a build context, as the client found it after
/// `.dockerignore`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextEntry {
    /// The path below the context root, `/`-separated, relative, with no
    /// `.` or `..` component ([`check_path`] is the rule).
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// A file's size in bytes; 0 otherwise.
    #[serde(default)]
    pub size: u64,
    /// A file's content digest (`sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// A symlink's target, as written (it may point anywhere: the engine
    /// reads the context without following links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// `POST /v1/blobs/missing` request: the digests a build's context needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingRequest {
    /// `sha256:…` digests.
    pub digests: Vec<String>,
}

/// `POST /v1/blobs/missing` answer: those the daemon's context cache lacks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingResponse {
    /// The digests to upload with `PUT /v1/blobs/{digest}`.
    pub missing: Vec<String>,
}

/// `POST /v1/context-paths` answer: what of its context the build in the
/// request reads, as the daemon's backend plans it (with its base images'
/// ONBUILD triggers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextPathsResponse {
    /// Paths relative to the context, each a file or a directory with
    /// everything under it; `None`: the whole context.
    pub paths: Option<Vec<String>>,
}

/// `PUT /v1/blobs/{digest}` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobStored {
    /// The digest, checked against the bytes received.
    pub digest: String,
    /// Bytes received.
    pub size: u64,
}

/// Every error answer's body (with a 4xx or 5xx status).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What kind of error ([`ErrorKind`]).
    pub kind: ErrorKind,
    /// The message, written for the user.
    pub message: String,
}

/// The kinds of error the daemon answers, and a build's stream ends with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is malformed or refused (a path escaping the context,
    /// a blob the cache lacks, a digest that does not match).
    BadRequest,
    /// The build asks for something the daemon's backend cannot do.
    NotSupported,
    /// The Dockerfile is wrong or a step failed; the message says where.
    Dockerfile,
    /// The build was interrupted (the client went away or cancelled).
    Interrupted,
    /// Anything else the build failed with (the store, a registry).
    Failed,
    /// No such endpoint or result.
    NotFound,
}

/// The shared annotations of `--annotation`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotations {
    /// `manifest:` annotations.
    #[serde(default)]
    pub manifest: BTreeMap<String, String>,
    /// `index:` annotations.
    #[serde(default)]
    pub index: BTreeMap<String, String>,
    /// `manifest-descriptor:` annotations.
    #[serde(default)]
    pub manifest_descriptor: BTreeMap<String, String>,
    /// `index-descriptor:` annotations.
    #[serde(default)]
    pub index_descriptor: BTreeMap<String, String>,
}

/// `POST /v1/builds` request: a build, its context given as a manifest
/// whose blobs the daemon already has.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSpec {
    /// The Dockerfile's name, for errors (`Dockerfile`).
    pub dockerfile_name: String,
    /// The Dockerfile's bytes, base64 (standard alphabet, padded).
    pub dockerfile: String,
    /// The context's entries; `None` for a build without a context.
    #[serde(default)]
    pub context: Option<Vec<ContextEntry>>,
    /// `--build-arg`s.
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    #[serde(default)]
    pub target: Option<String>,
    /// `--platform` of a single-platform build (`linux/amd64`).
    #[serde(default)]
    pub platform: Option<String>,
    /// `--platform a,b`: two or more.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// `-t` names.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `--label`s.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `--no-cache`.
    #[serde(default)]
    pub no_cache: bool,
    /// `--no-cache-filter`.
    #[serde(default)]
    pub no_cache_filter: Vec<String>,
    /// `--pull`: `missing`, `always`, `newer` or `never`.
    #[serde(default)]
    pub pull: Option<String>,
    /// `--squash`.
    #[serde(default)]
    pub squash: bool,
    /// `--build-context name=docker-image://REF`: names and references.
    #[serde(default)]
    pub image_contexts: BTreeMap<String, String>,
    /// `--push`: the daemon pushes the image to its tags' registries.
    #[serde(default)]
    pub push: bool,
    /// The client wants the image back as an OCI archive
    /// (`GET /v1/results/{id}`).
    #[serde(default)]
    pub export: bool,
    /// Layer compression: `gzip:LEVEL`, `zstd:LEVEL` or `uncompressed`.
    #[serde(default)]
    pub compression: Option<String>,
    /// `--format docker`.
    #[serde(default)]
    pub docker_media_types: bool,
    /// `SOURCE_DATE_EPOCH`.
    #[serde(default)]
    pub source_date_epoch: Option<i64>,
    /// `--secret`s by id, their bytes base64.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// `--runtime`.
    #[serde(default)]
    pub runtime: Option<String>,
    /// `--allow network.host`.
    #[serde(default)]
    pub allow_network_host: bool,
    /// `--annotation`s.
    #[serde(default)]
    pub annotations: Annotations,
}

/// One line of a build's event stream (`POST /v1/builds`' answer, one
/// JSON object per line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum Frame {
    /// The first line: the context is in place and the build starts.
    Accepted {
        /// The build's id, in the daemon's log.
        build: String,
        /// Context entries materialised.
        entries: usize,
    },
    /// A build event.
    Event {
        /// The event.
        event: BuildEvent,
    },
    /// The last line of a build that succeeded.
    Done {
        /// What was built (boxed: it dwarfs the other frames).
        image: Box<WireImage>,
        /// With `export`, the id to fetch the OCI archive with
        /// (`GET /v1/results/{id}`).
        #[serde(default)]
        result: Option<String>,
    },
    /// The last line of a build that failed.
    Error {
        /// Why.
        error: ErrorBody,
    },
}

/// What a build produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireImage {
    /// The image manifest's descriptor.
    pub manifest: Descriptor,
    /// The config's descriptor.
    pub config: Descriptor,
    /// The names it was given.
    pub tags: Vec<String>,
    /// Number of layers.
    pub layers: usize,
    /// Config and layers, compressed, in bytes.
    pub size: u64,
    /// How long the build took on the daemon, in milliseconds.
    pub build_time_ms: u64,
    /// True for a multi-platform index.
    pub is_index: bool,
}

impl Eq for WireImage {}

/// Checks a context path: relative, `/`-separated, no empty, `.` or `..`
/// component, no NUL. The daemon materialises entries below a directory
/// of its own, so a path that could leave it is refused outright rather
/// than cleaned: a client sending one is broken or hostile.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("a context path is empty".into());
    }
    if path.contains('\0') {
        return Err(format!("the context path {path:?} contains a NUL byte"));
    }
    if path.starts_with('/') {
        return Err(format!(
            "the context path {path:?} is absolute; paths are relative to the context root"
        ));
    }
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(format!(
                "the context path {path:?} escapes or is not clean below the context root \
                 (empty, `.` or `..` component)"
            ));
        }
    }
    // Belt and braces: the platform's own parse must agree.
    if Path::new(path)
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(format!(
            "the context path {path:?} escapes the context root"
        ));
    }
    Ok(())
}

/// Checks a `sha256:` digest's text: 64 lowercase hex digits, so it can
/// name a file in the daemon's cache.
pub fn check_digest(digest: &str) -> Result<&str, String> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(hex)
        }
        _ => Err(format!(
            "{digest:?} is not a sha256 digest (sha256: and 64 lowercase hex digits)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_paths_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/.",
            "a\0b",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "a/b.txt", ".dockerignore", "a/..b", "..."] {
            assert!(check_path(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn events_round_trip_through_json() {
        let event = BuildEvent::Platform {
            platform: "linux/arm64".into(),
            event: Box::new(BuildEvent::Output {
                stage: 1,
                index: 2,
                line: "hi".into(),
            }),
        };
        let json = serde_json::to_string(&Frame::Event {
            event: event.clone(),
        })
        .unwrap();
        let Frame::Event { event: back } = serde_json::from_str(&json).unwrap() else {
            panic!("{json}");
        };
        assert_eq!(back, event);
    }

    #[test]
    fn digests_must_be_sha256_hex() {
        assert!(check_digest(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(check_digest("sha256:../../etc").is_err());
        assert!(check_digest(&format!("sha256:{}", "A".repeat(64))).is_err());
    }
}
