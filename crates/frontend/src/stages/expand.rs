//! Expansion of one step, instruction by instruction: exactly the words
//! BuildKit expands, with the stage's environment at that point.

use super::env::EnvList;
use super::resolve::{go_atoi, Resolver};
use crate::instructions::{
    check_checksum, check_signal, parse_chmod, parse_mount, parse_port, Command, Instruction,
    Mount, Problem, Source,
};
use crate::{Error, ErrorKind};

impl Resolver<'_> {
    /// Expands `cmd` in place and applies its effect on `env` (ENV, ARG);
    /// returns the parsed mounts of a RUN.
    pub(super) fn expand_command(
        &self,
        cmd: &mut Command,
        env: &mut EnvList,
        globals: &EnvList,
        index: usize,
        stage_label: &str,
    ) -> Result<Vec<Mount>, Error> {
        let c = cmd.clone();
        let ex = |w: &str, env: &EnvList| self.expand(&c, w, env);
        let bad = |m: String, needle: &str| {
            self.error(ErrorKind::Instruction, &c, Problem::new(m).needle(needle))
        };
        let mut mounts = Vec::new();
        match &mut cmd.instruction {
            Instruction::Env(e) => {
                // Every pair expands with the environment from before the
                // instruction, as the Dockerfile reference says (`ENV abc=bye
                // def=$abc` gives def the old abc); then all are set.
                for (k, v) in &mut e.pairs {
                    *k = ex(k, env)?;
                    *v = ex(v, env)?;
                }
                for (k, v) in &e.pairs {
                    env.set(k, v.clone());
                }
            }
            Instruction::Label(l) => {
                for (k, v) in &mut l.pairs {
                    *k = ex(k, env)?;
                    *v = ex(v, env)?;
                }
            }
            Instruction::Arg(a) => {
                for decl in &mut a.args {
                    let value = match (self.opts.build_args.get(&decl.name), &decl.default) {
                        (Some(v), _) => Some(v.clone()),
                        (None, Some(d)) => Some(ex(d, env)?),
                        (None, None) => globals.get(&decl.name).map(str::to_string),
                    };
                    if let Some(v) = &value {
                        env.set(&decl.name, v.clone());
                    }
                    decl.default = value;
                }
            }
            Instruction::Copy(cp) => {
                expand_paths(&mut cp.sources, &mut cp.dest, |w| ex(w, env))?;
                for v in [&mut cp.chown, &mut cp.chmod].into_iter().flatten() {
                    *v = ex(v, env)?;
                }
                // An empty value is no flag at all, as BuildKit reads it
                // (`if cfg.chown != ""`), in the copy and in its history.
                for v in [&mut cp.chown, &mut cp.chmod] {
                    *v = v.take().filter(|v| !v.is_empty());
                }
                for e in &mut cp.excludes {
                    *e = ex(e, env)?;
                }
                if let Some(m) = &cp.chmod {
                    parse_chmod(m).map_err(|m| bad(m, "--chmod"))?;
                }
                if let Some(from) = &cp.from {
                    let src = match go_atoi(from) {
                        Some(n) => Some(n as usize),
                        None => self.stage_named(&from.to_lowercase()),
                    };
                    if src.is_some_and(|s| s >= index) {
                        return Err(bad(
                            format!("cannot copy from stage {from:?}, it needs to be defined before current stage {stage_label:?}"),
                            "--from",
                        ));
                    }
                }
            }
            Instruction::Add(ad) => {
                expand_paths(&mut ad.sources, &mut ad.dest, |w| ex(w, env))?;
                for v in [&mut ad.chown, &mut ad.chmod, &mut ad.checksum]
                    .into_iter()
                    .flatten()
                {
                    *v = ex(v, env)?;
                }
                for v in [&mut ad.chown, &mut ad.chmod, &mut ad.checksum] {
                    *v = v.take().filter(|v| !v.is_empty());
                }
                for e in &mut ad.excludes {
                    *e = ex(e, env)?;
                }
                if let Some(m) = &ad.chmod {
                    parse_chmod(m).map_err(|m| bad(m, "--chmod"))?;
                }
                if let Some(c) = &ad.checksum {
                    check_checksum(c).map_err(|m| bad(m, "--checksum"))?;
                }
            }
            Instruction::Expose(e) => {
                let mut ports = Vec::new();
                for p in &e.ports {
                    let words = self
                        .lexer
                        .process_words(p, &*env)
                        .map_err(|err| self.shell_error(&c, &err))?;
                    for w in words {
                        self.spend(w.len())
                            .map_err(|m| self.error(ErrorKind::Expansion, &c, Problem::new(m)))?;
                        parse_port(&w).map_err(|m| bad(m, p))?;
                        ports.push(w);
                    }
                }
                e.ports = ports;
            }
            Instruction::User(u) => u.user = ex(&u.user, env)?,
            Instruction::Workdir(w) => w.path = ex(&w.path, env)?,
            Instruction::Volume(v) => {
                for p in &mut v.paths {
                    *p = ex(p, env)?;
                    if p.is_empty() {
                        return Err(bad(
                            "VOLUME specified can not be an empty string".into(),
                            "VOLUME",
                        ));
                    }
                }
            }
            Instruction::StopSignal(s) => {
                let written = s.signal.clone();
                s.signal = ex(&s.signal, env)?;
                check_signal(&s.signal).map_err(|m| bad(m, &written))?;
            }
            Instruction::Run(r) => {
                let env = &*env;
                let expand = |w: &str| {
                    let value = self.lexer.process_word(w, env).map_err(|e| e.to_string())?;
                    self.spend(value.len())?;
                    Ok(value)
                };
                for spec in &r.mounts {
                    let m = parse_mount(spec, &expand).map_err(|m| bad(m, "--mount"))?;
                    if !m.from.is_empty() {
                        let lower = m.from.to_lowercase();
                        if let Some(j) = self.stage_named(&lower) {
                            if j >= index {
                                return Err(bad(
                                    format!("cannot mount from stage {:?} to {stage_label:?}, stage needs to be defined before current command", m.from),
                                    "--mount",
                                ));
                            }
                        }
                    }
                    mounts.push(m);
                }
                r.mounts = mounts.iter().map(|m| m.to_string()).collect();
            }
            _ => {}
        }
        Ok(mounts)
    }
}

/// Expands COPY/ADD source paths and the destination; heredoc sources are
/// left for the engine.
fn expand_paths(
    sources: &mut [Source],
    dest: &mut String,
    ex: impl Fn(&str) -> Result<String, Error>,
) -> Result<(), Error> {
    for s in sources {
        if let Source::Path(p) = s {
            *p = ex(p)?;
        }
    }
    *dest = ex(dest)?;
    Ok(())
}
