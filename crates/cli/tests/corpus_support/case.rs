//! Cases of tests/corpus: a Dockerfile, its context, and optionally
//! `buildah.Dockerfile` (what buildah builds instead, when buildah 1.28 lacks
//! the feature under test), `expect.json` (where BuildKit and buildah
//! differ, and build options) and `NOTES`.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The placeholder the harness replaces with the base image reference in
/// Dockerfiles, where an ARG cannot be used (COPY --from is never expanded).
pub const BASE_PLACEHOLDER: &str = "{{BASE}}";

/// One case directory.
#[derive(Debug)]
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub expect: Expect,
}

/// The contents of expect.json; every key is optional.
#[derive(Debug, Default)]
pub struct Expect {
    /// `--build-arg`s for both builders (BASE is always passed).
    pub build_args: BTreeMap<String, String>,
    /// Named contexts: name → directory relative to the case.
    pub build_contexts: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--secret id=ID,src=FILE` for both builders: id → file relative to
    /// the case.
    pub secrets: BTreeMap<String, String>,
    /// Source modes to set in the temporary context (git keeps only 644/755).
    pub modes: BTreeMap<String, u32>,
    /// Paths where kiln must differ from buildah: the BuildKit value, or
    /// `None` for "must not exist".
    pub paths: BTreeMap<String, Option<Value>>,
    /// Config fields where kiln must differ from buildah (null: absent).
    pub config: Map<String, Value>,
}

/// The corpus directory at the repository root.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus")
}

/// All cases, sorted by name.
pub fn load_all() -> Result<Vec<Case>, String> {
    let root = corpus_dir();
    let mut cases = Vec::new();
    for entry in fs::read_dir(&root).map_err(|e| format!("{}: {e}", root.display()))? {
        let dir = entry.map_err(|e| e.to_string())?.path();
        if dir.join("Dockerfile").is_file() {
            cases.push(load(&dir)?);
        }
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(cases)
}

/// One case by directory.
pub fn load(dir: &Path) -> Result<Case, String> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = dir.join("expect.json");
    let expect = if path.exists() {
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        parse_expect(&v).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        Expect::default()
    };
    Ok(Case {
        name,
        dir: dir.to_path_buf(),
        expect,
    })
}

fn string_map(v: Option<&Value>, what: &str) -> Result<BTreeMap<String, String>, String> {
    let Some(v) = v else {
        return Ok(BTreeMap::new());
    };
    let m = v
        .as_object()
        .ok_or_else(|| format!("{what} must be an object"))?;
    m.iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|s| (k.clone(), s.to_string()))
                .ok_or_else(|| format!("{what}.{k} must be a string"))
        })
        .collect()
}

fn parse_expect(v: &Value) -> Result<Expect, String> {
    const KEYS: &[&str] = &[
        "why",
        "build_args",
        "build_contexts",
        "target",
        "secrets",
        "modes",
        "paths",
        "config",
    ];
    let obj = v.as_object().ok_or("expect.json must hold an object")?;
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!("unknown key {k:?} (known: {KEYS:?})"));
    }
    let modes = string_map(obj.get("modes"), "modes")?
        .into_iter()
        .map(|(k, m)| {
            u32::from_str_radix(&m, 8)
                .map(|m| (k.clone(), m))
                .map_err(|e| format!("modes.{k}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let paths = match obj.get("paths") {
        None => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| (k.clone(), (!v.is_null()).then(|| v.clone())))
            .collect(),
        Some(_) => return Err("paths must be an object".into()),
    };
    let config = match obj.get("config") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err("config must be an object".into()),
    };
    Ok(Expect {
        build_args: string_map(obj.get("build_args"), "build_args")?,
        build_contexts: string_map(obj.get("build_contexts"), "build_contexts")?,
        target: obj.get("target").and_then(Value::as_str).map(String::from),
        secrets: string_map(obj.get("secrets"), "secrets")?,
        modes,
        paths,
        config,
    })
}

/// A temporary copy of a case's directory, made identical for both
/// builders: files 0644 (`*.sh` 0755), directories 0755, then the case's
/// `modes`; `{{BASE}}` replaced in the Dockerfiles.
pub struct Prepared {
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    /// buildah.Dockerfile if the case has one, else the Dockerfile.
    pub buildah_dockerfile: PathBuf,
}

/// Copies `case` into `dest` (which must not exist yet).
pub fn prepare(case: &Case, dest: &Path, base_ref: &str) -> Result<Prepared, String> {
    copy_tree(&case.dir, dest)?;
    for (rel, mode) in &case.expect.modes {
        let p = dest.join(rel);
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode))
            .map_err(|e| format!("chmod {}: {e}", p.display()))?;
    }
    for name in ["Dockerfile", "buildah.Dockerfile"] {
        let p = dest.join(name);
        if p.exists() {
            let text = fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            fs::write(&p, text.replace(BASE_PLACEHOLDER, base_ref))
                .map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    let buildah = dest.join("buildah.Dockerfile");
    Ok(Prepared {
        context: dest.to_path_buf(),
        dockerfile: dest.join("Dockerfile"),
        buildah_dockerfile: if buildah.exists() {
            buildah
        } else {
            dest.join("Dockerfile")
        },
    })
}

fn copy_tree(src: &Path, dest: &Path) -> Result<(), String> {
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let meta = fs::symlink_metadata(src).map_err(|e| err(src, e))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(src).map_err(|e| err(src, e))?;
        std::os::unix::fs::symlink(target, dest).map_err(|e| err(dest, e))?;
    } else if ft.is_dir() {
        fs::create_dir(dest).map_err(|e| err(dest, e))?;
        fs::set_permissions(dest, fs::Permissions::from_mode(0o755)).map_err(|e| err(dest, e))?;
        for entry in fs::read_dir(src).map_err(|e| err(src, e))? {
            let entry = entry.map_err(|e| err(src, e))?;
            copy_tree(&entry.path(), &dest.join(entry.file_name()))?;
        }
    } else {
        fs::copy(src, dest).map_err(|e| err(src, e))?;
        let mode = if src.extension().is_some_and(|e| e == "sh") {
            0o755
        } else {
            0o644
        };
        fs::set_permissions(dest, fs::Permissions::from_mode(mode)).map_err(|e| err(dest, e))?;
    }
    Ok(())
}
