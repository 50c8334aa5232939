//! Images: the entries of `index.json`, their names, and the blobs they reach.

use crate::descriptor::{children, media_type, Descriptor, REF_NAME};
use crate::error::{Error, Result};
use crate::fsutil::Mode;
use crate::store::Store;
use kiln_oci::reference::Reference;
use kiln_oci::Digest;
use std::collections::HashSet;

/// One entry of the store's index: an image, tagged or not.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// The manifest (or index) descriptor, without the name annotation.
    pub descriptor: Descriptor,
    /// The tag, from the `org.opencontainers.image.ref.name` annotation.
    pub reference: Option<Reference>,
}

/// What a user-given name or id resolved to.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The image's manifest (or index) descriptor.
    pub descriptor: Descriptor,
    /// Every tag the store has for this digest.
    pub tags: Vec<Reference>,
    /// The tag the input named, if it was a name rather than an id.
    pub by_name: Option<Reference>,
}

/// The blobs an image reaches, and what is wrong with its tree.
pub(crate) struct Tree {
    pub present: Vec<Descriptor>,
    pub problems: Vec<String>,
    /// Foreign layers (with `urls`) whose bytes are not in the store.
    pub foreign_absent: Vec<Descriptor>,
}

impl Store {
    /// Every image in the store, in index order.
    pub fn images(&self) -> Result<Vec<Image>> {
        let _lock = self.lock(Mode::Shared)?;
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .map(image)
            .collect())
    }

    /// Names `manifest` as `reference` (a tag; any digest in it is dropped),
    /// moving the tag if it named another image. The manifest and the blobs
    /// it needs must already be in the store, except foreign layers (with
    /// `urls`), which are fetched from their URLs only when needed.
    pub fn tag(&self, reference: &Reference, manifest: &Descriptor) -> Result<()> {
        let tag = reference.tag.as_deref().ok_or_else(|| {
            Error::invalid(
                format!("cannot tag as {reference}"),
                "a tag is needed (a digest names content, not a tag); add `:TAG`",
            )
        })?;
        self.add(manifest, Some(reference.with_tag(tag)?))
    }

    /// Keeps `manifest` in the store without a name (shown as `<none>`).
    /// Does nothing if the image is already there.
    pub fn add_untagged(&self, manifest: &Descriptor) -> Result<()> {
        self.add(manifest, None)
    }

    /// Removes a tag; returns the descriptor it named. The image's blobs
    /// stay until [`Store::gc`] finds them unreferenced.
    pub fn untag(&self, reference: &Reference) -> Result<Descriptor> {
        let _lock = self.lock(Mode::Exclusive)?;
        let mut index = self.read_index()?;
        let name = reference.to_string();
        let pos = index
            .manifests
            .iter()
            .position(|d| d.annotations.get(REF_NAME) == Some(&name))
            .ok_or_else(|| self.not_found(&reference.familiar()))?;
        let removed = index.manifests.remove(pos);
        self.write_index(&index)?;
        Ok(image(removed).descriptor)
    }

    /// Removes every entry (all tags) for `digest`; returns them.
    pub fn remove(&self, digest: &Digest) -> Result<Vec<Image>> {
        let _lock = self.lock(Mode::Exclusive)?;
        let mut index = self.read_index()?;
        let (gone, kept) = index
            .manifests
            .into_iter()
            .partition::<Vec<_>, _>(|d| d.digest == *digest);
        if gone.is_empty() {
            return Err(self.not_found(&digest.to_string()));
        }
        index.manifests = kept;
        self.write_index(&index)?;
        Ok(gone.into_iter().map(image).collect())
    }

    /// Finds an image by name (`busybox`, `docker.io/library/busybox:latest`,
    /// `x@sha256:…`) or by id (a unique prefix of its digest, or else of its
    /// config's digest, with or without `sha256:`). Names win over ids, as
    /// in docker.
    pub fn resolve(&self, input: &str) -> Result<Resolved> {
        let images = self.images()?;
        let tags_of = |d: &Digest| -> Vec<Reference> {
            images
                .iter()
                .filter(|i| i.descriptor.digest == *d)
                .filter_map(|i| i.reference.clone())
                .collect()
        };
        let found = |img: &Image, by_name| Resolved {
            descriptor: img.descriptor.clone(),
            tags: tags_of(&img.descriptor.digest),
            by_name,
        };
        if let Ok(r) = Reference::parse(input) {
            let hit = match r.digest {
                Some(d) => images.iter().find(|i| i.descriptor.digest == d),
                None => images.iter().find(|i| i.reference.as_ref() == Some(&r)),
            };
            if let Some(img) = hit {
                return Ok(found(img, r.digest.is_none().then_some(r)));
            }
        }
        let hex = input.strip_prefix("sha256:").unwrap_or(input);
        if !hex.is_empty() && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            let mut matches: Vec<&Image> = Vec::new();
            for img in &images {
                let d = img.descriptor.digest;
                if d.hex().starts_with(hex) && !matches.iter().any(|m| m.descriptor.digest == d) {
                    matches.push(img);
                }
            }
            if matches.is_empty() {
                // An image id as docker and podman show it: the config's.
                for img in &images {
                    let d = img.descriptor.digest;
                    let config = self.config_digest(&img.descriptor).ok();
                    if config.is_some_and(|c| c.hex().starts_with(hex))
                        && !matches.iter().any(|m| m.descriptor.digest == d)
                    {
                        matches.push(img);
                    }
                }
            }
            match matches.as_slice() {
                [one] => return Ok(found(one, None)),
                [] => {}
                many => {
                    return Err(Error::Ambiguous {
                        prefix: input.to_string(),
                        candidates: many
                            .iter()
                            .map(|m| m.descriptor.digest.to_string())
                            .collect(),
                    })
                }
            }
        }
        Err(self.not_found(input))
    }

    /// The digest of the config of `desc`'s manifest for this host (see
    /// [`Store::select_manifest`]): the image id docker and podman show.
    pub fn config_digest(&self, desc: &Descriptor) -> Result<Digest> {
        let manifest = self.select_manifest(desc)?;
        let kids = children(&manifest, &self.read_blob(&manifest.digest)?)?;
        kids.first()
            .map(|c| c.digest)
            .ok_or_else(|| Error::invalid(format!("image {}", manifest.digest), "has no config"))
    }

    /// The single-platform manifest to use for `desc`: `desc` itself if it
    /// is a manifest; for an index, the entry for this host's platform, or
    /// the only platform present in the store.
    pub fn select_manifest(&self, desc: &Descriptor) -> Result<Descriptor> {
        if !media_type::is_index(&desc.media_type) {
            return Ok(desc.clone());
        }
        let bytes = self.read_blob(&desc.digest)?;
        let present: Vec<Descriptor> = children(desc, &bytes)?
            .into_iter()
            .filter(|d| self.has_blob(&d.digest))
            .collect();
        let host = kiln_oci::Platform::host();
        if let Some(d) = kiln_oci::select_platform(&host, &present, Descriptor::platform) {
            return self.select_manifest(d);
        }
        match present.as_slice() {
            [only] => self.select_manifest(only),
            _ => Err(Error::NotSupported(format!(
                "image index {} has no manifest for this host ({host}) in the store; \
                 platforms present: {}",
                desc.digest,
                present
                    .iter()
                    .map(|d| d
                        .platform()
                        .map_or_else(|| d.digest.to_string(), |p| p.to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The foreign layers (with `urls`) of the image `root` whose bytes
    /// are not in the store: what must be fetched before its layers can be
    /// read, or pushed and exported as ordinary layers.
    pub fn foreign_absent(&self, root: &Descriptor) -> Vec<Descriptor> {
        self.tree(root).foreign_absent
    }

    /// The image `root` with its foreign layers made ordinary, as
    /// [`kiln_oci::make_distributable`] rewrites it, for exporting: the new
    /// manifests and index are written into the store (held by this
    /// process's lease, untagged) and the new root is returned, or `root`
    /// when nothing changed. The layers' bytes must be in the store.
    pub fn distributable(&self, root: &Descriptor) -> Result<Descriptor> {
        if let Some(layer) = self.foreign_absent(root).first() {
            return Err(Error::invalid(
                format!("image {}", root.digest),
                format!(
                    "foreign layer {} is not in the store, so it cannot be exported with its \
                     bytes; fetch it first (pull without --keep-foreign-layers), or keep it \
                     foreign with --keep-foreign-layers",
                    layer.digest
                ),
            ));
        }
        let mut read = |d: &Descriptor| -> Result<Option<Vec<u8>>, DistributableError> {
            if !self.has_blob(&d.digest) {
                return Ok(None);
            }
            Ok(Some(self.read_blob(&d.digest)?))
        };
        let out = match kiln_oci::make_distributable(root, &mut read) {
            Ok(out) => out,
            Err(DistributableError::Store(e)) => return Err(e),
            Err(DistributableError::Manifest(e)) => {
                return Err(Error::invalid(
                    format!("image {}", root.digest),
                    e.to_string(),
                ))
            }
        };
        for (_, bytes) in &out.documents {
            self.put_bytes(bytes)?;
        }
        Ok(out.root)
    }

    /// The blobs reachable from `root` that are in the store (root first),
    /// and what is wrong: a missing or mis-sized blob a manifest needs, an
    /// unreadable manifest. Platform manifests missing from an index are
    /// fine: a pull may fetch one platform only. So are foreign layers
    /// (descriptors with `urls`): they are fetched from there when needed.
    pub(crate) fn tree(&self, root: &Descriptor) -> Tree {
        let mut tree = Tree {
            present: Vec::new(),
            problems: Vec::new(),
            foreign_absent: Vec::new(),
        };
        let mut seen = HashSet::new();
        let mut stack = vec![(root.clone(), true)];
        while let Some((desc, required)) = stack.pop() {
            if !seen.insert(desc.digest) {
                continue;
            }
            let len = match std::fs::metadata(self.blob_path(&desc.digest)) {
                Ok(m) => m.len(),
                Err(_) if !required => continue,
                Err(_) if desc.is_foreign() => {
                    tree.foreign_absent.push(desc);
                    continue;
                }
                Err(_) => {
                    tree.problems
                        .push(format!("{} {} is missing", desc.media_type, desc.digest));
                    continue;
                }
            };
            if len != desc.size {
                tree.problems.push(format!(
                    "{} {} is {len} bytes, but its descriptor says {}",
                    desc.media_type, desc.digest, desc.size
                ));
            }
            let kids = if media_type::is_manifest(&desc.media_type)
                || media_type::is_index(&desc.media_type)
            {
                match self
                    .read_blob(&desc.digest)
                    .and_then(|b| children(&desc, &b))
                {
                    Ok(kids) => kids,
                    Err(e) => {
                        tree.problems.push(e.to_string());
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            let kids_required = !media_type::is_index(&desc.media_type);
            for kid in kids.into_iter().rev() {
                stack.push((kid, kids_required));
            }
            tree.present.push(desc);
        }
        tree
    }

    fn add(&self, manifest: &Descriptor, reference: Option<Reference>) -> Result<()> {
        let _lock = self.lock(Mode::Exclusive)?;
        // Checked under the exclusive lock, which GC also holds: once the
        // tree is complete here, no GC can remove part of it before the
        // index names it.
        if let Some(problem) = self.tree(manifest).problems.into_iter().next() {
            return Err(Error::invalid(
                format!("cannot add image {}", manifest.digest),
                format!("{problem}; store the blobs it needs first"),
            ));
        }
        let mut index = self.read_index()?;
        let mut entry = manifest.clone();
        entry.annotations.remove(REF_NAME);
        match reference {
            Some(r) => {
                let name = r.to_string();
                // A rebuild that changed nothing names the image it named
                // already: the index stays as it is, with no write and fsync.
                let mut named = entry.clone();
                named.annotations.insert(REF_NAME.to_string(), name.clone());
                if index.manifests.contains(&named) {
                    return Ok(());
                }
                index.manifests.retain(|d| {
                    let named = d.annotations.get(REF_NAME);
                    named != Some(&name) && !(named.is_none() && d.digest == manifest.digest)
                });
                entry.annotations.insert(REF_NAME.to_string(), name);
            }
            None => {
                if index.manifests.iter().any(|d| d.digest == manifest.digest) {
                    return Ok(());
                }
            }
        }
        index.manifests.push(entry);
        self.write_index(&index)
    }

    fn not_found(&self, name: &str) -> Error {
        Error::ImageNotFound {
            name: name.to_string(),
            root: self.root().to_path_buf(),
        }
    }
}

fn image(mut d: Descriptor) -> Image {
    let reference = d
        .annotations
        .remove(REF_NAME)
        .and_then(|n| Reference::parse(&n).ok());
    Image {
        descriptor: d,
        reference,
    }
}

/// What [`Store::distributable`] can meet reading the image.
enum DistributableError {
    Store(Error),
    Manifest(kiln_oci::ManifestError),
}

impl From<Error> for DistributableError {
    fn from(e: Error) -> DistributableError {
        DistributableError::Store(e)
    }
}

impl From<kiln_oci::ManifestError> for DistributableError {
    fn from(e: kiln_oci::ManifestError) -> DistributableError {
        DistributableError::Manifest(e)
    }
}
