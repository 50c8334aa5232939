//! `registries.conf` (containers-registries.conf(5), version 2), as podman
//! and buildah read it: per-registry `insecure` and `blocked`, `location`
//! rewrites and pull mirrors.
//!
//! The caller names the files (the CLI: `/etc/containers/registries.conf`
//! or `~/.config/containers/registries.conf`, then the `registries.conf.d`
//! drop-ins, or `CONTAINERS_REGISTRIES_CONF` alone); later files win: a
//! `[[registry]]` with the same prefix replaces an earlier one, as in
//! containers/image. An entry applies to the references under its
//! `prefix` (its `location` when it has no prefix), taken at a repository
//! boundary (`example.com/foo` covers `example.com/foo/bar`, not
//! `example.com/foobar`), or to every host under `*.example.com`; the
//! longest prefix wins.
//!
//! Short-name aliases and `unqualified-search-registries` are ignored:
//! kiln resolves short names as docker does (`busybox` is
//! `docker.io/library/busybox`), which is what its users' Dockerfiles
//! mean; every podman install ships aliases (`shortnames.conf`), so
//! refusing them would refuse every build.

use kiln_oci::reference::Reference;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What `registries.conf` files say, merged.
#[derive(Clone, Debug, Default)]
pub struct Registries {
    entries: Vec<Entry>,
}

/// One `[[registry]]` table.
#[derive(Clone, Debug)]
struct Entry {
    /// What references it covers.
    prefix: String,
    /// Where they are really pulled from and pushed to.
    location: String,
    insecure: bool,
    blocked: bool,
    mirrors: Vec<Mirror>,
    /// The file that said it, for messages.
    file: PathBuf,
}

#[derive(Clone, Debug)]
struct Mirror {
    location: String,
    insecure: bool,
    when: PullFrom,
}

/// `pull-from-mirror`: which pulls may use a mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PullFrom {
    All,
    DigestOnly,
    TagOnly,
}

/// A `registries.conf` that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct RegistriesError {
    /// The file.
    pub file: String,
    /// What is wrong.
    pub reason: String,
}

/// A reference `registries.conf` blocks.
#[derive(Debug, thiserror::Error)]
#[error("{reference} is blocked by {file} (`blocked = true` for prefix {prefix:?})")]
pub struct Blocked {
    /// The reference.
    pub reference: String,
    /// The prefix of the entry that blocks it.
    pub prefix: String,
    /// The file that says so.
    pub file: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    registry: Vec<RegistryTable>,
    #[serde(default)]
    unqualified_search_registries: Vec<String>,
    #[serde(default)]
    aliases: toml::Table,
    /// Version 1 tables (`[registries.search]` …): refused with a pointer
    /// to version 2.
    registries: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RegistryTable {
    prefix: Option<String>,
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror: Vec<MirrorTable>,
    #[serde(default)]
    mirror_by_digest_only: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct MirrorTable {
    location: String,
    #[serde(default)]
    insecure: bool,
    pull_from_mirror: Option<String>,
}

impl Registries {
    /// Reads `files` in order (those that do not exist are skipped); a
    /// later file's entry replaces an earlier one with the same prefix.
    pub fn load(files: &[PathBuf]) -> Result<Registries, RegistriesError> {
        let mut out = Registries::default();
        for path in files {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(RegistriesError {
                        file: path.display().to_string(),
                        reason: format!("reading it: {e}"),
                    })
                }
            };
            out.merge(Registries::parse(&text, path)?);
        }
        Ok(out)
    }

    /// Parses one file's `text`; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Registries, RegistriesError> {
        let fail = |reason: String| RegistriesError {
            file: path.display().to_string(),
            reason,
        };
        let file: File = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
        if file.registries.is_some() {
            return Err(fail(
                "version 1 tables ([registries.search], [registries.insecure], …) are not read; \
                 write [[registry]] tables (containers-registries.conf(5), version 2)"
                    .into(),
            ));
        }
        if !file.unqualified_search_registries.is_empty() || !file.aliases.is_empty() {
            // Every podman install ships aliases (shortnames.conf); kiln's
            // users expect docker's short names, so these keys are read
            // past, not refused.
            tracing::debug!(
                "{}: unqualified-search-registries and [aliases] are ignored: kiln resolves \
                 short names as docker does",
                path.display()
            );
        }
        let mut entries = Vec::new();
        for (i, t) in file.registry.into_iter().enumerate() {
            let at = |what: &str| fail(format!("[[registry]] number {}: {what}", i + 1));
            let location = t.location.clone().unwrap_or_default();
            let prefix = t.prefix.clone().unwrap_or_else(|| location.clone());
            if prefix.is_empty() {
                return Err(at("needs a prefix or a location"));
            }
            if prefix.starts_with("*.") && t.location.is_some() {
                return Err(at("a wildcard prefix cannot have a location"));
            }
            let mut mirrors = Vec::new();
            for m in t.mirror {
                let when = match m.pull_from_mirror.as_deref() {
                    None | Some("all") if t.mirror_by_digest_only => PullFrom::DigestOnly,
                    None | Some("all") => PullFrom::All,
                    Some("digest-only") => PullFrom::DigestOnly,
                    Some("tag-only") => PullFrom::TagOnly,
                    Some(other) => {
                        return Err(at(&format!(
                            "pull-from-mirror = {other:?}: expected all, digest-only or tag-only"
                        )))
                    }
                };
                mirrors.push(Mirror {
                    location: m.location,
                    insecure: m.insecure,
                    when,
                });
            }
            entries.push(Entry {
                location: if location.is_empty() {
                    prefix.clone()
                } else {
                    location
                },
                prefix,
                insecure: t.insecure,
                blocked: t.blocked,
                mirrors,
                file: path.to_path_buf(),
            });
        }
        Ok(Registries { entries })
    }

    fn merge(&mut self, later: Registries) {
        for entry in later.entries {
            self.entries.retain(|e| e.prefix != entry.prefix);
            self.entries.push(entry);
        }
    }

    /// True when nothing was configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry covering `reference`, and the rest of the reference's
    /// name after its prefix.
    fn entry_for(&self, reference: &Reference) -> Option<(&Entry, String)> {
        let name = reference.name();
        let host = &reference.registry;
        self.entries
            .iter()
            .filter_map(|e| {
                if let Some(domain) = e.prefix.strip_prefix("*.") {
                    let bare = host.split(':').next().unwrap_or(host);
                    return bare
                        .strip_suffix(domain)
                        .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1)
                        .then_some((e, None));
                }
                let rest = name.strip_prefix(e.prefix.as_str())?;
                (rest.is_empty() || rest.starts_with('/')).then(|| (e, Some(rest.to_string())))
            })
            .max_by_key(|(e, _)| e.prefix.len())
            .map(|(e, rest)| (e, rest.unwrap_or_default()))
    }

    /// Where a pull of `reference` may come from, in order: the mirrors
    /// that serve this kind of pull, then the (rewritten) location. Fails
    /// when the entry blocks it.
    pub fn pull_sources(&self, reference: &Reference) -> Result<Vec<Reference>, Blocked> {
        let Some((entry, rest)) = self.entry_for(reference) else {
            return Ok(vec![reference.clone()]);
        };
        if entry.blocked {
            return Err(blocked(reference, entry));
        }
        let by_digest = reference.digest.is_some();
        let mut out = Vec::new();
        for m in &entry.mirrors {
            let fits = match m.when {
                PullFrom::All => true,
                PullFrom::DigestOnly => by_digest,
                PullFrom::TagOnly => !by_digest,
            };
            if fits {
                if let Some(r) = relocate(reference, &entry.prefix, &m.location, &rest) {
                    out.push(r);
                }
            }
        }
        out.push(
            relocate(reference, &entry.prefix, &entry.location, &rest)
                .unwrap_or_else(|| reference.clone()),
        );
        Ok(out)
    }

    /// Where a push of `reference` goes: its (rewritten) location, never a
    /// mirror. Fails when the entry blocks it.
    pub fn push_target(&self, reference: &Reference) -> Result<Reference, Blocked> {
        let Some((entry, rest)) = self.entry_for(reference) else {
            return Ok(reference.clone());
        };
        if entry.blocked {
            return Err(blocked(reference, entry));
        }
        Ok(relocate(reference, &entry.prefix, &entry.location, &rest)
            .unwrap_or_else(|| reference.clone()))
    }

    /// Whether `host` (a registry or mirror location's host) is marked
    /// `insecure`.
    pub fn is_insecure(&self, host: &str) -> bool {
        let host_of = |location: &str| location.split('/').next().unwrap_or_default().to_string();
        self.entries.iter().any(|e| {
            (e.insecure && host_of(&e.location) == host)
                || e.mirrors
                    .iter()
                    .any(|m| m.insecure && host_of(&m.location) == host)
        })
    }
}

fn blocked(reference: &Reference, entry: &Entry) -> Blocked {
    Blocked {
        reference: reference.to_string(),
        prefix: entry.prefix.clone(),
        file: entry.file.display().to_string(),
    }
}

/// `reference` moved from under `prefix` to under `location` (`rest` is
/// what followed the prefix); `None` for a wildcard entry, which has no
/// location to move to.
fn relocate(reference: &Reference, prefix: &str, location: &str, rest: &str) -> Option<Reference> {
    if prefix.starts_with("*.") || location == prefix {
        return (location == prefix).then(|| reference.clone());
    }
    let mut text = format!("{location}{rest}");
    if let Some(d) = &reference.digest {
        text = format!("{text}@{d}");
    } else if let Some(t) = &reference.tag {
        text = format!("{text}:{t}");
    }
    Reference::parse(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> Registries {
        Registries::parse(text, Path::new("/etc/containers/registries.conf")).unwrap()
    }

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    fn names(list: Vec<Reference>) -> Vec<String> {
        list.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn mirrors_come_first_then_the_location() {
        let c = conf(
            r#"
[[registry]]
prefix = "example.com/lib"
location = "internal.example.com/mirror/lib"
[[registry.mirror]]
location = "m1.example.com/lib"
[[registry.mirror]]
location = "m2.example.com/lib"
pull-from-mirror = "digest-only"
"#,
        );
        assert_eq!(
            names(c.pull_sources(&r("example.com/lib/app:1")).unwrap()),
            [
                "m1.example.com/lib/app:1",
                "internal.example.com/mirror/lib/app:1"
            ]
        );
        let pinned = format!("example.com/lib/app@sha256:{}", "a".repeat(64));
        assert_eq!(c.pull_sources(&r(&pinned)).unwrap().len(), 3);
        assert_eq!(
            c.push_target(&r("example.com/lib/app:1"))
                .unwrap()
                .to_string(),
            "internal.example.com/mirror/lib/app:1"
        );
        // A repository boundary, not a string prefix.
        assert_eq!(
            names(c.pull_sources(&r("example.com/library/app:1")).unwrap()),
            ["example.com/library/app:1"]
        );
    }

    #[test]
    fn blocked_insecure_wildcards_and_later_files_win() {
        let mut c = conf(
            r#"
[[registry]]
location = "bad.example.com"
blocked = true
[[registry]]
prefix = "*.corp.example"
insecure = true
[[registry]]
location = "plain.example.com:5000"
insecure = true
"#,
        );
        let err = c.pull_sources(&r("bad.example.com/x:1")).unwrap_err();
        assert!(
            err.to_string().contains("/etc/containers/registries.conf"),
            "{err}"
        );
        assert!(c.push_target(&r("bad.example.com/x:1")).is_err());
        assert!(c.is_insecure("plain.example.com:5000"));
        assert!(!c.is_insecure("other.example.com"));
        assert_eq!(
            names(c.pull_sources(&r("a.corp.example/x:1")).unwrap()),
            ["a.corp.example/x:1"]
        );
        c.merge(
            Registries::parse(
                "[[registry]]\nlocation = \"bad.example.com\"\n",
                Path::new("/etc/containers/registries.conf.d/50-unblock.conf"),
            )
            .unwrap(),
        );
        assert!(c.pull_sources(&r("bad.example.com/x:1")).is_ok());
    }

    #[test]
    fn short_names_stay_dockers_and_bad_files_are_errors_naming_the_file() {
        let aliases = conf("unqualified-search-registries = [\"quay.io\"]\n[aliases]\n\"app\" = \"quay.io/x/app\"\n");
        assert_eq!(
            names(aliases.pull_sources(&r("app:1")).unwrap()),
            ["docker.io/library/app:1"],
            "short names stay docker's"
        );
        for text in [
            "[registries.search]\nregistries = [\"quay.io\"]\n",
            "[[registry]]\nlocation = \"x.example\"\nbogus = 1\n",
            "[[registry]]\nlocation = \"x.example\"\n[[registry.mirror]]\nlocation = \"m\"\npull-from-mirror = \"sometimes\"\n",
            "not toml",
        ] {
            let err = Registries::parse(text, Path::new("/x/registries.conf")).unwrap_err();
            assert!(err.to_string().starts_with("/x/registries.conf: "), "{err}");
        }
    }
}
