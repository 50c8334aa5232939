//! deploy/kubernetes/: every manifest passes Kubernetes' own JSON schemas
//! (kubernetes-validate in strict mode: unknown fields are errors), a
//! broken copy is refused, and the Job runs kiln's image the way
//! docs/deploy.md says, with arguments kiln accepts. The validator is the
//! venv `scripts/install-deps` makes; it needs no network.

use kiln_backend::{parse_cache_from, parse_cache_to, CacheLocation, CacheMode};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The version `scripts/install-deps` installs.
const VALIDATOR_VERSION: &str = "1.37.0";

/// The oldest Kubernetes the manifests are for (the first with
/// `securityContext.appArmorProfile`) and the newest the validator knows.
const KUBERNETES_VERSIONS: &[&str] = &["1.30.0", "1.37.0"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in deploy/kubernetes");
    files
}

/// The venv's bin directory, or a failure saying how to make it.
fn venv_bin() -> PathBuf {
    let cache = std::env::var_os("KILN_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                .join(".cache/kiln-test")
        });
    let bin = cache.join(format!("kubernetes-validate-{VALIDATOR_VERSION}/bin"));
    assert!(
        bin.join("kubernetes-validate").is_file(),
        "{} missing: run scripts/install-deps (it installs kubernetes-validate {VALIDATOR_VERSION} there)",
        bin.display()
    );
    bin
}

fn validate(file: &Path, version: &str) -> Output {
    Command::new(venv_bin().join("kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", version])
        .arg(file)
        .output()
        .unwrap()
}

/// The documents of a YAML file as JSON, read by the validator's own
/// PyYAML.
fn documents(file: &Path) -> Vec<Value> {
    let out = Command::new(venv_bin().join("python"))
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_manifest_passes_the_kubernetes_schemas() {
    for file in manifests() {
        for version in KUBERNETES_VERSIONS {
            let out = validate(&file, version);
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{}: {text}", file.display());
            // One "passed" line per resource: none was skipped for want of
            // a schema.
            let resources = documents(&file).len();
            assert_eq!(
                text.matches(" passed for resource ").count(),
                resources,
                "{text}"
            );
        }
    }
}

#[test]
fn a_broken_manifest_is_refused_naming_the_field() {
    let job = repo().join("deploy/kubernetes/kiln-job.yaml");
    let text = std::fs::read_to_string(&job).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A misspelt field (only strict validation catches it) and values of
    // the wrong type: each alone must fail.
    let cases = [
        (
            "backoffLimit: 0",
            "backofLimit: 0",
            "'backofLimit' was unexpected",
        ),
        ("runAsUser: 1000", "runAsUser: kiln", "runAsUser"),
        (
            "image: registry.example.com/kiln:latest",
            "image: [registry.example.com/kiln:latest]",
            "containers.0.image",
        ),
    ];
    for (from, to, said) in cases {
        assert!(text.contains(from), "the Job no longer has {from:?}");
        let broken = dir.path().join("broken.yaml");
        std::fs::write(&broken, text.replacen(from, to, 1)).unwrap();
        let out = validate(&broken, KUBERNETES_VERSIONS[0]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{to:?} passed: {stdout}");
        assert!(
            stdout.contains("did not validate for resource job/kiln-build")
                && stdout.contains(said),
            "{to:?}: {stdout}"
        );
    }
}

#[test]
fn the_job_runs_kilns_image_unprivileged_with_a_registry_cache() {
    let docs = documents(&repo().join("deploy/kubernetes/kiln-job.yaml"));
    let job = docs
        .iter()
        .find(|d| d["kind"] == "Job")
        .expect("a Job in kiln-job.yaml");
    let pod = &job["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let kiln = &containers[0];

    // The image's user (deploy/image/Dockerfile: `useradd --uid 1000`),
    // whose /etc/subuid range the user namespace needs; never privileged.
    let dockerfile = std::fs::read_to_string(repo().join("deploy/image/Dockerfile")).unwrap();
    assert!(dockerfile.contains("useradd --uid 1000 "));
    assert_eq!(pod["securityContext"]["runAsUser"], 1000);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let sc = &kiln["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], true, "newuidmap is setuid");
    assert_eq!(sc["seccompProfile"]["type"], "Unconfined");
    assert_eq!(sc["appArmorProfile"]["type"], "Unconfined");
    assert!(sc.get("capabilities").is_none(), "no added capabilities");

    // The shared cache: from and to the same registry image, every step.
    let args: Vec<&str> = kiln["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "build");
    let value = |flag: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("{flag}=")))
            .unwrap_or_else(|| panic!("no {flag}= in {args:?}"))
    };
    let to = parse_cache_to(value("--cache-to")).unwrap();
    let from = parse_cache_from(value("--cache-from")).unwrap();
    assert_eq!(to.mode, CacheMode::Max);
    match (&to.location, &from) {
        (CacheLocation::Registry(a), CacheLocation::Registry(b)) => assert_eq!(a, b),
        other => panic!("not both type=registry: {other:?}"),
    }

    // The registry credentials are where kiln looks for them.
    let env = |name: &str| {
        kiln["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no {name} in the container's env"))
    };
    let auth_mount = kiln["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "registry-auth")
        .expect("the registry-auth volume mounted");
    assert_eq!(
        auth_mount["mountPath"].as_str().unwrap(),
        env("DOCKER_CONFIG")
    );
    let auth_volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "registry-auth")
        .unwrap();
    assert_eq!(auth_volume["secret"]["items"][0]["path"], "config.json");
    assert_eq!(
        auth_volume["secret"]["items"][0]["key"],
        ".dockerconfigjson"
    );
    // The store on the emptyDir.
    let store_mount = kiln["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "store")
        .expect("the store volume mounted");
    assert_eq!(store_mount["mountPath"].as_str().unwrap(), env("KILN_ROOT"));

    // kiln's own parser takes the arguments as the Job gives them; with
    // `--check` it stops after the Dockerfile's checks, so nothing is
    // pulled or pushed. The context is the ConfigMap's Dockerfile.
    let config = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "kiln-context")
        .expect("the kiln-context ConfigMap");
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("context");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        config["data"]["Dockerfile"].as_str().unwrap(),
    )
    .unwrap();
    let context = *args.last().unwrap();
    assert_eq!(context, "/workspace/context");
    let mounted = kiln["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["mountPath"] == context && m["name"] == "context");
    assert!(mounted, "the context volume is not mounted at {context}");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(&args[..args.len() - 1])
        .arg("--check")
        .arg(&ctx)
        .env("KILN_ROOT", dir.path().join("store"))
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kiln {args:?} --check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
