//! Writing OCI layouts and docker-archives.

use super::sink::{DirSink, Sink, TarSink};
use super::ArchiveImage;
use crate::descriptor::{children, media_type, Descriptor, IndexFile, CONTAINERD_NAME, REF_NAME};
use crate::error::{Error, Result};
use crate::store::Store;
use serde_json::json;
use std::collections::HashSet;
use std::fs;
use std::io::BufWriter;
use std::path::Path;

impl Store {
    /// Writes `images` as an OCI image layout: a directory, or a tar file
    /// when `dest` ends in `.tar`. Each tag becomes an `index.json` entry
    /// named as BuildKit's OCI exporter names it: the tag alone in
    /// `org.opencontainers.image.ref.name` (what `skopeo`'s `oci:DIR:TAG`,
    /// `umoci` and podman look up) and the full reference in
    /// `io.containerd.image.name` (what `kiln load` and containerd read).
    pub fn export_oci(&self, images: &[ArchiveImage], dest: &Path) -> Result<()> {
        let mut index = IndexFile::default();
        let mut blobs = Vec::new();
        for img in images {
            blobs.extend(self.image_blobs(&img.descriptor)?);
            let mut entry = img.descriptor.clone();
            entry.annotations.remove(REF_NAME);
            entry.annotations.remove(CONTAINERD_NAME);
            if img.tags.is_empty() {
                index.manifests.push(entry.clone());
            }
            for tag in &img.tags {
                let mut named = entry.clone();
                let short = tag.tag.clone().unwrap_or_else(|| "latest".to_string());
                named.annotations.insert(REF_NAME.to_string(), short);
                named
                    .annotations
                    .insert(CONTAINERD_NAME.to_string(), tag.to_string());
                index.manifests.push(named);
            }
        }
        let mut index_json = serde_json::to_vec_pretty(&index)
            .map_err(|e| Error::invalid("index.json", e.to_string()))?;
        index_json.push(b'\n');
        self.write_archive(dest, |sink| {
            sink.file("oci-layout", b"{\"imageLayoutVersion\":\"1.0.0\"}")?;
            self.copy_blobs(sink, &blobs)?;
            sink.file("index.json", &index_json)
        })
    }

    /// Writes `images` as a docker-archive tar (what `docker save` writes,
    /// and `docker load` / `podman load` read): `manifest.json`,
    /// `repositories`, and the config and layer blobs under `blobs/sha256/`.
    /// An image index contributes the manifest for this host's platform.
    pub fn save_docker(&self, images: &[ArchiveImage], dest: &Path) -> Result<()> {
        let mut entries = Vec::new();
        let mut repositories = serde_json::Map::new();
        let mut blobs = Vec::new();
        for img in images {
            let manifest_desc = self.select_manifest(&img.descriptor)?;
            if !media_type::is_manifest(&manifest_desc.media_type) {
                return Err(Error::NotSupported(format!(
                    "{} is a {}, not an image manifest; a docker-archive holds images only",
                    manifest_desc.digest, manifest_desc.media_type
                )));
            }
            self.image_blobs(&manifest_desc)?;
            if let Some(layer) = self.foreign_absent(&manifest_desc).first() {
                return Err(Error::invalid(
                    format!("image {}", manifest_desc.digest),
                    format!(
                        "foreign layer {} is not in the store, and a docker-archive carries \
                         every layer's bytes; fetch it first (pull without \
                         --keep-foreign-layers, or `kiln copy` from the registry)",
                        layer.digest
                    ),
                ));
            }
            // The manifest's own list, not the tree: a layer may repeat.
            let kids = children(&manifest_desc, &self.read_blob(&manifest_desc.digest)?)?;
            let (config, layers) = (&kids[0], &kids[1..]);
            let path = |d: &Descriptor| format!("blobs/sha256/{}", d.digest.hex());
            // Full names: podman reads a short `app:1` as `localhost/app:1`.
            let repo_tags: Vec<String> = img.tags.iter().map(|t| t.to_string()).collect();
            for tag in &img.tags {
                let repo = repositories.entry(tag.name()).or_insert_with(|| json!({}));
                if let (Some(map), Some(t)) = (repo.as_object_mut(), &tag.tag) {
                    map.insert(t.clone(), json!(config.digest.hex()));
                }
            }
            entries.push(json!({
                "Config": path(config),
                "RepoTags": repo_tags,
                "Layers": layers.iter().map(path).collect::<Vec<_>>(),
            }));
            blobs.extend(kids.iter().cloned());
        }
        let manifest_json = serde_json::to_vec(&entries)
            .map_err(|e| Error::invalid("manifest.json", e.to_string()))?;
        let repositories_json = serde_json::to_vec(&repositories)
            .map_err(|e| Error::invalid("repositories", e.to_string()))?;
        if dest.is_dir() {
            return Err(Error::invalid(
                dest.display().to_string(),
                "is a directory; a docker-archive is a tar file: give a path ending in .tar",
            ));
        }
        self.write_tar(dest, |sink| {
            self.copy_blobs(sink, &blobs)?;
            sink.file("manifest.json", &manifest_json)?;
            sink.file("repositories", &repositories_json)
        })
    }

    /// Every blob of an image that is in the store (the root first, then
    /// for a manifest its config and layers), or an error naming the first
    /// one missing. Platform manifests of an index that were never pulled
    /// are not errors.
    pub fn image_blobs(&self, root: &Descriptor) -> Result<Vec<Descriptor>> {
        let tree = self.tree(root);
        if let Some(problem) = tree.problems.into_iter().next() {
            return Err(Error::invalid(
                format!("image {}", root.digest),
                format!("{problem}; run `kiln fsck`"),
            ));
        }
        if media_type::is_manifest(&root.media_type) && tree.present.len() < 2 {
            return Err(Error::invalid(
                format!("image {}", root.digest),
                "has no config",
            ));
        }
        Ok(tree.present)
    }

    fn copy_blobs(&self, sink: &mut dyn Sink, blobs: &[Descriptor]) -> Result<()> {
        let mut done = HashSet::new();
        for d in blobs {
            if done.insert(d.digest) {
                let mut f = self.open_blob(&d.digest)?;
                sink.copy(&format!("blobs/sha256/{}", d.digest.hex()), &mut f, d.size)?;
            }
        }
        Ok(())
    }

    fn write_archive(
        &self,
        dest: &Path,
        fill: impl FnOnce(&mut dyn Sink) -> Result<()>,
    ) -> Result<()> {
        if dest.extension().is_some_and(|e| e == "tar") {
            return self.write_tar(dest, fill);
        }
        if fs::read_dir(dest).is_ok_and(|mut d| d.next().is_some()) {
            return Err(Error::invalid(
                dest.display().to_string(),
                "exists and is not empty; give a new directory, or a path ending in .tar for a tar file",
            ));
        }
        if dest.exists() && !dest.is_dir() {
            return Err(Error::invalid(
                dest.display().to_string(),
                "exists and is not a directory; give a new directory, or a path ending in .tar",
            ));
        }
        fill(&mut DirSink {
            root: dest.to_path_buf(),
        })
    }

    /// Writes the tar next to `dest` and renames it into place when complete.
    fn write_tar(&self, dest: &Path, fill: impl FnOnce(&mut dyn Sink) -> Result<()>) -> Result<()> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".kiln-archive-")
            .tempfile_in(dir)
            .map_err(Error::io("creating a temporary file in", dir))?;
        let mut sink = TarSink::new(BufWriter::new(tmp), dest);
        fill(&mut sink)?;
        let tmp = sink
            .finish()?
            .into_inner()
            .map_err(|e| Error::io("writing", dest)(e.into_error()))?;
        tmp.as_file()
            .sync_all()
            .map_err(Error::io("writing", dest))?;
        crate::fsutil::set_readable(tmp.as_file(), dest)?;
        tmp.persist(dest)
            .map_err(|e| Error::io("writing", dest)(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    // Export and save are tested end to end with skopeo, umoci and podman in
    // crates/cli/tests/store_cli.rs; here only what needs no external tool.
    use super::*;

    #[test]
    fn refuses_a_non_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("root")).unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        fs::write(out.join("x"), b"x").unwrap();
        let err = store.export_oci(&[], &out).unwrap_err().to_string();
        assert!(err.ends_with("exists and is not empty; give a new directory, or a path ending in .tar for a tar file"), "{err}");
    }
}
