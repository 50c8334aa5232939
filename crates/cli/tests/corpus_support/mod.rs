//! The corpus harness's parts: cases, trees, configs, and the programs run.

pub mod case;
pub mod config;
mod selfcheck;
pub mod tools;
pub mod tree;

use kiln_testsupport::{base_images, debian_image, BaseImages, Registry};
use std::path::Path;

/// The registry with the base images, and what the Dockerfiles call them.
pub struct Base {
    pub registry: Registry,
    /// busybox: the `BASE` build arg of every case.
    pub reference: String,
    /// Debian 12: the `DEBIAN` build arg, when a case uses it.
    pub debian: Option<String>,
}

/// Starts a registry and pushes the busybox base image to it, and the
/// Debian one when `debian` (it takes a minute to make the first time).
pub fn start_base(debian: bool) -> Base {
    let registry = Registry::start();
    BaseImages::skopeo_push(&base_images().busybox, &registry.host(), "busybox:latest");
    let reference = format!("{}/busybox:latest", registry.host());
    let debian = debian.then(|| {
        BaseImages::skopeo_push(&debian_image().layout, &registry.host(), "debian:12");
        format!("{}/debian:12", registry.host())
    });
    Base {
        registry,
        reference,
        debian,
    }
}

/// The mount points buildah's RUN leaves behind, empty, where BuildKit
/// removes its stubs after the step (`executor.MountStubsCleaner`) and
/// never makes `/etc/hostname` at all: dropped from the reference while
/// empty (a case that makes one of them empty itself would see kiln's
/// copy reported as unexpected).
const BUILDAH_STUBS: &[&str] = &[
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/run/secrets",
    "/run",
];

pub fn drop_buildah_stubs(tree: &mut tree::Tree, dockerfile: &Path) {
    let text = std::fs::read_to_string(dockerfile).unwrap_or_default();
    if !text.lines().any(|l| l.trim_start().starts_with("RUN")) {
        return;
    }
    for stub in BUILDAH_STUBS {
        let empty = match tree.get(*stub).map(|n| &n.kind) {
            Some(tree::Kind::File(_, 0)) => true,
            Some(tree::Kind::Dir) => {
                let prefix = format!("{stub}/");
                !tree.keys().any(|k| k.starts_with(&prefix))
            }
            _ => false,
        };
        if empty {
            tree.remove(*stub);
        }
    }
}
