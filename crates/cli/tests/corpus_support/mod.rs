//! The corpus harness's parts: cases, trees, configs, and the programs run.

pub mod case;
pub mod config;
mod selfcheck;
pub mod tools;
pub mod tree;

use kiln_testsupport::{base_images, debian_image, BaseImages, Registry};

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
