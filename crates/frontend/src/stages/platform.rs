//! Platforms (`linux/arm64/v8`), parsed and normalised as containerd's
//! `platforms` package does.

use std::fmt;

/// An OS, architecture and optional variant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// `amd64`, `arm64`, `arm`, `386`, …
    pub architecture: String,
    /// `v7`, `v6`, `v2`, …; `None` when there is none after normalising.
    pub variant: Option<String>,
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
    /// Parses `os[/arch[/variant]]` or a lone architecture, normalising
    /// aliases (`x86_64` → `amd64`, `aarch64` → `arm64`, `arm64/v8` →
    /// `arm64`, `arm` → `arm/v7`).
    pub fn parse(text: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let bad = |why: &str| format!("invalid platform {text:?}: {why}");
        if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
            return Err(bad("expected os/arch[/variant], like linux/amd64"));
        }
        for p in &parts {
            if !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            {
                return Err(bad("it may only contain letters, digits, '_', '-' and '.'"));
            }
        }
        let host = Platform::host();
        let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        let (os, arch, variant) = match lower.as_slice() {
            [one] if KNOWN_OS.contains(&one.as_str()) => {
                let arch = if *one == host.os {
                    host.architecture.clone()
                } else {
                    "amd64".into()
                };
                let variant = if *one == host.os {
                    host.variant.clone()
                } else {
                    None
                };
                (one.clone(), arch, variant)
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
        let os = if os == "macos" {
            "darwin".to_string()
        } else {
            os
        };
        let (architecture, variant) = normalize_arch(&arch, variant.as_deref().unwrap_or(""));
        Ok(Platform {
            os,
            architecture,
            variant: (!variant.is_empty()).then_some(variant),
        })
    }

    /// The platform kiln runs on, used as the default build and target
    /// platform.
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
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// `os/arch[/variant]`.
    pub fn format(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
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
    let (a, v) = match (arch, variant) {
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

    #[test]
    fn parses_and_normalises() {
        let p = |s: &str| Platform::parse(s).unwrap().to_string();
        assert_eq!(p("linux/amd64"), "linux/amd64");
        assert_eq!(p("linux/arm64/v8"), "linux/arm64");
        assert_eq!(p("linux/arm/v6"), "linux/arm/v6");
        assert_eq!(p("linux/arm"), "linux/arm/v7");
        assert_eq!(p("Linux/x86_64"), "linux/amd64");
        assert_eq!(p("linux/aarch64"), "linux/arm64");
        assert_eq!(p("arm64"), "linux/arm64");
        assert_eq!(p("windows/amd64"), "windows/amd64");
        assert_eq!(
            Platform::parse("linux/").unwrap_err(),
            "invalid platform \"linux/\": expected os/arch[/variant], like linux/amd64"
        );
        assert!(Platform::parse("bogus").is_err());
        assert!(Platform::parse("linux/amd64/v2/x").is_err());
    }

    #[test]
    fn host_is_well_formed() {
        let h = Platform::host();
        assert_eq!(Platform::parse(&h.to_string()).unwrap(), h);
    }
}
