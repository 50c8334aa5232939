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
        let dir = make_base_images(&[]);
        BaseImages {
            busybox: dir.join("busybox"),
            platforms: dir.join("platforms"),
        }
    })
}

/// A Debian 12 (bookworm) minbase image made by mmdebstrap: an OCI layout
/// with one gzip layer tagged `latest`, config Env PATH and Cmd `["bash"]`.
#[derive(Clone, Debug)]
pub struct DebianImage {
    /// The OCI layout; push it with [`BaseImages::skopeo_push`].
    pub layout: PathBuf,
    /// `sha256:…` of the uncompressed tar mmdebstrap wrote, recorded before
    /// it was compressed: what the layer's diff_id must be.
    pub diff_id: String,
}

/// Builds (or finds cached) the Debian image with
/// `scripts/make-base-images --debian`. Kept apart from [`base_images`]
/// because the first build downloads packages from the Debian mirror in
/// this machine's APT sources and takes a minute or two; later calls find
/// it in the cache at once. Panics with the script's output when it fails.
pub fn debian_image() -> &'static DebianImage {
    static IMAGE: OnceLock<DebianImage> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let layout = make_base_images(&["--debian"]);
        let diff_id_file = layout.join("diff-id");
        let diff_id = std::fs::read_to_string(&diff_id_file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", diff_id_file.display()));
        DebianImage {
            layout,
            diff_id: diff_id.trim().to_string(),
        }
    })
}

/// An OCI layout whose `latest` is an index of two busybox images: this
/// machine's architecture and another (arm64 on amd64 hosts), from
/// `scripts/make-base-images --multiarch`, for RUN under qemu. The first
/// call downloads the other busybox-static package.
pub fn busybox_multiarch() -> &'static PathBuf {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| make_base_images(&["--multiarch"]).join("busybox-multiarch"))
}

/// A synthetic Windows base image from `scripts/make-windows-base`: an OCI
/// layout whose `latest` is an index of three windows/amd64
/// images (os.version 10.0.17763.4377, 10.0.20348.987, 10.0.20348.2340),
/// each one base layer in hcsshim's layout with nanoserver's config. See
/// the script for what the layer holds.
pub fn windows_base() -> &'static PathBuf {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-windows-base");
        let out = Command::new(&script)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// Runs the script with `args` and returns the directory it prints.
fn make_base_images(args: &[&str]) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-base-images");
    let out = Command::new(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} {} failed:\n{}",
        script.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

impl BaseImages {
    /// Copies `layout:latest` to `host/repo:tag` with skopeo (plain HTTP,
    /// anonymous), for tests that need an image in a registry before kiln
    /// pushes anything. Works for any layout here, [`DebianImage::layout`]
    /// included.
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
