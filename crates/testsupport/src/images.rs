//! Base images built locally by `scripts/make-base-images`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// OCI layouts, each with one image tagged `latest`.
#[derive(Clone, Debug)]
pub struct BaseImages {
    /// busybox from Debian's busybox-static.
    pub busybox: PathBuf,
    /// An index of small data images for four platforms (see the script).
    pub platforms: PathBuf,
}

/// Builds (or finds cached) base images; panics with the script's output
/// when it fails, since no registry test can run without them.
pub fn base_images() -> &'static BaseImages {
    static IMAGES: OnceLock<BaseImages> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-base-images");
        let out = Command::new(&script)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        BaseImages {
            busybox: dir.join("busybox"),
            platforms: dir.join("platforms"),
        }
    })
}

impl BaseImages {
    /// Copies `layout:latest` to `host/repo:tag` with skopeo (plain HTTP,
    /// anonymous), for tests that need an image in a registry before kiln
    /// pushes anything.
    pub fn skopeo_push(layout: &Path, host: &str, repo_tag: &str) {
        let out = Command::new("skopeo")
            .args(["copy", "--all", "--dest-tls-verify=false", "--quiet"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{host}/{repo_tag}"))
            .output()
            .expect("running skopeo (apt-get install skopeo)");
        assert!(
            out.status.success(),
            "skopeo copy failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
