//! ARG/ENV scoping, variable expansion and stage resolution, as BuildKit's
//! Dockerfile frontend (`dockerfile2llb`) does them: which stages a target
//! needs, in what order, and each step with its variables expanded.
//!
//! The rules, from BuildKit:
//! * ARGs before the first FROM are global. They are visible in FROM lines
//!   (image and `--platform`) only; a stage sees one after `ARG NAME`.
//! * The automatic platform ARGs (`TARGETPLATFORM`, `TARGETOS`, …,
//!   `BUILDPLATFORM`, …) and `TARGETSTAGE` are global ARGs too; a
//!   `--build-arg` overrides them.
//! * A `--build-arg` sets only ARGs that are declared; it beats the default.
//! * ARG and ENV share one environment per stage: a later ENV overrides an
//!   ARG, a later ARG with a value overrides an ENV. A stage built FROM
//!   another stage starts with that stage's final environment (its ARGs
//!   included); sibling stages never see each other's.
//! * Proxy build args (`HTTP_PROXY`, `no_proxy`, …) need no declaration: they
//!   go to every RUN ([`BuildPlan::proxy_env`]) but are not expanded in
//!   instructions and never enter the image.
//! * Expanded: ENV, LABEL, ARG defaults, ADD/COPY paths and `--chown`,
//!   `--chmod`, `--exclude`, `ADD --checksum`, EXPOSE (with word splitting),
//!   USER, WORKDIR, VOLUME, STOPSIGNAL, RUN `--mount` options, FROM and its
//!   `--platform` (global ARGs only). Not expanded: RUN, CMD, ENTRYPOINT,
//!   SHELL, HEALTHCHECK, ONBUILD (the shell or the child build does it),
//!   heredoc bodies (see [`crate::instructions::Heredoc::expand`]), and
//!   `COPY --from` / `--mount from=`, where a variable is an error.
//! * kiln only: all expanded words of a Dockerfile add up to at most
//!   [`MAX_EXPANDED_TOTAL`] bytes (64 MiB), on top of the per-word limits
//!   of [`crate::shell`].

mod env;
mod expand;
mod platform;
mod render;
mod resolve;

use std::collections::{BTreeMap, BTreeSet};

pub use env::StepEnv;
pub use platform::Platform;
pub use resolve::{resolve, MAX_EXPANDED_TOTAL};

use crate::instructions::{Command, Mount};

/// What [`resolve`] needs besides the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOptions {
    /// `--build-arg NAME=VALUE` values.
    pub build_args: BTreeMap<String, String>,
    /// The stage to build; the last stage when `None`.
    pub target: Option<String>,
    /// The platform the image is for.
    pub target_platform: Platform,
    /// The platform the build runs on.
    pub build_platform: Platform,
    /// The ENV of base images, by reference as written in FROM after
    /// expansion, when the caller already has their configs. A base not
    /// listed is assumed to set only the default `PATH` (what BuildKit adds
    /// to an image without one), so `$PATH` still expands sensibly.
    pub image_env: BTreeMap<String, Vec<(String, String)>>,
    /// Names of `--build-context`s (lower case). A stage of such a name is
    /// replaced by the context, as in BuildKit: FROM, `--from` and mounts
    /// that name it find the context, so its steps run only if it is the
    /// target.
    pub named_contexts: BTreeSet<String>,
}

impl Default for ResolveOptions {
    fn default() -> ResolveOptions {
        ResolveOptions {
            build_args: BTreeMap::new(),
            target: None,
            target_platform: Platform::host(),
            build_platform: Platform::host(),
            image_env: BTreeMap::new(),
            named_contexts: BTreeSet::new(),
        }
    }
}

/// The stages a build runs, in an order where every stage comes after the
/// stages it needs. The target is the last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPlan {
    /// The needed stages; stages the target does not need are left out.
    pub stages: Vec<Stage>,
    /// Global ARGs after build args and defaults, platform ARGs included.
    pub global_args: Vec<(String, String)>,
    /// Proxy variables from the build args, given to every RUN.
    pub proxy_env: Vec<(String, String)>,
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// An image reference, as written (after expansion).
    Image(String),
    /// An earlier stage, by its index in the Dockerfile.
    Stage(usize),
    /// The empty file system.
    Scratch,
}

/// Something a stage needs before it can run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dependency {
    /// Another stage, by its index in the Dockerfile.
    Stage(usize),
    /// An image used by `COPY --from` or `RUN --mount from=`.
    Image(String),
}

/// One stage of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Index of the stage in the Dockerfile (0 for the first FROM).
    pub index: usize,
    /// The name after `AS`, lower-cased.
    pub name: Option<String>,
    /// What the stage starts from.
    pub base: Base,
    /// The platform the stage builds for.
    pub platform: Platform,
    /// Line of the FROM instruction.
    pub line: usize,
    /// Stages and images this stage needs, its base stage included, sorted.
    pub dependencies: Vec<Dependency>,
    /// The steps, expanded.
    pub steps: Vec<Step>,
}

/// One instruction of a stage, expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The instruction with BuildKit's expansions applied; its location is
    /// where it was written (for an ONBUILD trigger: the FROM line).
    pub command: Command,
    /// The variables in effect when the step runs (base image ENV, ARGs and
    /// ENVs so far), in definition order. A RUN sees these plus
    /// [`BuildPlan::proxy_env`].
    pub env: StepEnv,
    /// RUN only: the `--mount`s, parsed after expansion.
    pub mounts: Vec<Mount>,
    /// For a step that an ONBUILD trigger of the base stage added: that
    /// stage's index.
    pub onbuild_from: Option<usize>,
}
