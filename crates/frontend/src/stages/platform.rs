//! Platforms are kiln-oci's one [`Platform`] type (containerd's parsing and
//! normalisation, Windows OS builds); the front end uses it for
//! `--platform`, `FROM --platform` and the platform build args.

pub use kiln_oci::Platform;
