//! kiln's build engine.
//!
//! The front end's [`kiln_frontend::stages::BuildPlan`] goes in; images come
//! out. Like BuildKit, the work is split into parts that know only their
//! neighbours' types:
//!
//! * [`backend`]: the [`backend::BuildBackend`] trait and the native backend
//!   that runs a build in this process;
//! * [`solver`]: runs a plan's stages, independent ones concurrently;
//! * [`imagefs`]: a read-only view of an image's file system, merged from
//!   its layer tars without unpacking them (path lookup, symlink resolution
//!   inside the root, `/etc/passwd`, extracting subtrees);
//! * [`copy`]: COPY and ADD: which files a step adds and with what metadata,
//!   as a list of layer entries;
//! * [`export`]: writing the result to the store, an OCI layout, a
//!   docker-archive, a tar or a directory, or pushing it;
//! * [`events`]: what a build reports while it runs.
#![deny(missing_docs)]

pub mod backend;
pub mod copy;
pub mod events;
pub mod export;
pub mod imagefs;
pub mod solver;
