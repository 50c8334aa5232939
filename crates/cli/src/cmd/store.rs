//! Store subcommands: images, inspect, history, tag, rm, du, prune, fsck, save,
//! export, load.
//!
//! All of them work on the store at `--root`, else `$KILN_ROOT`, else the
//! default location (see `kiln_store::Store::default_root`).

mod cache;
mod show;

pub(crate) use cache::parse_size;

use crate::output::{errln, outln};
use anyhow::{bail, Context};
use kiln_store::{ArchiveImage, Resolved, Store};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Subcommands that work on the local image store.
#[derive(clap::Subcommand)]
pub enum StoreCommand {
    /// List the images in the store. IMAGE ID is the config's digest, as
    /// docker and podman show it (and any kiln command takes it).
    Images {
        #[command(flatten)]
        root: RootArg,
        /// Output format: `table` (aligned columns: REPOSITORY TAG IMAGE ID
        /// CREATED SIZE), `json` (an array of {Repository, Tag, Name, Id,
        /// ImageId, Created, Size}), or a Go template applied to each image,
        /// as docker's: `{{.Repository}}:{{.Tag}}`, `{{.ID}}`, `{{.Digest}}`,
        /// `{{.CreatedAt}}`, `{{.CreatedSince}}`, `{{.Size}}`, `{{json .}}`.
        #[arg(long, default_value = "table", value_name = "FORMAT")]
        format: String,
        /// Only image ids, each once.
        #[arg(short, long)]
        quiet: bool,
        /// A DIGEST column: the manifest's (or index's) digest.
        #[arg(long)]
        digests: bool,
        /// Full image ids.
        #[arg(long)]
        no_trunc: bool,
        /// Only images named REPOSITORY[:TAG]; `*` and `?` match within a
        /// path component.
        reference: Option<String>,
    },
    /// Show images as a JSON array, as `docker inspect` does.
    ///
    /// Each object has docker's fields: Id (the config's digest), RepoTags,
    /// RepoDigests, Created, Author, Config (the container config: Env,
    /// Cmd, Labels, …), Architecture, Variant, Os, Size (all blobs,
    /// compressed) and RootFS; then kiln's: Digest (the manifest's or
    /// index's, which `kiln build` prints), MediaType, Platform, Index (the
    /// index of a multi-platform image, else null), ManifestDigest and
    /// Manifest (the manifest for this host), ConfigDigest and ImageConfig
    /// (the whole image config, with its history).
    Inspect {
        #[command(flatten)]
        root: RootArg,
        /// A Go template applied to each image instead: `{{.Config.Env}}`,
        /// `{{.Id}}`, `{{json .Config}}`, `{{range .RepoTags}}{{.}} {{end}}`,
        /// `{{index .Config.Labels "key"}}`, `{{join .Config.Cmd " "}}`,
        /// `{{if .X}}…{{else}}…{{end}}`.
        #[arg(short, long, value_name = "TEMPLATE")]
        format: Option<String>,
        /// Image names or ids.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Show how an image was made: its history, newest step first, with
    /// the size of the layer each step added (compressed, as stored).
    History {
        #[command(flatten)]
        root: RootArg,
        /// Show the steps' commands in full.
        #[arg(long)]
        no_trunc: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
        /// Image name or id.
        image: String,
    },
    /// Give an image another name.
    Tag {
        #[command(flatten)]
        root: RootArg,
        #[command(flatten)]
        backend: super::backends::BackendArg,
        /// Existing image name or id.
        source: String,
        /// New name, e.g. `registry.example.com/app:v2`.
        target: String,
    },
    /// Remove image names; an image's blobs stay until `kiln prune`.
    #[command(visible_alias = "rmi")]
    Rm {
        #[command(flatten)]
        root: RootArg,
        /// Remove an image given by id even when it has several names.
        #[arg(short, long)]
        force: bool,
        /// Image names or ids.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Show the build cache, record by record, and the store's size.
    Du {
        #[command(flatten)]
        root: RootArg,
        /// Full record ids and step texts.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Delete build cache records as the flags select, then every blob no
    /// image and no remaining record uses, and work left behind by killed
    /// processes.
    Prune {
        #[command(flatten)]
        root: RootArg,
        /// Delete the whole build cache.
        #[arg(short, long)]
        all: bool,
        /// `until=DURATION`: delete build cache records not used for that
        /// long (`until=24h`, `until=90m`).
        #[arg(long, value_name = "FILTER")]
        filter: Vec<String>,
        /// Then delete least recently used records until the cache's layers
        /// take at most this much (`10GB`, `512MB`; powers of 1024).
        #[arg(long, value_name = "SIZE")]
        keep_storage: Option<String>,
        /// Do not ask before deleting; without a terminal to ask on, kiln
        /// prune runs only with it.
        #[arg(short, long)]
        force: bool,
    },
    /// Check every blob's digest and that every image's blobs are present.
    Fsck {
        #[command(flatten)]
        root: RootArg,
    },
    /// Write images to a docker-archive tar (for `docker load`, `podman load`).
    Save {
        #[command(flatten)]
        root: RootArg,
        /// The tar file to write [default: standard output, which must not
        /// be a terminal: `kiln save IMG | ssh host docker load`].
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Image names or ids; an id saves every name the image has.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Write images as an OCI image layout (a directory, or a tar file when
    /// the output ends in .tar) or as a docker-archive.
    Export {
        #[command(flatten)]
        root: RootArg,
        /// Archive format.
        #[arg(long, value_enum, default_value = "oci")]
        format: ExportFormat,
        /// The directory or .tar file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Keep foreign layers (with `urls`) as they are in an OCI layout:
        /// descriptors unchanged, bytes left out. By default they are
        /// written as ordinary layers with their bytes, which must be in
        /// the store.
        #[arg(long)]
        keep_foreign_layers: bool,
        /// Image names or ids.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Load images from an OCI layout (directory or tar) or a docker-archive.
    Load {
        #[command(flatten)]
        root: RootArg,
        /// The archive or layout directory to read [default: an archive on
        /// standard input].
        #[arg(short, long)]
        input: Option<PathBuf>,
    },
}

/// Where the store is.
#[derive(clap::Args)]
pub struct RootArg {
    /// Store root [default: $KILN_ROOT, else /var/lib/kiln as root, else
    /// $XDG_DATA_HOME/kiln].
    #[arg(long)]
    root: Option<PathBuf>,
}

impl RootArg {
    fn path(&self) -> anyhow::Result<PathBuf> {
        Ok(match &self.root {
            Some(r) => r.clone(),
            None => crate::env::store_root()?,
        })
    }

    fn open(&self) -> anyhow::Result<Store> {
        crate::cmd::open_store(&self.path()?)
    }
}

/// `kiln images --format`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ListFormat {
    /// Aligned columns: REPOSITORY TAG IMAGE ID CREATED SIZE.
    Table,
    /// A JSON array of {Repository, Tag, Name, Id, Created, Size}.
    Json,
}

/// `kiln export --format`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// OCI image layout.
    Oci,
    /// docker-archive, as `kiln save` writes.
    Docker,
}

/// Runs a store subcommand.
pub fn run(cmd: StoreCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        StoreCommand::Images {
            root,
            format,
            quiet,
            digests,
            no_trunc,
            reference,
        } => show::images(
            &root.open()?,
            &show::ListArgs {
                format,
                quiet,
                digests,
                no_trunc,
                reference,
            },
        ),
        StoreCommand::Inspect {
            root,
            format,
            images,
        } => show::inspect(&root.open()?, &images, format.as_deref()),
        StoreCommand::History {
            root,
            no_trunc,
            format,
            image,
        } => show::history(&root.open()?, &image, no_trunc, format),
        StoreCommand::Tag {
            root,
            backend,
            source,
            target,
        } => {
            backend
                .open(|| root.open(), crate::env::client_options()?)?
                .tag(&source, &target)?;
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Rm {
            root,
            force,
            images,
        } => rm(&root.open()?, force, &images),
        StoreCommand::Du { root, verbose } => {
            let (store, reclaimed) = crate::cmd::open_store_reclaiming(&root.path()?)?;
            cache::du(&store, &reclaimed, verbose)
        }
        StoreCommand::Prune {
            root,
            all,
            filter,
            keep_storage,
            force,
        } => {
            let filter = cache::prune_filter(all, &filter, keep_storage.as_deref())?;
            let what = if all {
                "the whole build cache"
            } else {
                "the build cache records selected"
            };
            if !force
                && !crate::prompt::confirm(
                    &format!(
                        "WARNING! This will remove {what}, every blob no image or remaining record \
                         uses, and what killed kiln processes left.\nAre you sure you want to continue?"
                    ),
                    "kiln prune deletes data and there is no terminal to ask on: pass -f (--force) to prune",
                )?
            {
                errln!("Nothing was deleted.");
                return Ok(ExitCode::SUCCESS);
            }
            cache::prune(&root.open()?, &filter)
        }
        StoreCommand::Fsck { root } => fsck(&root.open()?),
        StoreCommand::Save {
            root,
            output,
            images,
        } => {
            let store = root.open()?;
            let images = archive_images(&store, &images)?;
            match output {
                Some(path) => store.save_docker(&images, &path)?,
                None => {
                    if std::io::stdout().is_terminal() {
                        bail!("refusing to write a tar archive to a terminal; pass -o FILE or redirect the output");
                    }
                    // The archive is written to a file (atomically), then
                    // streamed.
                    let tmp = store.tmp_dir().join("save.tar");
                    store.save_docker(&images, &tmp)?;
                    let mut file = std::fs::File::open(&tmp)?;
                    crate::output::copy_out(&mut file);
                    std::fs::remove_file(&tmp)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Export {
            root,
            format,
            output,
            keep_foreign_layers,
            images,
        } => {
            let store = root.open()?;
            let mut images = archive_images(&store, &images)?;
            match format {
                ExportFormat::Oci => {
                    if !keep_foreign_layers {
                        for image in &mut images {
                            image.descriptor = store.distributable(&image.descriptor)?;
                        }
                    }
                    store.export_oci(&images, &output)?
                }
                ExportFormat::Docker => store.save_docker(&images, &output)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Load { root, input } => {
            let store = root.open()?;
            // Standard input goes to a file in this process's leased
            // temporary directory first: the loader reads archives from files.
            let (input, spooled) = match input {
                Some(path) => (path, false),
                None => {
                    let tmp = store.tmp_dir().join("load.tar");
                    let mut file = std::fs::File::create(&tmp)?;
                    std::io::copy(&mut std::io::stdin().lock(), &mut file)
                        .context("reading the archive from standard input")?;
                    (tmp, true)
                }
            };
            let loaded = store.load(&input);
            if spooled {
                std::fs::remove_file(&input)?;
            }
            for img in loaded? {
                if img.tags.is_empty() {
                    outln!("Loaded image ID: {}", img.descriptor.digest);
                }
                for tag in img.tags {
                    outln!("Loaded image: {}", tag.familiar());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Images for an archive: a name selects that tag; an id, every tag.
fn archive_images(store: &Store, inputs: &[String]) -> anyhow::Result<Vec<ArchiveImage>> {
    let mut out: Vec<ArchiveImage> = Vec::new();
    for input in inputs {
        let Resolved {
            descriptor,
            tags,
            by_name,
        } = store.resolve(input)?;
        let tags = match by_name {
            Some(t) => vec![t],
            None => tags,
        };
        match out
            .iter_mut()
            .find(|i| i.descriptor.digest == descriptor.digest)
        {
            Some(img) => {
                for t in tags {
                    if !img.tags.contains(&t) {
                        img.tags.push(t);
                    }
                }
            }
            None => out.push(ArchiveImage { descriptor, tags }),
        }
    }
    Ok(out)
}

fn rm(store: &Store, force: bool, inputs: &[String]) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for input in inputs {
        let result = (|| -> anyhow::Result<()> {
            let found = store.resolve(input)?;
            if let Some(tag) = found.by_name {
                store.untag(&tag)?;
                outln!("Untagged: {}", tag.familiar());
                return Ok(());
            }
            if found.tags.len() > 1 && !force {
                bail!(
                    "image {input} has several names ({}); remove them by name, or use --force",
                    found
                        .tags
                        .iter()
                        .map(|t| t.familiar())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for img in store.remove(&found.descriptor.digest)? {
                match img.reference {
                    Some(tag) => outln!("Untagged: {}", tag.familiar()),
                    None => outln!("Removed: {}", img.descriptor.digest),
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            errln!("error: {e:#}");
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn fsck(store: &Store) -> anyhow::Result<ExitCode> {
    let mut report = store.fsck()?;
    let (problems, notes) = cache::fsck(store)?;
    report.problems.extend(problems);
    // RUN's unpacked layers, each checked against the record of how its
    // diff_id was verified.
    #[cfg(unix)]
    {
        let snapshots = store.root().join("snapshots");
        if snapshots.is_dir() {
            let snaps = kiln_snapshot::Snapshotter::open(
                &snapshots,
                Some(kiln_snapshot::DriverKind::Copy),
            )?;
            report.problems.extend(snaps.check());
        }
    }
    report.notes.extend(notes);
    for note in &report.notes {
        outln!("note: {note}");
    }
    if report.problems.is_empty() {
        outln!(
            "{} blobs and {} images checked: no problems",
            report.blobs_checked,
            report.images_checked
        );
        return Ok(ExitCode::SUCCESS);
    }
    errln!(
        "error: the store at {} has {} problems:",
        store.root().display(),
        report.problems.len()
    );
    for p in &report.problems {
        errln!("  - {p}");
    }
    errln!("Remove broken images with `kiln rm`, run `kiln prune`, then pull or load them again.");
    Ok(ExitCode::FAILURE)
}
