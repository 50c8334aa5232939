//! Where a build's result goes (`--output`) and the `--annotation`s it
//! carries: options every backend takes, parsed as buildx parses them.

use std::collections::BTreeMap;
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
