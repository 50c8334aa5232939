//! Reading OCI layouts and docker-archives into the store.

use super::ArchiveImage;
use crate::descriptor::{children, media_type, Descriptor, IndexFile, CONTAINERD_NAME, REF_NAME};
use crate::error::{Error, Result};
use crate::store::{BlobInfo, Store};
use kiln_oci::compression::Magic;
use kiln_oci::layer::read::TarReader;
use kiln_oci::reference::Reference;
use kiln_oci::{Digest, DigestWriter};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

impl Store {
    /// Loads every image in `src` into the store and tags it: an OCI image
    /// layout (directory or tar) or a docker-archive (tar, possibly gzipped).
    /// Every blob is checked against its digest, and docker-archive layers
    /// against the config's `diff_ids`.
    ///
    /// Names come from `io.containerd.image.name`, else from
    /// `org.opencontainers.image.ref.name` when it is a full reference (has
    /// a `/` or `:`); a bare ref.name like `latest` names no repository, so
    /// such an image is loaded untagged. Docker-archives name images by `RepoTags`.
    pub fn load(&self, src: &Path) -> Result<Vec<ArchiveImage>> {
        let meta = fs::metadata(src).map_err(Error::io("reading", src))?;
        if meta.is_dir() {
            return self.load_dir(src);
        }
        let unpacked = tempfile::Builder::new()
            .prefix("load-")
            .tempdir_in(self.tmp_dir())
            .map_err(Error::io(
                "creating a temporary directory in",
                self.tmp_dir(),
            ))?;
        unpack(src, unpacked.path())?;
        self.load_dir(unpacked.path())
    }

    fn load_dir(&self, dir: &Path) -> Result<Vec<ArchiveImage>> {
        if dir.join("index.json").is_file() {
            self.load_oci(dir)
        } else if dir.join("manifest.json").is_file() {
            self.load_docker(dir)
        } else {
            Err(Error::invalid(
                dir.display().to_string(),
                "is neither an OCI image layout (no index.json) nor a docker-archive (no manifest.json)",
            ))
        }
    }

    fn load_oci(&self, dir: &Path) -> Result<Vec<ArchiveImage>> {
        let index: IndexFile = read_json(&dir.join("index.json"))?;
        let mut out: Vec<ArchiveImage> = Vec::new();
        for entry in index.manifests {
            self.import_tree(dir, &entry)?;
            let name = entry.annotations.get(CONTAINERD_NAME).or_else(|| {
                entry
                    .annotations
                    .get(REF_NAME)
                    .filter(|n| n.contains(['/', ':']))
            });
            let tag = match name {
                Some(n) => Some(Reference::parse(n)?),
                None => None,
            };
            match out.iter_mut().find(|i| i.descriptor.digest == entry.digest) {
                Some(img) => img.tags.extend(tag.clone()),
                None => {
                    let mut descriptor = entry.clone();
                    descriptor.annotations.remove(REF_NAME);
                    descriptor.annotations.remove(CONTAINERD_NAME);
                    out.push(ArchiveImage {
                        descriptor,
                        tags: tag.clone().into_iter().collect(),
                    })
                }
            }
            match tag {
                Some(t) => self.tag(&t, &entry)?,
                None => self.add_untagged(&entry)?,
            }
        }
        Ok(out)
    }

    /// Copies the blobs reachable from `root` out of the layout at `dir`.
    fn import_tree(&self, dir: &Path, root: &Descriptor) -> Result<()> {
        let mut seen = HashSet::new();
        let mut stack = vec![(root.clone(), true)];
        while let Some((desc, required)) = stack.pop() {
            if !seen.insert(desc.digest) {
                continue;
            }
            let path = dir.join("blobs/sha256").join(desc.digest.hex());
            if !path.is_file() {
                if required && !desc.is_foreign() {
                    return Err(Error::invalid(
                        dir.display().to_string(),
                        format!(
                            "{} {} is missing from the layout",
                            desc.media_type, desc.digest
                        ),
                    ));
                }
                continue;
            }
            let info = self.ingest_file(&path, Some(desc.digest))?;
            if info.size != desc.size {
                return Err(Error::invalid(
                    path.display().to_string(),
                    format!(
                        "is {} bytes, but its descriptor says {}",
                        info.size, desc.size
                    ),
                ));
            }
            let required_kids = !media_type::is_index(&desc.media_type);
            for kid in children(&desc, &self.read_blob_if_json(&desc)?)? {
                stack.push((kid, required_kids));
            }
        }
        Ok(())
    }

    fn read_blob_if_json(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if media_type::is_manifest(&desc.media_type) || media_type::is_index(&desc.media_type) {
            self.read_blob(&desc.digest)
        } else {
            Ok(Vec::new())
        }
    }

    fn load_docker(&self, dir: &Path) -> Result<Vec<ArchiveImage>> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let entries: Vec<Entry> = read_json(&dir.join("manifest.json"))?;
        let mut out = Vec::new();
        for entry in entries {
            let config_path = inside(dir, &entry.config)?;
            let config = self.ingest_file(&config_path, digest_in_name(&entry.config))?;
            let config_json: serde_json::Value = read_json(&config_path)?;
            let diff_ids: Vec<Digest> = config_json
                .pointer("/rootfs/diff_ids")
                .cloned()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| {
                    Error::invalid(entry.config.clone(), format!("bad rootfs.diff_ids: {e}"))
                })?
                .unwrap_or_default();
            if diff_ids.len() != entry.layers.len() {
                return Err(Error::invalid(
                    entry.config.clone(),
                    format!(
                        "lists {} diff_ids but manifest.json lists {} layers",
                        diff_ids.len(),
                        entry.layers.len()
                    ),
                ));
            }
            let mut layers = Vec::new();
            for (layer, diff_id) in entry.layers.iter().zip(&diff_ids) {
                let path = inside(dir, layer)?;
                let media_type = check_layer(&path, diff_id)?;
                let info = self.ingest_file(&path, None)?;
                layers.push(Descriptor::new(media_type, info.digest, info.size));
            }
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media_type::OCI_MANIFEST,
                "config": Descriptor::new(media_type::OCI_CONFIG, config.digest, config.size),
                "layers": layers,
            });
            let bytes = serde_json::to_vec(&manifest)
                .map_err(|e| Error::invalid("manifest", e.to_string()))?;
            let info = self.put_bytes(&bytes)?;
            let descriptor = Descriptor::new(media_type::OCI_MANIFEST, info.digest, info.size);
            let tags = entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| Reference::parse(t))
                .collect::<Result<Vec<_>, _>>()?;
            if tags.is_empty() {
                self.add_untagged(&descriptor)?;
            }
            for t in &tags {
                self.tag(t, &descriptor)?;
            }
            out.push(ArchiveImage { descriptor, tags });
        }
        Ok(out)
    }

    fn ingest_file(&self, path: &Path, expected: Option<Digest>) -> Result<BlobInfo> {
        let mut src = File::open(path).map_err(Error::io("opening", path))?;
        let mut w = self.ingest()?;
        io::copy(&mut src, &mut w).map_err(Error::io("copying", path))?;
        w.commit(expected).map_err(|e| match e {
            Error::DigestMismatch {
                expected, actual, ..
            } => Error::DigestMismatch {
                what: path.display().to_string(),
                expected,
                actual,
            },
            e => e,
        })
    }
}

/// The layer's media type, after checking that its uncompressed content
/// hashes to `diff_id`.
fn check_layer(path: &Path, diff_id: &Digest) -> Result<&'static str> {
    let mut file = BufReader::new(File::open(path).map_err(Error::io("opening", path))?);
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(Error::io("reading", path))?;
    let file = io::Cursor::new(magic[..n].to_vec()).chain(file);
    let mut hasher = DigestWriter::new(io::sink());
    let (mt, copied) = match Magic::of(&magic[..n]) {
        Magic::Gzip => (
            media_type::OCI_LAYER_GZIP,
            io::copy(&mut flate2::read::MultiGzDecoder::new(file), &mut hasher),
        ),
        Magic::Zstd => {
            return Err(Error::NotSupported(format!(
                "{}: zstd-compressed layers in a docker-archive are not supported; \
                 use an OCI layout (`kiln export --format oci`) instead",
                path.display()
            )))
        }
        _ => (media_type::OCI_LAYER, io::copy(&mut { file }, &mut hasher)),
    };
    copied.map_err(Error::io("decompressing", path))?;
    let (actual, _, _) = hasher.finish();
    if actual != *diff_id {
        return Err(Error::DigestMismatch {
            what: format!("the uncompressed content of {}", path.display()),
            expected: *diff_id,
            actual,
        });
    }
    Ok(mt)
}

/// A 64-hex digest in a docker-archive file name (`<hex>.json`,
/// `blobs/sha256/<hex>`), which the content must match.
fn digest_in_name(name: &str) -> Option<Digest> {
    let last = name.rsplit('/').next()?;
    let hex = last.strip_suffix(".json").unwrap_or(last);
    format!("sha256:{hex}").parse().ok()
}

/// `rel` under `dir`, refusing paths that could leave it.
fn inside(dir: &Path, rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if p.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        Ok(dir.join(p))
    } else {
        Err(Error::invalid(
            format!("path {rel:?} in manifest.json"),
            "points outside the archive",
        ))
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(Error::io("reading", path))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::invalid(
            path.display().to_string(),
            format!("not valid JSON for its format: {e}"),
        )
    })
}

/// Unpacks the regular files of the tar (or gzipped tar) at `src` into
/// `dest`; links, devices and paths leaving `dest` are skipped, since an
/// image archive holds only plain files.
fn unpack(src: &Path, dest: &Path) -> Result<()> {
    let mut file = BufReader::new(File::open(src).map_err(Error::io("opening", src))?);
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(Error::io("reading", src))?;
    let stream = io::Cursor::new(magic[..n].to_vec()).chain(file);
    let reader: Box<dyn Read> = match Magic::of(&magic[..n]) {
        Magic::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        _ => Box::new(stream),
    };
    // kiln-oci's bounded reader: an archive is untrusted input, and the tar
    // crate would read a long name or PAX header of any declared size.
    let mut archive = TarReader::new(reader);
    let bad = |e: String| {
        Error::invalid(
            src.display().to_string(),
            format!("is not a readable tar archive: {e}"),
        )
    };
    while let Some(header) = archive.next_header().map_err(|e| bad(e.to_string()))? {
        if !matches!(header.typeflag, b'0' | b'\0' | b'7') || header.name.ends_with(b"/") {
            continue;
        }
        let Some(path) = crate::sys::entry_path(&header.name) else {
            continue;
        };
        if !path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            continue;
        }
        let out = dest.join(&path);
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(Error::io("creating", parent))?;
        }
        let mut f = File::create(&out).map_err(Error::io("creating", &out))?;
        io::copy(&mut archive, &mut f).map_err(|e| bad(e.to_string()))?;
    }
    Ok(())
}
