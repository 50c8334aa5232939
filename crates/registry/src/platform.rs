//! Platforms (`os/arch[/variant]`, with `os.version` for Windows) and
//! choosing one manifest from an index.

use crate::manifest::IndexEntry;
use std::fmt;
use std::str::FromStr;

/// A platform to pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, `windows`.
    pub os: String,
    /// `amd64`, `arm64`, … (GOARCH names).
    pub architecture: String,
    /// `v8`, `v7`, … if any.
    pub variant: Option<String>,
    /// Windows build, e.g. `10.0.17763` or `10.0.17763.1234`; a shorter
    /// version matches any longer one it is a prefix of.
    pub os_version: Option<String>,
}

impl Platform {
    /// The platform of the machine kiln runs on.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
            os_version: None,
        }
    }

    /// True if an index entry's platform is this one.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && normal_variant(self) == normal_variant(other)
            && match (&self.os_version, &other.os_version) {
                (Some(want), Some(have)) => version_prefix(want, have),
                (Some(_), None) => false,
                (None, _) => true,
            }
    }

    /// The entry of `entries` to pull for this platform: among matches, the
    /// highest `os.version` (so `windows/amd64` gets the newest build).
    pub fn select<'a>(&self, entries: &'a [IndexEntry]) -> Option<&'a IndexEntry> {
        entries
            .iter()
            .filter(|e| e.platform.as_ref().is_some_and(|p| self.matches(p)))
            .max_by(|a, b| {
                let v = |e: &IndexEntry| {
                    version_key(e.platform.as_ref().and_then(|p| p.os_version.as_deref()))
                };
                v(a).cmp(&v(b))
            })
    }
}

/// arm64 means arm64/v8 and arm means arm/v7 when no variant is given.
fn normal_variant(p: &Platform) -> Option<&str> {
    match (p.architecture.as_str(), p.variant.as_deref()) {
        ("arm64", None) => Some("v8"),
        ("arm", None) => Some("v7"),
        (_, v) => v,
    }
}

fn version_prefix(want: &str, have: &str) -> bool {
    let (w, h): (Vec<&str>, Vec<&str>) = (want.split('.').collect(), have.split('.').collect());
    w.len() <= h.len() && w.iter().zip(&h).all(|(a, b)| a == b)
}

fn version_key(v: Option<&str>) -> Vec<u64> {
    v.unwrap_or("")
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.os)?;
        if let Some(v) = &self.os_version {
            write!(f, "({v})")?;
        }
        write!(f, "/{}", self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Why a `--platform` value is not a platform.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/arm64/v8, or windows(10.0.17763)/amd64 for a Windows build")]
pub struct ParsePlatformError(String);

impl FromStr for Platform {
    type Err = ParsePlatformError;

    /// `linux/amd64`, `linux/arm64/v8`, `windows(10.0.17763)/amd64`
    /// (containerd's syntax for `os.version`).
    fn from_str(s: &str) -> Result<Platform, ParsePlatformError> {
        let err = || ParsePlatformError(s.to_string());
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(err());
        }
        let (os, os_version) = match parts[0].split_once('(') {
            Some((os, rest)) => {
                let v = rest
                    .strip_suffix(')')
                    .filter(|v| !v.is_empty())
                    .ok_or_else(err)?;
                (os, Some(v.to_string()))
            }
            None => (parts[0], None),
        };
        let ok = |p: &str| {
            p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !ok(os) || !ok(parts[1]) || parts.get(2).is_some_and(|v| !ok(v)) {
            return Err(err());
        }
        Ok(Platform {
            os: os.to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
            os_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_displays() {
        assert_eq!(p("linux/arm64/v8").to_string(), "linux/arm64/v8");
        let w = p("windows(10.0.17763)/amd64");
        assert_eq!(w.os_version.as_deref(), Some("10.0.17763"));
        assert_eq!(w.to_string(), "windows(10.0.17763)/amd64");
        for bad in [
            "linux",
            "linux/",
            "a/b/c/d",
            "windows()/amd64",
            "lin ux/amd64",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn matching_normalises_variants_and_prefixes_versions() {
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
        assert!(!p("linux/arm/v6").matches(&p("linux/arm")));
        assert!(p("windows(10.0.17763)/amd64").matches(&p("windows(10.0.17763.1234)/amd64")));
        assert!(!p("windows(10.0.1776)/amd64").matches(&p("windows(10.0.17763.1234)/amd64")));
        assert!(p("windows/amd64").matches(&p("windows(10.0.20348.1)/amd64")));
    }
}
