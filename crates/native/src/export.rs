//! Writing the result: the final config and manifest into the store, then
//! each requested output — tags in the store, an OCI layout, a
//! docker-archive, the root file system as a directory or a tar, or a push.

use crate::stage::{self, StageOutput};
use kiln_backend::push::Pusher;
use kiln_backend::{BuildError, Output};
use kiln_oci::reference::Reference;
use kiln_oci::{
    entries_from_dir, write_tar, ExtractOptions, LayerOptions, Manifest, ManifestFormat,
};
use kiln_store::{media_type, ArchiveImage, Descriptor, Store};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;

/// The final image's blobs in the store.
#[derive(Clone, Debug)]
pub(crate) struct WrittenImage {
    pub(crate) manifest: Descriptor,
    pub(crate) config: Descriptor,
}

/// Writes the target stage's config (with the `--label`s) and a manifest
/// (with the manifest `--annotation`s) into the store, with OCI's media
/// types or, with `docker`, Docker schema 2's. Nothing is tagged yet.
pub(crate) fn write_image(
    store: &Store,
    target: &StageOutput,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    docker: bool,
) -> Result<WrittenImage, BuildError> {
    let config_bytes = stage::with_labels(&target.config, labels).to_json();
    let info = store.put_bytes(&config_bytes)?;
    let (format, config_type) = if docker {
        (ManifestFormat::DockerManifest, media_type::DOCKER_CONFIG)
    } else {
        (ManifestFormat::OciManifest, media_type::OCI_CONFIG)
    };
    let config = Descriptor::new(config_type, info.digest, info.size);
    let layers = target
        .layers
        .iter()
        .map(|l| {
            if docker {
                docker_layer(l)
            } else {
                Ok(oci_layer(l))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut manifest = Manifest::new(format, config.clone(), layers);
    manifest.annotations = annotations.clone();
    let info = store.put_bytes(&manifest.to_json())?;
    Ok(WrittenImage {
        manifest: Descriptor::new(format.media_type(), info.digest, info.size),
        config,
    })
}

/// A layer as a Docker schema 2 manifest lists it (the same bytes).
fn docker_layer(d: &Descriptor) -> Result<Descriptor, BuildError> {
    let mt = match d.media_type.as_str() {
        media_type::OCI_LAYER_GZIP | media_type::DOCKER_LAYER_GZIP => media_type::DOCKER_LAYER_GZIP,
        media_type::OCI_LAYER => "application/vnd.docker.image.rootfs.diff.tar",
        media_type::OCI_LAYER_ZSTD => {
            return Err(BuildError::Request(
                "NotSupported: Docker media types have no zstd layer; build with --compression gzip, or keep OCI media types".into(),
            ))
        }
        other => other,
    };
    let mut out = d.clone();
    out.media_type = mt.to_string();
    Ok(out)
}

/// A base layer as an OCI manifest lists it: docker's media types become
/// their OCI equivalents (the same bytes), as BuildKit does.
fn oci_layer(d: &Descriptor) -> Descriptor {
    let mt = match d.media_type.as_str() {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => media_type::OCI_LAYER_GZIP,
        "application/vnd.docker.image.rootfs.diff.tar" => media_type::OCI_LAYER,
        other => other,
    };
    let mut out = d.clone();
    out.media_type = mt.to_string();
    out
}

/// Sends the image (`manifest`: an image manifest, or the index of a
/// multi-platform build) to every output; returns the tags it now has in
/// the store. `target` gives the root file system for `local` and `tar`;
/// `index_descriptor` annotates the image's entry in an OCI layout; pushes
/// go through `pusher`, each a step of the build's progress.
pub(crate) fn export(
    store: &Store,
    pusher: &Pusher,
    manifest: &Descriptor,
    target: &StageOutput,
    tags: &[Reference],
    outputs: &[Output],
    index_descriptor: &BTreeMap<String, String>,
) -> Result<Vec<Reference>, BuildError> {
    let mut stored = Vec::new();
    let archive = [ArchiveImage {
        descriptor: manifest.clone(),
        tags: tags.to_vec(),
    }];
    let mut annotated = archive.clone();
    annotated[0]
        .descriptor
        .annotations
        .extend(index_descriptor.clone());
    for output in outputs {
        match output {
            Output::Image { push } => {
                if tags.is_empty() {
                    if *push {
                        return Err(BuildError::Request(
                            "pushing needs a name: add -t REGISTRY/REPOSITORY:TAG".into(),
                        ));
                    }
                    store.add_untagged(manifest)?;
                }
                for tag in tags {
                    store.tag(tag, manifest)?;
                    stored.push(tag.clone());
                }
                if *push {
                    for tag in tags {
                        pusher.push(store, manifest, tag)?;
                    }
                }
            }
            Output::Oci { dest } => store.export_oci(&annotated, dest)?,
            Output::Docker { dest } => store.save_docker(&archive, dest)?,
            Output::Local { dest } => {
                // As BuildKit's local exporter: a missing destination is
                // made 0700 (parents too), the files belong to whoever runs
                // the build (its file sync sets the client's uid and gid),
                // whatever owners the image gives them, and a file or
                // symlink a previous output left where the image has a
                // directory is replaced (never followed).
                let mut dir = std::fs::DirBuilder::new();
                dir.recursive(true);
                // Windows has no mode; the new directory inherits its ACL.
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
                dir.create(dest).map_err(|e| BuildError::Output {
                    path: dest.clone(),
                    source: e,
                })?;
                let mine = ExtractOptions {
                    restore_owners: false,
                    replace_in_the_way: true,
                    ..ExtractOptions::default()
                };
                target
                    .fs
                    .indexed()
                    .extract_with(store, "/", dest, &mine)
                    .map_err(|e| BuildError::Request(format!("writing {}: {e}", dest.display())))?;
            }
            Output::Tar { dest } => rootfs_tar(store, target, dest)?,
        }
    }
    Ok(stored)
}

/// The root file system as one tar: extracted into the store's temp space,
/// then written in kiln's deterministic tar order.
fn rootfs_tar(
    store: &Store,
    target: &StageOutput,
    dest: &std::path::Path,
) -> Result<(), BuildError> {
    let out_err = |e: std::io::Error| BuildError::Output {
        path: dest.to_path_buf(),
        source: e,
    };
    let tmp = tempfile::Builder::new()
        .prefix("rootfs-")
        .tempdir_in(store.tmp_dir())
        .map_err(out_err)?;
    target
        .fs
        .indexed()
        .extract(store, "/", tmp.path())
        .map_err(|e| BuildError::Request(format!("writing {}: {e}", dest.display())))?;
    let entries = entries_from_dir(tmp.path()).map_err(out_err)?;
    let file = File::create(dest).map_err(out_err)?;
    let writer = write_tar(entries, &LayerOptions::default(), BufWriter::new(file))
        .map_err(|e| BuildError::Request(format!("writing {}: {e}", dest.display())))?;
    writer
        .into_inner()
        .map_err(|e| out_err(e.into_error()))?
        .sync_all()
        .map_err(out_err)?;
    Ok(())
}
