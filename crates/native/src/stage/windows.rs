//! The steps of a Windows stage that need no container, built on any host
//! (`shared/design/windows-images.md` §3).
//!
//! COPY and ADD run the same rules as on Linux, on the image's `C:` drive
//! seen as a POSIX tree (`Files/` stripped, names compared without case;
//! see [`crate::imagefs::ImageFs::open_as`]); their entries are then
//! written as a Windows layer. Each path is written in the spelling the
//! image already has, directories the base has are written again with the
//! base's own records (security descriptor, attributes, times) so the
//! merged view keeps them, and new ones get BuildKit's descriptor.
//! WORKDIR makes the same kind of layer with the directories it creates.

use super::{StageContext, State};
use crate::imagefs::ImageFs;
use kiln_backend::BuildError;
use kiln_frontend::instructions::{AddInstruction, CopyInstruction};
use kiln_frontend::ErrorKind;
use kiln_oci::windows::path::{display, fold_case, resolve};
use kiln_oci::windows::{
    entries_from_layer, PaxTime, WindowsEntry, WindowsKind, WindowsLayerOptions, WindowsLayerWriter,
};
use kiln_oci::{LayerDescriptor, LayerEntry, LayerFormat};
use std::collections::HashSet;

impl State {
    /// Whether the stage's image is a Windows image.
    pub(super) fn is_windows(&self) -> bool {
        self.fs.format() == LayerFormat::Windows
    }

    /// The WORKDIR COPY destinations are relative to, as a path of the
    /// POSIX view of `C:`.
    pub(super) fn windows_copy_workdir(&self) -> String {
        let wd = self.builder.config().working_dir();
        posix(&resolve("", wd).unwrap_or_default())
    }

    /// A COPY for a Windows stage: the destination as a path of the view of
    /// `C:` (a trailing separator kept: it makes the destination a
    /// directory); `--chown` and `--chmod` refused, as no Unix owner or
    /// mode reaches a Windows layer.
    pub(super) fn windows_copy(
        &self,
        ctx: &StageContext,
        line: usize,
        instr: &CopyInstruction,
    ) -> Result<CopyInstruction, BuildError> {
        refuse_owner_mode(ctx, line, instr.chown.as_deref(), instr.chmod.as_deref())?;
        Ok(CopyInstruction {
            dest: self.windows_dest(ctx, line, &instr.dest)?,
            ..instr.clone()
        })
    }

    /// [`State::windows_copy`] for ADD.
    pub(super) fn windows_add(
        &self,
        ctx: &StageContext,
        line: usize,
        instr: &AddInstruction,
    ) -> Result<AddInstruction, BuildError> {
        refuse_owner_mode(ctx, line, instr.chown.as_deref(), instr.chmod.as_deref())?;
        Ok(AddInstruction {
            dest: self.windows_dest(ctx, line, &instr.dest)?,
            ..instr.clone()
        })
    }

    fn windows_dest(
        &self,
        ctx: &StageContext,
        line: usize,
        dest: &str,
    ) -> Result<String, BuildError> {
        let wd = self.builder.config().working_dir();
        let components = resolve(dest, wd).map_err(|e| {
            ctx.error_at(
                line,
                ErrorKind::Instruction,
                format!("destination {e}"),
                Some(dest),
            )
        })?;
        let mut out = posix(&components);
        let is_dir = dest.ends_with(['/', '\\']) || dest == "." || dest.ends_with(":.");
        if is_dir && out != "/" {
            out.push('/');
        }
        Ok(out)
    }

    /// The absolute directory a WORKDIR `path` names, as the config holds
    /// it (`C:\app`).
    pub(super) fn windows_workdir_path(&self, path: &str) -> Result<String, String> {
        let wd = self.builder.config().working_dir();
        resolve(path, wd)
            .map(|c| display(&c))
            .map_err(|e| format!("WORKDIR {e}"))
    }

    /// WORKDIR in a Windows stage: a layer of the directories it creates
    /// (with the existing ones above them replayed), then the config.
    pub(super) fn windows_workdir(
        &mut self,
        ctx: &StageContext,
        line: usize,
        path: &str,
    ) -> Result<(), BuildError> {
        let fail = |m: String| ctx.error_at(line, ErrorKind::Io, m, Some(path));
        let wd = self.builder.config().working_dir();
        let components = resolve(path, wd).map_err(|e| fail(format!("WORKDIR {e}")))?;
        let abs = display(&components);
        let fs = self.fs.indexed();
        let mtime = ctx.epoch.unwrap_or(ctx.now);
        let mut entries = Vec::new();
        let mut prefix = String::new();
        for c in &components {
            prefix.push('/');
            prefix.push_str(c);
            match fs.lookup(&prefix) {
                Some(e) if e.is_dir() => {}
                Some(_) => {
                    return Err(fail(format!(
                        "WORKDIR {abs}: {} exists and is not a directory",
                        display(&split(&fs.spell(&prefix)))
                    )))
                }
                None => entries.push(LayerEntry::dir(&prefix[1..]).with_mtime(mtime)),
            }
        }
        let layer = self.commit_windows(ctx, line, entries)?;
        self.builder.workdir(&abs, Some(layer.diff_id));
        Ok(())
    }

    /// Writes a COPY, ADD or WORKDIR change set as a Windows layer on top
    /// of the stage.
    pub(super) fn commit_windows(
        &mut self,
        ctx: &StageContext,
        line: usize,
        entries: Vec<LayerEntry>,
    ) -> Result<LayerDescriptor, BuildError> {
        let fail = |m: String| ctx.error_at(line, ErrorKind::Io, m, None);
        let entries = entries_from_layer(entries).map_err(|e| fail(e.to_string()))?;
        let entries = over_base(self.fs.indexed(), entries).map_err(fail)?;
        let writer = WindowsLayerWriter::new(WindowsLayerOptions {
            compression: ctx.compression,
            source_date_epoch: ctx.epoch,
            ..WindowsLayerOptions::default()
        });
        let ingest = ctx.store.ingest_prehashed()?;
        let (layer, ingest) = writer
            .write(entries, ingest)
            .map_err(|e| fail(e.to_string()))?;
        ingest.commit(Some(layer.digest))?;
        self.put_layer(&layer);
        Ok(layer)
    }
}

/// `--chown` and `--chmod` mean Unix owners and modes, which the Windows
/// importer ignores; BuildKit drops them silently, kiln says so.
fn refuse_owner_mode(
    ctx: &StageContext,
    line: usize,
    chown: Option<&str>,
    chmod: Option<&str>,
) -> Result<(), BuildError> {
    let (flag, value) = match (chown, chmod) {
        (Some(c), _) => ("--chown", c),
        (None, Some(m)) => ("--chmod", m),
        (None, None) => return Ok(()),
    };
    Err(ctx.error_at(
        line,
        ErrorKind::Instruction,
        format!(
            "NotSupported: {flag}={value} in a Windows image: Windows files have no Unix owner or \
             mode (their access comes from a security descriptor, which kiln writes as BuildKit \
             does: Administrators and SYSTEM full control, Users read and execute)"
        ),
        Some(flag),
    ))
}

/// Fits new entries onto the base: each path in the base's spelling, a
/// directory the base has written with the base's records and times, and
/// a link to a directory the base has marked as a directory link, and
/// every existing ancestor no entry names added the same way (the writer
/// would otherwise create it anew, with a default descriptor, over the
/// base's `C:\Windows` or `C:\ProgramData`). A file over a directory, or
/// the reverse, is refused: what Windows makes of such a layer is
/// unverified.
fn over_base(fs: &ImageFs, mut entries: Vec<WindowsEntry>) -> Result<Vec<WindowsEntry>, String> {
    let mut named: HashSet<String> = HashSet::new();
    for e in &mut entries {
        let spelled = fs.spell(&posix(&e.path));
        e.path = split(&spelled);
        named.insert(fold_case(&spelled));
        if let WindowsKind::Symlink { target, is_dir } = &mut e.kind {
            // Windows must know a link to a directory as one; the target
            // may be in the base rather than in this layer.
            let parent = posix(&e.path[..e.path.len().saturating_sub(1)]);
            let path = if target.starts_with('/') {
                target.clone()
            } else {
                format!("{parent}/{target}")
            };
            if let Ok(resolved) = fs.resolve(&path, true) {
                *is_dir |= fs.lookup(&resolved).is_some_and(|t| t.is_dir());
            }
        }
        let Some(found) = fs.lookup(&spelled) else {
            continue;
        };
        match (&e.kind, found.is_dir()) {
            (WindowsKind::Dir, true) => {
                e.replay = Some(found.records.clone());
                e.mtime = PaxTime::new(found.mtime, found.mtime_nanos);
            }
            (WindowsKind::Whiteout, _)
            | (WindowsKind::File(_) | WindowsKind::Symlink { .. }, false) => {}
            (WindowsKind::Dir, false) => {
                return Err(format!(
                    "NotSupported: {} is a file in the base image; replacing it with a directory \
                     in a Windows layer is not supported",
                    display(&e.path)
                ))
            }
            (_, true) => {
                return Err(format!(
                    "NotSupported: {} is a directory in the base image; replacing it with a file \
                     in a Windows layer is not supported",
                    display(&e.path)
                ))
            }
        }
    }
    let mut ancestors = Vec::new();
    for e in &entries {
        for n in 1..e.path.len() {
            let path = posix(&e.path[..n]);
            if !named.insert(fold_case(&path)) {
                continue;
            }
            match fs.lookup(&path) {
                Some(found) if found.is_dir() => ancestors.push(WindowsEntry {
                    path: e.path[..n].to_vec(),
                    kind: WindowsKind::Dir,
                    mtime: PaxTime::new(found.mtime, found.mtime_nanos),
                    replay: Some(found.records.clone()),
                }),
                Some(_) => {
                    return Err(format!(
                        "{} is not a directory in the base image",
                        display(&e.path[..n])
                    ))
                }
                None => {}
            }
        }
    }
    ancestors.append(&mut entries);
    Ok(ancestors)
}

/// Components of `C:` as a path of its POSIX view.
use kiln_oci::path::join_absolute as posix;

fn split(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}
