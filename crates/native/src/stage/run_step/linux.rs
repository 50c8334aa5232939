//! RUN of a Linux image on this Linux host: the OCI runtime on a writable
//! snapshot of the stage's layers, with the step's `--mount`s, network,
//! user and environment.

use super::{not_supported, process_failed, TAIL_LINES};
use crate::imagefs::{RootDir, UserDb};
use crate::run;
use crate::run::mounts::{MountFrom, MountInputs, Prepared};
use crate::solver::Finished;
use crate::stage::copy_step::{From, FromOf};
use crate::stage::{StageContext, StageOutput, State, StepAt};
use kiln_backend::events::BuildEvent;
use kiln_backend::BuildError;
use kiln_frontend::instructions::{Mount, Network, RunInstruction, Security};
use kiln_frontend::stages::{Stage, Step};
use kiln_frontend::ErrorKind;
use kiln_oci::Platform;
use kiln_runtime::{ContainerSpec, MountSpec, Network as NetworkMode};
use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The hostname RUN steps see, BuildKit's.
const HOSTNAME: &str = "buildkitsandbox";

/// The PATH a step gets when its environment has none (BuildKit's and
/// docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl State {
    /// Runs the step in a container of the OCI runtime.
    pub(super) fn linux_run(
        &mut self,
        at: &StepAt,
        instr: &RunInstruction,
        platform: &Platform,
    ) -> Result<(), BuildError> {
        let StepAt {
            ctx,
            stage,
            step,
            index,
            done,
            cancel,
        } = *at;
        let line = step.command.start_line;
        let fail = |m: String| ctx.error_at(line, ErrorKind::Io, m, None);
        let executor = run::executor_for(ctx.exec, platform);
        executor
            .supports(platform)
            .map_err(|u| not_supported(ctx, line, &u.message, &u.help))?;
        if !rustix::process::geteuid().is_root() {
            // The CLI re-executes a user with subordinate ids in a user
            // namespace, where it is root; without them there is no way
            // to give the files of a layer their owners.
            return Err(not_supported(
                ctx,
                line,
                "RUN needs root: run kiln as root, or give your user subordinate id ranges for a rootless build",
                "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER (the kiln CLI then builds in a user namespace)",
            ));
        }
        let network = ctx.run.network(instr.network);
        if network == Network::Host && instr.network == Network::Default && !ctx.allow_network_host
        {
            return Err(BuildError::Request(
                "--network=host needs the network.host entitlement: add --allow network.host"
                    .into(),
            ));
        }
        if instr.network == Network::Host && !ctx.allow_network_host {
            // BuildKit's entitlement: a Dockerfile alone may not put a step
            // on the host's network.
            let mut err = kiln_frontend::Error::new(
                ErrorKind::Semantic,
                "RUN --network=host needs the network.host entitlement, which this build does not grant",
            );
            err.help = Some("build with `kiln build --allow network.host` to allow it".into());
            return Err(ctx.ast.error_at(err, line, Some("--network=host")).into());
        }
        if instr.security == Security::Insecure {
            return Err(not_supported(
                ctx,
                line,
                "RUN --security=insecure is not supported by kiln's native backend",
                "kiln does not run privileged build steps; drop --security=insecure",
            ));
        }
        let (argv, history_args, shell_form, script) = self.command(instr);
        let layers = run::layers(&self.layers, self.builder.config()).map_err(fail)?;
        let snapshot = executor.prepare(ctx.store, &layers).map_err(fail)?;
        let (uid, gid, groups) = self
            .run_user(ctx, snapshot.rootfs())
            .map_err(|e| ctx.error_at(line, ErrorKind::Io, e, Some("RUN")))?;
        let cwd = match self.builder.config().working_dir() {
            "" => "/".to_string(),
            dir => dir.to_string(),
        };

        let scratch = self.scratch(ctx, line)?;
        let inputs = MountInputs {
            exec: executor,
            store: ctx.store,
            scratch: scratch.path(),
            secrets: ctx.secrets,
            ssh: ctx.ssh,
            workdir: &cwd,
            uid,
            gid,
        };
        let mut mounts = Prepared::default();
        if let Some((name, body)) = script {
            // BuildKit's shebang heredoc: the body as an executable file in a
            // read-only /dev/pipes, run by path so its `#!` line counts.
            let dir = scratch.path().join("pipes");
            let file = dir.join(name);
            std::fs::create_dir_all(&dir)
                .and_then(|_| std::fs::write(&file, body))
                .and_then(|_| {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
                })
                .map_err(|e| fail(format!("writing the heredoc to {}: {e}", file.display())))?;
            mounts.mounts.push(MountSpec::Bind {
                source: dir,
                target: PathBuf::from("/dev/pipes"),
                readonly: true,
            });
        }
        for mount in &step.mounts {
            let from = self.mount_from(ctx, stage, line, done, mount)?;
            mounts
                .add(&inputs, mount, from)
                .map_err(|e| fail(format!("RUN --mount={mount}: {e}")))?;
        }

        let mut env = run_env(step, &ctx.plan.proxy_env);
        env.extend(mounts.env.iter().map(|(k, v)| format!("{k}={v}")));
        let network = match network {
            Network::None => NetworkMode::None,
            Network::Host => NetworkMode::Host,
            Network::Default => NetworkMode::Private,
        };
        let spec = ContainerSpec {
            id: executor.container_id(),
            bundle: scratch.path().join("bundle"),
            rootfs: snapshot.rootfs().to_path_buf(),
            args: argv.clone(),
            env,
            cwd,
            uid,
            gid,
            additional_gids: groups,
            hostname: HOSTNAME.into(),
            mounts: mounts.mounts.clone(),
            network,
            hosts: Some(hosts_file(&ctx.run.add_hosts)),
            resolv_conf: None,
            shm_size: ctx.run.shm_size,
            rlimits: ctx.run.ulimits.clone(),
        };
        let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
        let outcome = executor.run(&spec, cancel.flag(), &mut |_stream, text: &str| {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(text.to_string());
            ctx.events.send(BuildEvent::Output {
                stage: stage.index,
                index,
                line: text.to_string(),
            });
        });
        if let Some(why) = outcome.as_ref().ok().and_then(|o| o.warning.as_deref()) {
            ctx.warn_once(line, why);
        }
        let status = outcome
            .map_err(|e| fail(format!("RUN {}: {e}", argv.join(" "))))?
            .status;
        if cancel.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        if !status.success() {
            let err = process_failed(&argv.join(" "), status.code.into(), &tail);
            return Err(ctx.ast.error_at(err, line, Some("RUN")).into());
        }
        // Mounts go first: an rw bind or cache must not be written to while
        // the layer is taken, and nothing of theirs is part of it.
        drop(mounts);
        let entries = snapshot.changes().map_err(|e| fail(e.to_string()))?;
        let layer = self.write_layer(ctx, line, entries)?;
        snapshot
            .commit(&layer.diff_id)
            .map_err(|e| fail(e.to_string()))?;
        self.record_run(step, &history_args, shell_form, layer.diff_id);
        Ok(())
    }

    /// The uid, gid and supplementary gids of the current USER, as runc
    /// resolves `USER name[:group]` in the image's `/etc/passwd` and
    /// `/etc/group`.
    ///
    /// The files are read from the step's mounted `rootfs`, so a RUN
    /// indexes no layer (a Debian base's index took 0.3 s of every cold
    /// build whose first step is a RUN); where that cannot serve (a
    /// database file that is a symlink), from the image's view.
    fn run_user(
        &mut self,
        ctx: &StageContext,
        rootfs: &Path,
    ) -> Result<(u32, u32, Vec<u32>), String> {
        let on_disk = RootDir::open(rootfs)
            .map_err(|e| e.to_string())
            .and_then(|root| self.run_user_in(&root));
        match on_disk {
            Ok(ids) => Ok(ids),
            Err(_) => {
                self.fs.catch_up(ctx).map_err(|e| e.to_string())?;
                self.run_user_in(self.fs.indexed())
            }
        }
    }

    /// The uid and gid a RUN runs as for the current USER, from the user
    /// database `db`.
    fn user_ids_in(&self, db: &dyn crate::imagefs::UserDb) -> Result<(u32, u32), String> {
        let user = self.builder.config().user().to_string();
        if user.is_empty() {
            return Ok((0, 0));
        }
        let (name, group) = match user.split_once(':') {
            Some((n, g)) => (n, Some(g)),
            None => (user.as_str(), None),
        };
        // BuildKit's fast path (`ParseUIDGID`): a user and a group that are
        // both `root` or numbers need no /etc/passwd (busybox has none).
        let id = |part: &str| {
            if part == "root" {
                Some(0)
            } else {
                part.parse::<u32>().ok()
            }
        };
        if let Some((uid, gid)) = group.and_then(|g| Some((id(name)?, id(g)?))) {
            return Ok((uid, gid));
        }
        let (uid, primary) = match db.user(name) {
            Ok(ids) => ids,
            Err(e) => match name.parse::<u32>() {
                Ok(uid) => (uid, 0),
                Err(_) => return Err(format!("unable to find user {name}: {e}")),
            },
        };
        let gid = match group {
            None => primary,
            Some(g) => match db.group(g) {
                Ok(gid) => gid,
                Err(e) => g
                    .parse::<u32>()
                    .map_err(|_| format!("unable to find group {g}: {e}"))?,
            },
        };
        Ok((uid, gid))
    }

    fn run_user_in(&self, db: &dyn UserDb) -> Result<(u32, u32, Vec<u32>), String> {
        let (uid, gid) = self.user_ids_in(db)?;
        let user = self.builder.config().user().to_string();
        let (name, group) = match user.split_once(':') {
            Some((n, g)) => (n, Some(g)),
            None => (user.as_str(), None),
        };
        // No USER is root, whose groups come from the image's files too.
        let name = if name.is_empty() { "0" } else { name };
        let groups = db
            .groups(name, group.is_some())
            .map_err(|e| format!("reading /etc/group: {e}"))?;
        Ok((uid, gid, groups))
    }

    /// What a mount's `from=` names: the context (none given), a stage, a
    /// named context or an image.
    fn mount_from<'a>(
        &self,
        ctx: &StageContext<'a>,
        stage: &Stage,
        line: usize,
        done: &Finished<StageOutput>,
        mount: &Mount,
    ) -> Result<MountFrom<'a>, BuildError> {
        if mount.from.is_empty() {
            return match ctx.context {
                Some(dir) => Ok(MountFrom::Dir(dir, ctx.ignore)),
                None => Err(ctx.error_at(
                    line,
                    ErrorKind::Semantic,
                    format!("RUN --mount={mount}: this build has no context to mount from"),
                    None,
                )),
            };
        }
        Ok(
            match self.source(ctx, stage, line, done, &mount.from, FromOf::Mount)? {
                From::Dir(dir, ignore) => MountFrom::Dir(dir, ignore),
                From::Fs(fs, layers) => MountFrom::Fs {
                    layers,
                    fs: fs.resolved(ctx)?,
                },
            },
        )
    }
}

/// The step's environment as `KEY=VALUE`: its variables (later ones win),
/// the proxy build args, and the default PATH when none is set.
fn run_env(step: &Step, proxy: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in step.env.to_vec().iter().chain(proxy) {
        match out.iter_mut().find(|(ok, _)| ok == k) {
            Some(slot) => slot.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        out.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// BuildKit's `/etc/hosts` for build containers.
/// BuildKit's `/etc/hosts`, then the `--add-host` entries.
fn hosts_file(extra: &[(String, std::net::IpAddr)]) -> String {
    let mut hosts =
        format!("127.0.0.1\tlocalhost {HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (host, ip) in extra {
        hosts.push_str(&format!("{ip}\t{host}\n"));
    }
    hosts
}
