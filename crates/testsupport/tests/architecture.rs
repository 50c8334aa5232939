//! The shape docs/architecture.md promises, checked on the source: no
//! module of a crate depends, through others, on itself, and crate
//! dependencies point one way (the registry client knows no store, the
//! shared backend crate no backend, no backend another).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// For each top-level module of the crate whose sources are in `src`, the
/// other top-level modules it names as `crate::…` outside comments and
/// test modules' files.
fn module_edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" || rel.ends_with("tests.rs") {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let code = line.split("//").next().unwrap();
            for (i, _) in code.match_indices("crate::") {
                let name: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let is_module = src.join(format!("{name}.rs")).exists()
                    || src.join(&name).join("mod.rs").exists();
                if !name.is_empty() && name != module && is_module {
                    edges.entry(module.clone()).or_default().insert(name);
                }
            }
        }
    }
    edges
}

/// A cycle among `edges`, if there is one, as the modules on it.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut cycles = Vec::new();
    for entry in fs::read_dir(crates_dir()).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            if let Some(cycle) = find_cycle(&module_edges(&src)) {
                cycles.push(format!("{}: {}", src.display(), cycle.join(" → ")));
            }
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

/// The kiln crates `krate` depends on (not dev-dependencies).
fn kiln_dependencies(krate: &str) -> BTreeSet<String> {
    let manifest = fs::read_to_string(crates_dir().join(krate).join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("\n[dependencies]\n")
        .nth(1)
        .unwrap_or("")
        .split("\n[")
        .next()
        .unwrap();
    deps.lines()
        .filter_map(|l| l.split('=').next())
        .map(str::trim)
        .filter(|name| name.starts_with("kiln-"))
        .map(str::to_string)
        .collect()
}

#[test]
fn crate_dependencies_point_one_way() {
    let registry = kiln_dependencies("registry");
    assert!(!registry.contains("kiln-store"), "{registry:?}");
    let backend = kiln_dependencies("backend");
    for backend_crate in ["kiln-native", "kiln-buildah"] {
        assert!(!backend.contains(backend_crate), "{backend:?}");
    }
    assert!(!kiln_dependencies("native").contains("kiln-buildah"));
    assert!(!kiln_dependencies("buildah").contains("kiln-native"));
    // The cycle check sees these crates, or it proves nothing.
    assert!(find_cycle(&module_edges(&crates_dir().join("native/src"))).is_none());
    assert!(module_edges(&crates_dir().join("native/src")).contains_key("backend"));
}
