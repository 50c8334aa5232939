//! The programs the corpus runs: buildah (the reference), kiln, umoci; and
//! reading an OCI layout's config.

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What both builders are asked to build.
pub struct BuildRequest<'a> {
    pub context: &'a Path,
    pub dockerfile: &'a Path,
    /// Always includes BASE.
    pub build_args: Vec<(String, String)>,
    /// name → absolute directory.
    pub build_contexts: Vec<(String, PathBuf)>,
    pub target: Option<&'a str>,
    /// id → absolute secret file.
    pub secrets: Vec<(String, PathBuf)>,
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("running {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{:?} failed ({}):\n{}{}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// buildah with its own storage in a tempdir (vfs, so nothing needs
/// overlay mounts and the host's storage is never touched).
pub struct Buildah {
    dir: tempfile::TempDir,
}

impl Buildah {
    pub fn new() -> Buildah {
        let dir = tempfile::tempdir().expect("creating buildah's tempdir");
        std::fs::write(dir.path().join("auth.json"), "{}").expect("writing buildah's auth.json");
        Buildah { dir }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("runroot"))
            .args(["--storage-driver", "vfs"])
            .env("BUILDAH_ISOLATION", "chroot")
            // buildah reads registries.conf and policy.json from here; the
            // host's defaults are what we want, but never a user's auth.
            .env("REGISTRY_AUTH_FILE", self.dir.path().join("auth.json"));
        c
    }

    /// `buildah bud --format docker` (the docker format keeps Healthcheck,
    /// OnBuild and Shell, which OCI configs drop), then pushes the image to
    /// `layout` as `img` and returns its docker config.
    pub fn build(&self, req: &BuildRequest, tag: &str, layout: &Path) -> Result<Value, String> {
        let mut c = self.cmd();
        c.args(["bud", "--format", "docker", "--tls-verify=false", "--quiet"])
            .arg("-f")
            .arg(req.dockerfile)
            .args(["-t", tag]);
        for (k, v) in &req.build_args {
            c.arg("--build-arg").arg(format!("{k}={v}"));
        }
        for (k, v) in &req.build_contexts {
            c.arg("--build-context").arg(format!("{k}={}", v.display()));
        }
        if let Some(t) = req.target {
            c.args(["--target", t]);
        }
        for (id, src) in &req.secrets {
            c.arg("--secret")
                .arg(format!("id={id},src={}", src.display()));
        }
        c.arg(req.context);
        // runc 1.1 (under buildah) sometimes fails to seal its memfd copy
        // with EBUSY when containers start at once; nothing ran, so retry.
        let mut tries = 0;
        loop {
            match run(&mut c) {
                Err(e) if tries < 3 && e.contains("sealing memfd") => tries += 1,
                other => {
                    other?;
                    break;
                }
            }
        }
        let mut push = self.cmd();
        push.args(["push", "--quiet", tag])
            .arg(format!("oci:{}:img", layout.display()));
        run(&mut push)?;
        let mut inspect = self.cmd();
        inspect.args(["inspect", "--type", "image", tag]);
        let out = run(&mut inspect)?;
        let v: Value = serde_json::from_str(&out).map_err(|e| format!("buildah inspect: {e}"))?;
        Ok(v["Docker"]["config"].clone())
    }
}

/// `kiln build` (the binary at `kiln`) with the store at `store`, writing an OCI layout directory
/// to `layout` (its image tagged `img`).
pub fn kiln_build(
    kiln: &Path,
    store: &Path,
    registry_host: &str,
    req: &BuildRequest,
    layout: &Path,
    extra_env: &[(&str, &str)],
) -> Result<(), String> {
    let mut c = Command::new(kiln);
    // buildah grants --network=host without asking; kiln, like BuildKit,
    // needs the entitlement.
    c.arg("build")
        .arg("-f")
        .arg(req.dockerfile)
        .args(["-t", "img", "--allow", "network.host"]);
    for (k, v) in &req.build_args {
        c.arg("--build-arg").arg(format!("{k}={v}"));
    }
    for (k, v) in &req.build_contexts {
        c.arg("--build-context").arg(format!("{k}={}", v.display()));
    }
    if let Some(t) = req.target {
        c.args(["--target", t]);
    }
    for (id, src) in &req.secrets {
        c.arg("--secret")
            .arg(format!("id={id},src={}", src.display()));
    }
    c.arg("--output")
        .arg(format!("type=oci,dest={}", layout.display()))
        .arg(req.context)
        .env_remove("SOURCE_DATE_EPOCH")
        .env("KILN_ROOT", store)
        .env("KILN_INSECURE_REGISTRIES", registry_host);
    for (k, v) in extra_env {
        c.env(k, v);
    }
    run(&mut c).map(drop)
}

/// `umoci raw unpack` of the first image of `layout` (by the tag its index
/// gives it) into `bundle/rootfs`; returns that path. (`umoci unpack` would
/// also write a runtime config, which fails for a USER missing from the
/// image's /etc/passwd — legitimate in an image.)
pub fn umoci_unpack(layout: &Path, bundle: &Path) -> Result<PathBuf, String> {
    let p = layout.join("index.json");
    let index: Value =
        serde_json::from_slice(&fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?)
            .map_err(|e| format!("{}: {e}", p.display()))?;
    let tag = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .ok_or_else(|| {
            format!(
                "{}: the first manifest has no ref.name annotation, so umoci cannot name it",
                p.display()
            )
        })?;
    let rootfs = bundle.join("rootfs");
    fs::create_dir_all(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    run(Command::new("umoci")
        .args(["raw", "unpack"])
        .arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&rootfs))?;
    Ok(rootfs)
}

/// A JSON blob of an OCI layout.
pub fn read_blob(layout: &Path, digest: &str) -> Result<Vec<u8>, String> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("unsupported digest {digest}"))?;
    let p = layout.join("blobs/sha256").join(hex);
    fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
}

fn json_blob(layout: &Path, digest: &str) -> Result<Value, String> {
    serde_json::from_slice(&read_blob(layout, digest)?).map_err(|e| format!("{digest}: {e}"))
}

/// The manifest digest and manifest of the only image in `layout` (an
/// index entry pointing to a nested index is followed to its first
/// manifest).
pub fn manifest(layout: &Path) -> Result<(String, Value), String> {
    let p = layout.join("index.json");
    let index: Value =
        serde_json::from_slice(&fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?)
            .map_err(|e| format!("{}: {e}", p.display()))?;
    let mut desc = index["manifests"][0].clone();
    loop {
        let digest = desc["digest"]
            .as_str()
            .ok_or_else(|| format!("no manifest in {}", p.display()))?
            .to_string();
        let v = json_blob(layout, &digest)?;
        if v.get("manifests").is_some() {
            desc = v["manifests"][0].clone();
            continue;
        }
        return Ok((digest, v));
    }
}

/// The image config of the only image in `layout`.
pub fn image_config(layout: &Path) -> Result<Value, String> {
    let (_, m) = manifest(layout)?;
    let digest = m["config"]["digest"]
        .as_str()
        .ok_or("manifest has no config digest")?;
    json_blob(layout, digest)
}
