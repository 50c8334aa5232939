//! Image references (`registry/repository:tag@digest`) with docker's normalisation.
//!
//! `busybox` means `docker.io/library/busybox:latest`; `localhost:5000/a/b:t`
//! names a local registry; `x@sha256:…` pins a digest. The first path
//! component is a registry when it contains `.` or `:` or is `localhost`.

use crate::Digest;
use std::fmt;
use std::str::FromStr;

/// The registry a name without one belongs to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag a name without a tag or digest gets.
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host, with port if any: `docker.io`, `localhost:5000`.
    pub registry: String,
    /// Repository path inside the registry: `library/busybox`.
    pub repository: String,
    /// Tag, if any; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// Pinned manifest digest, if any.
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ParseReferenceError {
    input: String,
    reason: String,
}

impl Reference {
    /// Parses and normalises `s` (same as `s.parse()`).
    pub fn parse(s: &str) -> Result<Reference, ParseReferenceError> {
        s.parse()
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The repository as docker shows it: `busybox` for
    /// `docker.io/library/busybox`, `user/app` for `docker.io/user/app`,
    /// and the full name for other registries.
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            match self.repository.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The short form for display: `busybox:latest`, `user/app:v1`,
    /// `localhost:5000/a/b:t`.
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        self.push_suffix(&mut out);
        out
    }

    /// A copy with `tag` replaced and no digest: the name of a tag in the
    /// same repository.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ParseReferenceError> {
        validate_tag(tag).map_err(|reason| ParseReferenceError {
            input: tag.to_string(),
            reason,
        })?;
        Ok(Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    fn push_suffix(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(&digest.to_string());
        }
    }
}

/// A name written without a registry (`busybox`, `user/app:1`), split
/// into the name and what follows it (`:1`, `@sha256:…`, or nothing):
/// what `registries.conf`'s aliases and `unqualified-search-registries`
/// resolve. `None` for a name that names its registry.
pub fn short_name(written: &str) -> Option<(&str, &str)> {
    let first = written.split('/').next().unwrap_or_default();
    if written.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        return None;
    }
    // No registry, so no port: the first ':' or '@' ends the name.
    let end = written.find([':', '@']).unwrap_or(written.len());
    Some(written.split_at(end))
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        self.push_suffix(&mut out);
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = ParseReferenceError;

    fn from_str(s: &str) -> Result<Reference, ParseReferenceError> {
        parse(s).map_err(|reason| ParseReferenceError {
            input: s.to_string(),
            reason,
        })
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Reference, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn parse(s: &str) -> Result<Reference, String> {
    if s.is_empty() {
        return Err("the reference is empty".into());
    }
    let (rest, digest) = match s.split_once('@') {
        Some((rest, d)) => {
            let digest = d.parse::<Digest>().map_err(|e| e.to_string())?;
            (rest, Some(digest))
        }
        None => (s, None),
    };
    // A ':' after the last '/' starts the tag; one before it is a registry port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        validate_tag(tag)?;
    }
    let (registry, repository) = split_registry(name);
    validate_registry(&registry)?;
    validate_repository(&repository)?;
    if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
        return Err(format!("the name is longer than {MAX_NAME_LEN} characters"));
    }
    let tag = match (tag, &digest) {
        (Some(t), _) => Some(t.to_string()),
        (None, None) => Some(DEFAULT_TAG.to_string()),
        (None, Some(_)) => None,
    };
    Ok(Reference {
        registry,
        repository,
        tag,
        digest,
    })
}

fn split_registry(name: &str) -> (String, String) {
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
    };
    let registry = if registry == "index.docker.io" {
        DEFAULT_REGISTRY.to_string()
    } else {
        registry
    };
    let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    (registry, repository)
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let ok_first = tag
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let ok_rest = tag
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok_first || !ok_rest || tag.len() > MAX_TAG_LEN {
        return Err(format!(
            "tag {tag:?} must be 1 to {MAX_TAG_LEN} characters of letters, digits, '_', '.' and '-', \
             not starting with '.' or '-'"
        ));
    }
    Ok(())
}

fn validate_registry(registry: &str) -> Result<(), String> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("registry port {port:?} must be a number"));
        }
    }
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !host_ok {
        return Err(format!("registry host {host:?} is not a valid host name"));
    }
    Ok(())
}

fn validate_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("the repository name is empty".into());
    }
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("repository name {repository:?} must be lowercase"));
    }
    for component in repository.split('/') {
        if !valid_path_component(component) {
            return Err(format!(
                "repository path component {component:?} must be lowercase letters and digits, \
                 separated by '.', '_', '__' or dashes"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, as in the distribution spec.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(norm("index.docker.io/user/app:v1"), "docker.io/user/app:v1");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("localhost:5000/a/b:t"), "localhost:5000/a/b:t");
        assert_eq!(norm("ghcr.io/o/r/x:1.0-rc"), "ghcr.io/o/r/x:1.0-rc");
        let d = Digest::of(b"m");
        assert_eq!(norm(&format!("x@{d}")), format!("docker.io/library/x@{d}"));
        assert_eq!(
            norm(&format!("quay.io/x:v@{d}")),
            format!("quay.io/x:v@{d}")
        );
    }

    #[test]
    fn short_names_are_those_without_a_registry() {
        let d = Digest::of(b"m");
        let pinned = format!("app@{d}");
        assert_eq!(short_name("busybox"), Some(("busybox", "")));
        assert_eq!(short_name("user/app:1"), Some(("user/app", ":1")));
        assert_eq!(short_name(&pinned), Some(("app", &pinned[3..])));
        // `localhost` alone is a repository, as docker reads it.
        assert_eq!(short_name("localhost:1"), Some(("localhost", ":1")));
        for qualified in [
            "localhost/app",
            "quay.io/x",
            "h:5000/a:b",
            "docker.io/busybox",
        ] {
            assert_eq!(short_name(qualified), None, "{qualified}");
        }
    }

    #[test]
    fn fields_and_familiar_forms() {
        let r = Reference::parse("localhost:5000/a/b:t").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.tag.as_deref(), Some("t"));
        assert_eq!(r.digest, None);
        assert_eq!(r.familiar(), "localhost:5000/a/b:t");
        assert_eq!(
            Reference::parse("busybox").unwrap().familiar(),
            "busybox:latest"
        );
        assert_eq!(
            Reference::parse("user/app:v1").unwrap().familiar(),
            "user/app:v1"
        );
        assert_eq!(
            Reference::parse("busybox")
                .unwrap()
                .with_tag("v2")
                .unwrap()
                .to_string(),
            "docker.io/library/busybox:v2"
        );
    }

    #[test]
    fn rejects_bad_references_with_reasons() {
        let err = |s: &str| Reference::parse(s).unwrap_err().to_string();
        assert_eq!(
            err(""),
            "invalid image reference \"\": the reference is empty"
        );
        assert_eq!(
            err("BusyBox"),
            "invalid image reference \"BusyBox\": repository name \"library/BusyBox\" must be lowercase"
        );
        assert!(err("busybox:-x").contains("tag \"-x\" must be"));
        assert!(err("a//b").contains("path component \"\""));
        assert!(err("x@sha256:abc").contains("expected 64 lowercase hex digits"));
        assert!(err("localhost:port/x").contains("registry port \"port\" must be a number"));
        assert!(err("a..b/x").contains("registry host"));
        assert!(err("a/b_-c").contains("path component \"b_-c\""));
    }

    #[test]
    fn serde_round_trips() {
        let r = Reference::parse("busybox").unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"docker.io/library/busybox:latest\"");
        assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
    }
}
