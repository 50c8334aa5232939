//! `--cache-to` and `--cache-from`: where a shared build cache lives, in
//! buildx's syntax. Every backend takes them; the native backend reads and
//! writes kiln's cache format there.

use kiln_oci::reference::Reference;
use std::collections::HashMap;
use std::path::PathBuf;

/// The `artifactType` of a kiln cache manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.kiln.cache.v1";
/// The media type of its config: the records.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.kiln.cache.config.v1+json";

/// Where a shared cache lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheLocation {
    /// A manifest in a registry (`type=registry,ref=…`).
    Registry(Reference),
    /// An OCI image layout directory (`type=local,dest=…` or `src=…`).
    Local(PathBuf),
}

impl std::fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheLocation::Registry(r) => write!(f, "{r}"),
            CacheLocation::Local(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// Which steps `--cache-to` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// The steps of the image built: the target stage and the stages it is
    /// built on (`FROM` another stage).
    #[default]
    Min,
    /// Every step of the build, other stages' included.
    Max,
}

/// A `--cache-to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheExport {
    /// Where to write.
    pub location: CacheLocation,
    /// What to write.
    pub mode: CacheMode,
}

/// Parses `--cache-to` as buildx does: `type=registry,ref=R[,mode=min|max]`
/// or `type=local,dest=DIR[,mode=…]`.
pub fn parse_cache_to(spec: &str) -> Result<CacheExport, String> {
    let fields = fields(spec, "--cache-to")?;
    let mut mode = CacheMode::Min;
    if let Some(m) = fields.get("mode") {
        mode = match m.as_str() {
            "min" => CacheMode::Min,
            "max" => CacheMode::Max,
            _ => {
                return Err(format!(
                    "--cache-to {spec}: mode must be min or max, not {m:?}"
                ))
            }
        };
    }
    let location = location(spec, "--cache-to", &fields, "dest")?;
    for key in fields.keys() {
        if ![
            "type",
            "ref",
            "dest",
            "mode",
            "compression",
            "oci-mediatypes",
            "ignore-error",
        ]
        .contains(&key.as_str())
        {
            return Err(format!("--cache-to {spec}: unknown attribute {key:?}"));
        }
    }
    Ok(CacheExport { location, mode })
}

/// Parses `--cache-from`: `type=registry,ref=R`, `type=local,src=DIR`, or
/// a bare image reference (a registry cache, as buildx takes it).
pub fn parse_cache_from(spec: &str) -> Result<CacheLocation, String> {
    if !spec.contains('=') {
        return Reference::parse(spec)
            .map(CacheLocation::Registry)
            .map_err(|e| format!("--cache-from {spec}: {e}"));
    }
    let fields = fields(spec, "--cache-from")?;
    for key in fields.keys() {
        if !["type", "ref", "src"].contains(&key.as_str()) {
            return Err(format!("--cache-from {spec}: unknown attribute {key:?}"));
        }
    }
    location(spec, "--cache-from", &fields, "src")
}

fn fields(spec: &str, flag: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for part in spec.split(',') {
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!("{flag} {spec}: {part:?} is not KEY=VALUE"));
        };
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

fn location(
    spec: &str,
    flag: &str,
    fields: &HashMap<String, String>,
    dir_key: &str,
) -> Result<CacheLocation, String> {
    let missing = |key: &str| format!("{flag} {spec}: type={} needs {key}=", fields["type"]);
    match fields.get("type").map(String::as_str) {
        Some("registry") => {
            let r = fields.get("ref").ok_or_else(|| missing("ref"))?;
            Reference::parse(r)
                .map(CacheLocation::Registry)
                .map_err(|e| format!("{flag} {spec}: {e}"))
        }
        Some("local") => fields
            .get(dir_key)
            .map(|d| CacheLocation::Local(PathBuf::from(d)))
            .ok_or_else(|| missing(dir_key)),
        Some(other @ ("inline" | "gha" | "s3" | "azblob")) => Err(format!(
            "{flag} {spec}: NotSupported: kiln shares its cache through type=registry or type=local, not type={other}"
        )),
        Some(other) => Err(format!(
            "{flag} {spec}: unknown type {other:?}; use type=registry or type=local"
        )),
        None => Err(format!("{flag} {spec}: give type=registry or type=local")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_to_and_from_parse_as_buildx_takes_them() {
        let e = parse_cache_to("type=registry,ref=localhost:5000/app:cache,mode=max").unwrap();
        assert_eq!(e.mode, CacheMode::Max);
        assert_eq!(
            e.location,
            CacheLocation::Registry(Reference::parse("localhost:5000/app:cache").unwrap())
        );
        let e = parse_cache_to("type=local,dest=/tmp/c").unwrap();
        assert_eq!(
            (e.location, e.mode),
            (CacheLocation::Local("/tmp/c".into()), CacheMode::Min)
        );
        assert_eq!(
            parse_cache_from("type=local,src=/tmp/c").unwrap(),
            CacheLocation::Local("/tmp/c".into())
        );
        assert_eq!(
            parse_cache_from("localhost:5000/app:cache").unwrap(),
            CacheLocation::Registry(Reference::parse("localhost:5000/app:cache").unwrap())
        );
        assert_eq!(
            parse_cache_to("type=local,dest=d,mode=all").unwrap_err(),
            "--cache-to type=local,dest=d,mode=all: mode must be min or max, not \"all\""
        );
        assert_eq!(
            parse_cache_to("type=local").unwrap_err(),
            "--cache-to type=local: type=local needs dest="
        );
        assert_eq!(
            parse_cache_from("type=local,dest=x").unwrap_err(),
            "--cache-from type=local,dest=x: unknown attribute \"dest\""
        );
        assert!(parse_cache_to("type=gha").unwrap_err().contains(
            "NotSupported: kiln shares its cache through type=registry or type=local, not type=gha"
        ));
        assert_eq!(
            parse_cache_from("type=ftp,src=x").unwrap_err(),
            "--cache-from type=ftp,src=x: unknown type \"ftp\"; use type=registry or type=local"
        );
    }
}
