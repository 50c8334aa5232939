//! Platforms: the one type for `--platform`, image configs and index
//! entries, parsed and normalised as containerd's `platforms` package does,
//! with Windows' `os.version` compared numerically.

use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// An OS, architecture, optional variant and, for Windows, the OS build.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// `amd64`, `arm64`, `arm`, `386`, … (GOARCH names).
    pub architecture: String,
    /// `v7`, `v6`, …; `None` when there is none after normalising
    /// (`arm64/v8` is `arm64`).
    pub variant: Option<String>,
    /// The OS build (`10.0.20348.2340`), which a Windows image must match
    /// the host's; `None` for Linux, or for "any build".
    pub os_version: Option<String>,
    /// Required OS features (`win32k`).
    pub os_features: Vec<String>,
}

/// The OS family of an image, where kiln's behaviour differs (default
/// shell, paths, layer format, which steps can run here).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImageOs {
    /// Linux.
    Linux,
    /// Windows.
    Windows,
    /// Any other `os` value, kept as written.
    Other(String),
}

impl ImageOs {
    /// The OCI `os` value.
    pub fn as_str(&self) -> &str {
        match self {
            ImageOs::Linux => "linux",
            ImageOs::Windows => "windows",
            ImageOs::Other(s) => s,
        }
    }
}

impl FromStr for ImageOs {
    type Err = std::convert::Infallible;

    /// `linux`, `Windows`, or the OS of a platform such as `windows/amd64`.
    fn from_str(s: &str) -> Result<ImageOs, Self::Err> {
        let os = s.split(['/', '(', ':']).next().unwrap_or_default();
        Ok(match os.to_ascii_lowercase().as_str() {
            "linux" => ImageOs::Linux,
            "windows" => ImageOs::Windows,
            other => ImageOs::Other(other.to_string()),
        })
    }
}

impl fmt::Display for ImageOs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {input:?}: {reason}")]
pub struct PlatformError {
    input: String,
    reason: &'static str,
}

const KNOWN_OS: [&str; 12] = [
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "windows",
];

impl Platform {
    /// A platform with no variant or OS build.
    pub fn new(os: &str, architecture: &str) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: None,
            os_version: None,
            os_features: Vec::new(),
        }
    }

    /// Parses `os[/arch[/variant]]` or a lone architecture, normalising
    /// aliases (`x86_64` → `amd64`, `aarch64` → `arm64`, `arm64/v8` →
    /// `arm64`, `arm` → `arm/v7`). A Windows build may follow as
    /// `windows/amd64:10.0.20348.2340` or, as containerd writes it,
    /// `windows(10.0.20348.2340)/amd64`.
    pub fn parse(text: &str) -> Result<Platform, PlatformError> {
        let bad = |reason| PlatformError {
            input: text.to_string(),
            reason,
        };
        let (rest, mut os_version) = match text.split_once(':') {
            Some((p, v)) => (p, Some(v.to_string())),
            None => (text, None),
        };
        let mut parts: Vec<String> = rest.split('/').map(str::to_string).collect();
        if let Some((os, v)) = parts[0].clone().split_once('(') {
            let v = v.strip_suffix(')').ok_or(bad(
                "an OS build in parentheses must be closed: windows(10.0.20348)/amd64",
            ))?;
            if os_version.is_some() {
                return Err(bad("the OS build is given twice"));
            }
            os_version = Some(v.to_string());
            parts[0] = os.to_string();
        }
        if let Some(v) = &os_version {
            if v.is_empty()
                || !v
                    .split('.')
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(bad(
                    "an OS build is numbers separated by dots, like 10.0.20348.2340",
                ));
            }
        }
        if parts.iter().any(String::is_empty) || parts.len() > 3 {
            return Err(bad("expected os/arch[/variant], like linux/amd64"));
        }
        if !parts.iter().all(|p| {
            p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        }) {
            return Err(bad("it may only contain letters, digits, '_', '-' and '.'"));
        }
        let host = Platform::host();
        let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        let (os, arch, variant) = match lower.as_slice() {
            [one] if KNOWN_OS.contains(&one.as_str()) => {
                if *one == host.os {
                    (one.clone(), host.architecture.clone(), host.variant.clone())
                } else {
                    (one.clone(), "amd64".to_string(), None)
                }
            }
            [one] => {
                let (arch, _) = normalize_arch(one, "");
                if !known_arch(&arch) {
                    return Err(bad("unknown operating system or architecture"));
                }
                ("linux".to_string(), one.clone(), None)
            }
            [os, arch] => (os.clone(), arch.clone(), None),
            [os, arch, variant] => (os.clone(), arch.clone(), Some(variant.clone())),
            _ => return Err(bad("expected os/arch[/variant], like linux/amd64")),
        };
        let os = if os == "macos" { "darwin".into() } else { os };
        if os_version.is_some() && os != "windows" {
            return Err(bad("only Windows platforms have an OS build"));
        }
        let (architecture, variant) = normalize_arch(&arch, variant.as_deref().unwrap_or(""));
        Ok(Platform {
            os,
            architecture,
            variant: (!variant.is_empty()).then_some(variant),
            os_version,
            os_features: Vec::new(),
        })
    }

    /// The platform kiln runs on: the default build and target platform.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Platform {
            variant: variant.map(str::to_string),
            ..Platform::new(std::env::consts::OS, architecture)
        }
    }

    /// The OS family.
    pub fn image_os(&self) -> ImageOs {
        self.os.parse().unwrap_or(ImageOs::Other(self.os.clone()))
    }

    /// `os/arch[/variant]`, without the OS build: the form BuildKit shows
    /// and `TARGETPLATFORM` holds.
    pub fn short(&self) -> String {
        let mut s = format!("{}/{}", self.os, self.architecture);
        if let Some(v) = &self.variant {
            s.push('/');
            s.push_str(v);
        }
        s
    }

    /// True when an image for `candidate` serves a request for `self`: the
    /// same OS and architecture, the same variant once normalised
    /// (`arm64` is `arm64/v8`), and, when `self` names an OS build, a
    /// candidate build that equals it or extends it (`10.0.20348` takes
    /// `10.0.20348.2340`).
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.os == candidate.os
            && self.architecture == candidate.architecture
            && normal_variant(self) == normal_variant(candidate)
            && match (&self.os_version, &candidate.os_version) {
                (Some(want), Some(have)) => version_extends(have, want),
                (Some(_), None) => false,
                (None, _) => true,
            }
    }

    /// The platform of an OCI descriptor's or config's JSON object
    /// (`os`, `architecture`, `variant`, `os.version`, `os.features`), as
    /// written there (matching normalises variants itself).
    pub fn from_json(value: &Value) -> Option<Platform> {
        let s = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Platform {
            os: s("os")?,
            architecture: s("architecture")?,
            variant: s("variant").filter(|v| !v.is_empty()),
            os_version: s("os.version"),
            os_features: value
                .get("os.features")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The JSON object of an index entry's `platform`, in the image spec's
    /// key order.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("architecture".into(), self.architecture.clone().into());
        m.insert("os".into(), self.os.clone().into());
        if let Some(v) = &self.os_version {
            m.insert("os.version".into(), v.clone().into());
        }
        if !self.os_features.is_empty() {
            m.insert("os.features".into(), self.os_features.clone().into());
        }
        if let Some(v) = &self.variant {
            m.insert("variant".into(), v.clone().into());
        }
        Value::Object(m)
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Platform, PlatformError> {
        Platform::parse(s)
    }
}

impl fmt::Display for Platform {
    /// `os/arch[/variant]`, with a Windows build as containerd writes it:
    /// `windows(10.0.20348)/amd64`.
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

/// Compares two OS builds number by number (`10.0.9` < `10.0.10`); a
/// missing component counts as lower than any present one.
pub fn compare_os_version(a: &str, b: &str) -> Ordering {
    let key = |v: &str| -> Vec<u64> { v.split('.').map(|n| n.parse().unwrap_or(0)).collect() };
    key(a).cmp(&key(b))
}

/// True when `have` is `want` or a longer build starting with it.
fn version_extends(have: &str, want: &str) -> bool {
    let (h, w): (Vec<&str>, Vec<&str>) = (have.split('.').collect(), want.split('.').collect());
    w.len() <= h.len()
        && w.iter().zip(&h).all(|(a, b)| {
            a.parse::<u64>()
                .ok()
                .zip(b.parse::<u64>().ok())
                .map_or(a == b, |(x, y)| x == y)
        })
}

/// The one way kiln picks an image from an index: among the entries whose
/// platform `wanted` [matches](Platform::matches), the one with the
/// greatest OS build (so `windows/amd64:10.0.20348` takes the newest patch
/// of that build), the first of equals. Entries without a platform never
/// match.
pub fn select_platform<'a, T>(
    wanted: &Platform,
    entries: &'a [T],
    platform_of: impl Fn(&T) -> Option<Platform>,
) -> Option<&'a T> {
    let mut best: Option<(&T, Option<String>)> = None;
    for e in entries {
        let Some(p) = platform_of(e).filter(|p| wanted.matches(p)) else {
            continue;
        };
        let better = match (&best, &p.os_version) {
            (None, _) => true,
            (Some((_, Some(b))), Some(v)) => compare_os_version(v, b) == Ordering::Greater,
            (Some((_, None)), Some(_)) => true,
            (Some(_), None) => false,
        };
        if better {
            best = Some((e, p.os_version));
        }
    }
    best.map(|(e, _)| e)
}

/// A request for a Windows platform without a build that several builds
/// of an index match: a Windows image runs only on a host of its build,
/// so kiln does not guess (the design's rule, unlike containerd's first
/// match on Linux).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{wanted} matches several Windows builds ({}); name the one your hosts run, e.g. --platform {}:{}",
    builds.join(", "),
    wanted,
    builds.last().map(String::as_str).unwrap_or_default()
)]
pub struct AmbiguousPlatform {
    /// The platform asked for.
    pub wanted: String,
    /// The builds (`major.minor.build`) that match, in increasing order.
    pub builds: Vec<String>,
}

/// [`select_platform`], refusing to guess between Windows builds: a
/// Windows request without an OS build that matches entries of more than
/// one `major.minor.build` is [`AmbiguousPlatform`].
pub fn select_platform_strict<'a, T>(
    wanted: &Platform,
    entries: &'a [T],
    platform_of: impl Fn(&T) -> Option<Platform>,
) -> Result<Option<&'a T>, AmbiguousPlatform> {
    if wanted.image_os() == ImageOs::Windows && wanted.os_version.is_none() {
        let mut builds: Vec<String> = entries
            .iter()
            .filter_map(&platform_of)
            .filter(|p| wanted.matches(p))
            .filter_map(|p| p.os_version)
            .map(|v| v.split('.').take(3).collect::<Vec<_>>().join("."))
            .collect();
        builds.sort_by(|a, b| compare_os_version(a, b));
        builds.dedup();
        if builds.len() > 1 {
            return Err(AmbiguousPlatform {
                wanted: wanted.short(),
                builds,
            });
        }
    }
    Ok(select_platform(wanted, entries, platform_of))
}

/// arm64 means arm64/v8 and arm means arm/v7 when no variant is given.
fn normal_variant(p: &Platform) -> Option<&str> {
    match (p.architecture.as_str(), p.variant.as_deref()) {
        ("arm64", None) => Some("v8"),
        ("arm", None) => Some("v7"),
        (_, v) => v,
    }
}

fn known_arch(arch: &str) -> bool {
    matches!(
        arch,
        "386"
            | "amd64"
            | "arm"
            | "arm64"
            | "ppc64le"
            | "ppc64"
            | "s390x"
            | "riscv64"
            | "mips64"
            | "mips64le"
            | "loong64"
            | "wasm"
    )
}

/// containerd's `normalizeArch`.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    let (a, v) = match (arch.as_str(), variant.as_str()) {
        ("i386", _) => ("386", ""),
        ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", ""),
        ("x86_64" | "x86-64", v) => ("amd64", v),
        ("aarch64" | "arm64", "8" | "v8" | "v8.0") => ("arm64", ""),
        ("aarch64", v) => ("arm64", v),
        ("armhf", _) => ("arm", "v7"),
        ("armel", _) => ("arm", "v6"),
        ("arm", "" | "7") => ("arm", "v7"),
        ("arm", "5" | "6" | "8") => return ("arm".into(), format!("v{variant}")),
        (a, v) => (a, v),
    };
    (a.to_string(), v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn parses_and_normalises_as_containerd() {
        let s = |t: &str| p(t).to_string();
        assert_eq!(s("linux/amd64"), "linux/amd64");
        assert_eq!(s("linux/arm64/v8"), "linux/arm64");
        assert_eq!(s("linux/arm/v6"), "linux/arm/v6");
        assert_eq!(s("linux/arm"), "linux/arm/v7");
        assert_eq!(s("Linux/x86_64"), "linux/amd64");
        assert_eq!(s("linux/aarch64"), "linux/arm64");
        assert_eq!(s("arm64"), "linux/arm64");
        assert_eq!(s("windows/amd64"), "windows/amd64");
        assert_eq!(
            Platform::parse("linux/").unwrap_err().to_string(),
            "invalid platform \"linux/\": expected os/arch[/variant], like linux/amd64"
        );
        for bad in [
            "bogus",
            "linux/amd64/v2/x",
            "windows()/amd64",
            "lin ux/amd64",
            "linux/amd64:10.0",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_builds_in_both_spellings() {
        let a = p("windows/amd64:10.0.20348.2340");
        let b = p("windows(10.0.20348.2340)/amd64");
        assert_eq!(a, b);
        assert_eq!(a.os_version.as_deref(), Some("10.0.20348.2340"));
        assert_eq!(a.to_string(), "windows(10.0.20348.2340)/amd64");
        assert_eq!(a.short(), "windows/amd64");
        assert_eq!(a.image_os(), ImageOs::Windows);
    }

    #[test]
    fn matching_normalises_variants_and_extends_builds_numerically() {
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
        assert!(!p("linux/arm/v6").matches(&p("linux/arm")));
        assert!(p("windows:10.0.17763").matches(&p("windows(10.0.17763.1234)/amd64")));
        assert!(!p("windows(10.0.1776)/amd64").matches(&p("windows(10.0.17763.1234)/amd64")));
        assert!(p("windows/amd64").matches(&p("windows(10.0.20348.1)/amd64")));
        assert!(!p("windows(10.0.20348)/amd64").matches(&p("windows/amd64")));
    }

    #[test]
    fn selection_takes_the_greatest_build_numerically() {
        let entries = [
            p("windows(10.0.20348.999)/amd64"),
            p("windows(10.0.20348.2340)/amd64"),
            p("windows(10.0.17763.5000)/amd64"),
            p("linux/amd64"),
        ];
        let pick = |w: &str| select_platform(&p(w), &entries, |e| Some(e.clone())).cloned();
        assert_eq!(pick("windows(10.0.20348)/amd64"), Some(entries[1].clone()));
        assert_eq!(pick("windows(10.0.17763)/amd64"), Some(entries[2].clone()));
        assert_eq!(pick("windows/amd64"), Some(entries[1].clone()));
        assert_eq!(
            pick("windows(10.0.20348.999)/amd64"),
            Some(entries[0].clone())
        );
        assert_eq!(pick("linux/arm64"), None);
        assert_eq!(compare_os_version("10.0.9", "10.0.10"), Ordering::Less);
    }

    #[test]
    fn a_windows_request_without_a_build_does_not_guess_between_builds() {
        let entries = [
            p("windows(10.0.17763.4377)/amd64"),
            p("windows(10.0.20348.987)/amd64"),
            p("windows(10.0.20348.2340)/amd64"),
        ];
        let pick = |w: &str| select_platform_strict(&p(w), &entries, |e| Some(e.clone()));
        let err = pick("windows/amd64").unwrap_err();
        assert_eq!(err.builds, ["10.0.17763", "10.0.20348"]);
        assert_eq!(
            err.to_string(),
            "windows/amd64 matches several Windows builds (10.0.17763, 10.0.20348); name the one \
             your hosts run, e.g. --platform windows/amd64:10.0.20348"
        );
        assert_eq!(pick("windows/amd64:10.0.20348").unwrap(), Some(&entries[2]));
        // One build, several patches: the greatest patch.
        assert_eq!(
            select_platform_strict(&p("windows/amd64"), &entries[1..], |e| Some(e.clone()))
                .unwrap(),
            Some(&entries[2])
        );
    }

    #[test]
    fn json_round_trip_keeps_os_version_and_features() {
        let v = serde_json::json!({"architecture": "amd64", "os": "windows",
            "os.version": "10.0.20348.2340", "os.features": ["win32k"]});
        let plat = Platform::from_json(&v).unwrap();
        assert_eq!(plat.os_features, ["win32k"]);
        assert_eq!(plat.to_json(), v);
    }

    #[test]
    fn image_os_parses_what_users_write() {
        assert_eq!("linux".parse::<ImageOs>().unwrap(), ImageOs::Linux);
        assert_eq!("Windows".parse::<ImageOs>().unwrap(), ImageOs::Windows);
        assert_eq!(
            "windows/amd64".parse::<ImageOs>().unwrap(),
            ImageOs::Windows
        );
    }

    #[test]
    fn host_is_well_formed() {
        let h = Platform::host();
        assert_eq!(Platform::parse(&h.to_string()).unwrap(), h);
    }
}
