//! The corpus harness's parts: cases, trees, configs, and the programs run.

pub mod case;
pub mod config;
mod selfcheck;
pub mod tools;
pub mod tree;

use kiln_testsupport::{base_images, BaseImages, Registry};

/// The registry with the base image, and what the Dockerfiles call it.
pub struct Base {
    pub registry: Registry,
    pub reference: String,
}

/// Starts a registry and pushes the busybox base image to it.
pub fn start_base() -> Base {
    let registry = Registry::start();
    BaseImages::skopeo_push(&base_images().busybox, &registry.host(), "busybox:latest");
    let reference = format!("{}/busybox:latest", registry.host());
    Base {
        registry,
        reference,
    }
}
