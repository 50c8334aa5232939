//! `registries.conf` (containers-registries.conf(5), version 2), as podman
//! and buildah read it: per-registry `insecure` and `blocked`, `location`
//! rewrites, pull mirrors, and the resolution of short names
//! (`[aliases]`, `unqualified-search-registries`, `short-name-mode`).
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
//! A short name (`busybox`, `user/app:1`: no registry) pulls from its
//! alias when it has one, else from each unqualified-search registry in
//! order, as podman and buildah pull it; with no search registries
//! configured it is docker's (`docker.io/library/busybox`), which is what
//! a Dockerfile written for docker means. kiln never prompts: where
//! `short-name-mode = "enforcing"` would have podman ask which of several
//! registries to use, kiln fails and says how to choose, as podman does
//! without a terminal. kiln records no aliases of its own
//! (`short-name-aliases.conf`): it never prompts, so it has no answers to
//! record.

use kiln_oci::reference::{short_name, ParseReferenceError, Reference};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What `registries.conf` files say, merged.
#[derive(Clone, Debug, Default)]
pub struct Registries {
    entries: Vec<Entry>,
    /// `unqualified-search-registries`, and the file that set it last.
    search: Option<Said<Vec<String>>>,
    /// `short-name-mode`, and the file that set it last.
    mode: Option<Said<ShortNameMode>>,
    /// `[aliases]`: short name to fully qualified name (no tag). An empty
    /// target, which erases an earlier file's alias, is kept until merged.
    aliases: BTreeMap<String, Said<String>>,
}

/// A setting and the file it came from, for messages.
#[derive(Clone, Debug)]
struct Said<T> {
    value: T,
    file: PathBuf,
}

impl<T> Said<T> {
    fn new(value: T, file: &Path) -> Said<T> {
        Said {
            value,
            file: file.to_path_buf(),
        }
    }
}

/// `short-name-mode`: what a short name with several candidate
/// registries and no alias does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ShortNameMode {
    /// Fail (podman would prompt on a terminal; kiln never prompts).
    Enforcing,
    /// Try every search registry in order (the default).
    Permissive,
    /// The same, without even podman prompting.
    Disabled,
}

/// A name that cannot be resolved to what to pull.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    /// Not an image reference.
    #[error(transparent)]
    Invalid(#[from] ParseReferenceError),
    /// A short name `short-name-mode = "enforcing"` leaves ambiguous.
    #[error(
        "{name} is a short name, and {file} says short-name-mode = \"enforcing\" with several \
         unqualified-search-registries ({registries}) and no alias for it; kiln does not prompt: \
         write the full name (such as {example}) or add it under [aliases]"
    )]
    Ambiguous {
        /// The name as written.
        name: String,
        /// The file that set the mode.
        file: String,
        /// The search registries, comma-separated.
        registries: String,
        /// The name under the first of them.
        example: String,
    },
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
    unqualified_search_registries: Option<Vec<String>>,
    short_name_mode: Option<String>,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
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
        let mut search = None;
        if let Some(list) = file.unqualified_search_registries {
            for r in &list {
                if r.is_empty() || r.contains('/') {
                    return Err(fail(format!(
                        "unqualified-search-registries: {r:?} is not a host[:port]"
                    )));
                }
            }
            search = Some(Said::new(list, path));
        }
        let mode = match file.short_name_mode.as_deref() {
            None | Some("") => None,
            Some("enforcing") => Some(Said::new(ShortNameMode::Enforcing, path)),
            Some("permissive") => Some(Said::new(ShortNameMode::Permissive, path)),
            Some("disabled") => Some(Said::new(ShortNameMode::Disabled, path)),
            Some(other) => {
                return Err(fail(format!(
                    "short-name-mode = {other:?}: expected enforcing, permissive or disabled"
                )))
            }
        };
        let mut aliases = BTreeMap::new();
        for (name, target) in file.aliases {
            let bad = |why: &str| fail(format!("[aliases] {name:?} = {target:?}: {why}"));
            if short_name(&name).is_none_or(|(_, suffix)| !suffix.is_empty()) {
                return Err(bad("the name must be a short name without a tag or digest"));
            }
            if !target.is_empty() {
                if short_name(&target).is_some() {
                    return Err(bad("the target must name its registry"));
                }
                if target.contains('@')
                    || target.rsplit('/').next().is_some_and(|l| l.contains(':'))
                {
                    return Err(bad("the target cannot have a tag or digest"));
                }
                Reference::parse(&target).map_err(|e| bad(&e.to_string()))?;
            }
            aliases.insert(name, Said::new(target, path));
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
        Ok(Registries {
            entries,
            search,
            mode,
            aliases,
        })
    }

    /// `later` (a later file) over `self`, as containers/image merges
    /// drop-ins: a `[[registry]]` replaces the one with its prefix, a
    /// global setting replaces the earlier one, an alias replaces the
    /// earlier alias of its name and an empty one erases it.
    fn merge(&mut self, later: Registries) {
        for entry in later.entries {
            self.entries.retain(|e| e.prefix != entry.prefix);
            self.entries.push(entry);
        }
        if later.search.is_some() {
            self.search = later.search;
        }
        if later.mode.is_some() {
            self.mode = later.mode;
        }
        for (name, target) in later.aliases {
            if target.value.is_empty() {
                self.aliases.remove(&name);
            } else {
                self.aliases.insert(name, target);
            }
        }
    }

    /// True when nothing was configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
            && self.search.is_none()
            && self.mode.is_none()
            && self.aliases.is_empty()
    }

    /// The references a pull of the image written `written` tries, in
    /// order. A name with a registry is itself. A short name is its alias
    /// when it has one (the tag or digest written goes on the alias), else
    /// itself under each of `unqualified-search-registries`, else, with no
    /// search registries, docker's reading of it (`docker.io/library/…`).
    /// Each candidate's pull then goes through [`Registries::pull_sources`].
    pub fn candidates(&self, written: &str) -> Result<Vec<Reference>, NameError> {
        let docker = Reference::parse(written)?;
        let Some((name, suffix)) = short_name(written) else {
            return Ok(vec![docker]);
        };
        if let Some(alias) = self.aliases.get(name).filter(|a| !a.value.is_empty()) {
            return Ok(vec![Reference::parse(&format!("{}{suffix}", alias.value))?]);
        }
        let search = match &self.search {
            Some(s) if !s.value.is_empty() => &s.value,
            _ => return Ok(vec![docker]),
        };
        if let Some(mode) = self
            .mode
            .as_ref()
            .filter(|m| m.value == ShortNameMode::Enforcing)
        {
            if search.len() > 1 {
                return Err(NameError::Ambiguous {
                    name: written.to_string(),
                    file: mode.file.display().to_string(),
                    registries: search.join(", "),
                    example: format!("{}/{written}", search[0]),
                });
            }
        }
        search
            .iter()
            .map(|r| Ok(Reference::parse(&format!("{r}/{written}"))?))
            .collect()
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
    fn short_names_resolve_through_aliases_then_search_registries() {
        let none = conf("[[registry]]\nlocation = \"x.example\"\n");
        assert_eq!(
            names(none.candidates("app:1").unwrap()),
            ["docker.io/library/app:1"],
            "without search registries a short name is docker's"
        );
        let c = conf(
            "unqualified-search-registries = [\"r1.example:5000\", \"docker.io\"]\n\
             [aliases]\n\"app\" = \"quay.io/x/app\"\n",
        );
        assert_eq!(names(c.candidates("app:1").unwrap()), ["quay.io/x/app:1"]);
        let pinned = format!("app@sha256:{}", "a".repeat(64));
        assert_eq!(
            names(c.candidates(&pinned).unwrap()),
            [format!("quay.io/x/{pinned}")]
        );
        assert_eq!(
            names(c.candidates("tool").unwrap()),
            [
                "r1.example:5000/tool:latest",
                "docker.io/library/tool:latest"
            ]
        );
        assert_eq!(
            names(c.candidates("user/tool:2").unwrap()),
            ["r1.example:5000/user/tool:2", "docker.io/user/tool:2"]
        );
        assert_eq!(
            names(c.candidates("r2.example/tool").unwrap()),
            ["r2.example/tool:latest"],
            "a name with a registry is itself"
        );
        assert!(matches!(
            c.candidates("Bad Name"),
            Err(NameError::Invalid(_))
        ));
    }

    #[test]
    fn enforcing_fails_where_podman_would_prompt_and_drop_ins_override() {
        let mut c = conf(
            "unqualified-search-registries = [\"a.example\", \"b.example\"]\n\
             short-name-mode = \"enforcing\"\n[aliases]\n\"app\" = \"quay.io/x/app\"\n",
        );
        let err = c.candidates("tool:1").unwrap_err().to_string();
        for part in [
            "tool:1 is a short name",
            "/etc/containers/registries.conf",
            "a.example, b.example",
            "a.example/tool:1",
        ] {
            assert!(err.contains(part), "{part:?} in {err}");
        }
        // An alias is not ambiguous.
        assert_eq!(
            names(c.candidates("app").unwrap()),
            ["quay.io/x/app:latest"]
        );
        // A drop-in narrows the search to one registry and erases the alias.
        c.merge(
            Registries::parse(
                "unqualified-search-registries = [\"b.example\"]\n[aliases]\n\"app\" = \"\"\n",
                Path::new("/etc/containers/registries.conf.d/50.conf"),
            )
            .unwrap(),
        );
        assert_eq!(names(c.candidates("tool:1").unwrap()), ["b.example/tool:1"]);
        assert_eq!(
            names(c.candidates("app").unwrap()),
            ["b.example/app:latest"]
        );
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        for text in [
            "[registries.search]\nregistries = [\"quay.io\"]\n",
            "[[registry]]\nlocation = \"x.example\"\nbogus = 1\n",
            "[[registry]]\nlocation = \"x.example\"\n[[registry.mirror]]\nlocation = \"m\"\npull-from-mirror = \"sometimes\"\n",
            "not toml",
            "short-name-mode = \"sometimes\"\n",
            "unqualified-search-registries = [\"quay.io/ns\"]\n",
            "[aliases]\n\"quay.io/app\" = \"quay.io/x/app\"\n",
            "[aliases]\n\"app:1\" = \"quay.io/x/app\"\n",
            "[aliases]\n\"app\" = \"app2\"\n",
            "[aliases]\n\"app\" = \"quay.io/x/app:1\"\n",
        ] {
            let err = Registries::parse(text, Path::new("/x/registries.conf")).unwrap_err();
            assert!(err.to_string().starts_with("/x/registries.conf: "), "{err}");
        }
    }
}
