//! Writing the result: the final config and manifest into the store, then
//! each requested output — tags in the store, an OCI layout, a
//! docker-archive, the root file system as a directory or a tar, or a push.

use crate::backend::BuildError;
use crate::stage::{self, StageOutput};
use crate::transfer::Pusher;
use kiln_oci::reference::Reference;
use kiln_oci::{entries_from_dir, write_tar, LayerOptions, Manifest, ManifestFormat};
use kiln_store::{media_type, ArchiveImage, Descriptor, Store};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

/// Where a build's result goes (`--output`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// `type=image`: the kiln store, named by the build's tags; with
    /// `push`, also pushed to each tag's registry.
    Image {
        /// `push=true` / `--push`.
        push: bool,
    },
    /// `type=oci,dest=PATH`: an OCI image layout, a directory, or a tar
    /// when `PATH` ends in `.tar`.
    Oci {
        /// The directory or tar file.
        dest: PathBuf,
    },
    /// `type=docker,dest=FILE`: a docker-archive tar (`docker load`).
    Docker {
        /// The tar file.
        dest: PathBuf,
    },
    /// `type=local,dest=DIR`: the final root file system as files.
    Local {
        /// The directory.
        dest: PathBuf,
    },
    /// `type=tar,dest=FILE`: the final root file system as one tar.
    Tar {
        /// The tar file.
        dest: PathBuf,
    },
}

impl Output {
    /// Parses buildx's `--output` syntax: `type=oci,dest=out.tar`,
    /// `type=image,push=true`, or a bare path (`type=local`).
    pub fn parse(spec: &str) -> Result<Output, String> {
        if !spec.contains('=') {
            return Ok(Output::Local {
                dest: PathBuf::from(spec),
            });
        }
        let mut fields = BTreeMap::new();
        for part in spec.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("invalid --output {spec:?}: {part:?} is not KEY=VALUE"))?;
            fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let kind = fields.remove("type").unwrap_or_else(|| "local".to_string());
        let dest = |fields: &mut BTreeMap<String, String>| {
            fields
                .remove("dest")
                .map(PathBuf::from)
                .ok_or_else(|| format!("--output type={kind} needs dest=PATH"))
        };
        let out = match kind.as_str() {
            "image" | "registry" => {
                let push = match fields.remove("push").as_deref() {
                    None => kind == "registry",
                    Some("true") => true,
                    Some("false") => false,
                    Some(v) => {
                        return Err(format!("invalid push={v:?} in --output: use true or false"))
                    }
                };
                Output::Image { push }
            }
            "oci" => Output::Oci {
                dest: dest(&mut fields)?,
            },
            "docker" => Output::Docker {
                dest: dest(&mut fields)?,
            },
            "local" => Output::Local {
                dest: dest(&mut fields)?,
            },
            "tar" => Output::Tar {
                dest: dest(&mut fields)?,
            },
            other => {
                return Err(format!(
                "unknown --output type {other:?}: use image, registry, oci, docker, local or tar"
            ))
            }
        };
        if let Some(key) = fields.keys().next() {
            return Err(format!(
                "--output type={kind} does not support {key}=; kiln knows type, dest and push"
            ));
        }
        Ok(out)
    }
}

/// `--annotation`s, by where buildx puts them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Annotations {
    /// On each image manifest (`manifest:`, and no type at all).
    pub manifest: BTreeMap<String, String>,
    /// On the image index of a multi-platform build (`index:`).
    pub index: BTreeMap<String, String>,
    /// On each manifest's entry in that index (`manifest-descriptor:`).
    pub manifest_descriptor: BTreeMap<String, String>,
    /// On the image's entry in an OCI layout's `index.json`
    /// (`index-descriptor:`, for `type=oci`).
    pub index_descriptor: BTreeMap<String, String>,
}

impl Annotations {
    /// Adds one `--annotation` in buildx's syntax: `[TYPE[,TYPE…]:]KEY=VALUE`,
    /// TYPE one of `manifest`, `index`, `manifest-descriptor` and
    /// `index-descriptor`.
    pub fn add(&mut self, spec: &str) -> Result<(), String> {
        let (left, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("--annotation {spec:?}: expected [TYPE:]KEY=VALUE"))?;
        let (types, key) = left.split_once(':').unwrap_or(("manifest", left));
        if key.is_empty() {
            return Err(format!("--annotation {spec:?}: the key is empty"));
        }
        for kind in types.split(',') {
            let map = match kind {
                "manifest" => &mut self.manifest,
                "index" => &mut self.index,
                "manifest-descriptor" => &mut self.manifest_descriptor,
                "index-descriptor" => &mut self.index_descriptor,
                k if k.contains('[') => {
                    return Err(format!(
                        "--annotation {spec:?}: NotSupported: annotations for one platform ({k}); \
                         give the type alone, which annotates every platform"
                    ))
                }
                k => {
                    return Err(format!(
                        "--annotation {spec:?}: unknown type {k:?}; use manifest, index, \
                         manifest-descriptor or index-descriptor"
                    ))
                }
            };
            map.insert(key.to_string(), value.to_string());
        }
        Ok(())
    }

    /// Refuses what a build of `platforms` platforms with these media
    /// types cannot carry, before anything is built.
    pub fn check(&self, platforms: usize, docker_media_types: bool) -> Result<(), String> {
        if docker_media_types && *self != Annotations::default() {
            return Err(
                "--annotation: Docker schema 2 manifests and lists have no annotations; \
                 keep OCI media types"
                    .into(),
            );
        }
        if platforms < 2 && !(self.index.is_empty() && self.manifest_descriptor.is_empty()) {
            return Err(
                "--annotation index: and manifest-descriptor: annotate the image index \
                 of a multi-platform build, and this build makes a single manifest; use \
                 manifest: (or build several platforms)"
                    .into(),
            );
        }
        Ok(())
    }
}

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
                std::fs::create_dir_all(dest).map_err(|e| BuildError::Output {
                    path: dest.clone(),
                    source: e,
                })?;
                target
                    .fs
                    .indexed()
                    .extract(store, "/", dest)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_specs() {
        assert_eq!(
            Output::parse("type=oci,dest=out.tar").unwrap(),
            Output::Oci {
                dest: "out.tar".into()
            }
        );
        assert_eq!(
            Output::parse("type=image,push=true").unwrap(),
            Output::Image { push: true }
        );
        assert_eq!(
            Output::parse("type=registry").unwrap(),
            Output::Image { push: true }
        );
        assert_eq!(
            Output::parse("dir").unwrap(),
            Output::Local { dest: "dir".into() }
        );
        assert_eq!(
            Output::parse("type=oci").unwrap_err(),
            "--output type=oci needs dest=PATH"
        );
        assert!(Output::parse("type=cacheonly")
            .unwrap_err()
            .contains("unknown --output type"));
        assert!(Output::parse("type=tar,dest=x,compression=zstd")
            .unwrap_err()
            .contains("does not support compression="));
    }
}
