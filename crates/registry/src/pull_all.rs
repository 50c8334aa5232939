//! Pulling every platform of an index, as `skopeo copy --all` does: the
//! index, each platform's manifest, config and layers, stored unchanged so
//! the index can be pushed again with the same digest.

use crate::client::Client;
use crate::errors::{Error, ErrorKind, Result};
use crate::manifest;
use crate::pull::{split_fetched, target, ACTION};
use kiln_oci::content::Ingester;
use kiln_oci::reference::Reference;
use kiln_oci::{Descriptor, Digest, Parsed};

/// What [`Client::pull_all`] did.
#[derive(Clone, Debug)]
pub struct PulledAll {
    /// What the reference named and the store now holds: the index, or
    /// the manifest when the reference names a single image.
    pub top: Descriptor,
    /// Every platform's manifest, in index order (just `top` for a single image).
    pub manifests: Vec<Descriptor>,
    /// Blobs downloaded.
    pub fetched: Vec<Digest>,
    /// Blobs already in the store, not downloaded again.
    pub present: Vec<Digest>,
    /// Foreign layers, fetched as [`Pulled::foreign`](crate::Pulled::foreign) says.
    pub foreign: Vec<Descriptor>,
}

impl Client {
    /// Pulls `reference` with every platform it has into `store` and tags
    /// it there (or keeps it untagged when the reference is a digest).
    /// `registries.conf` applies as for [`Client::pull`].
    pub async fn pull_all(&self, store: &dyn Ingester, reference: &Reference) -> Result<PulledAll> {
        let mut last = None;
        for source in &self.pull_sources(reference)? {
            match self.pull_all_from(store, reference, source).await {
                Ok(pulled) => return Ok(pulled),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("registries.conf gives at least one source"))
    }

    /// [`Client::pull_all`] from `source`, naming the image `name`.
    async fn pull_all_from(
        &self,
        store: &dyn Ingester,
        name: &Reference,
        reference: &Reference,
    ) -> Result<PulledAll> {
        let t = target(reference);
        let err = |kind| Error {
            action: ACTION,
            target: Box::new(t.clone()),
            kind,
        };
        let (top, top_bytes) = self.fetch_manifest(reference).await?;
        let parsed =
            manifest::parse(&top.media_type, &top_bytes).map_err(|e| err(ErrorKind::Invalid(e)))?;
        // Each platform manifest with its bytes, and their config and layers.
        let mut manifests = Vec::new();
        let mut blobs: Vec<Descriptor> = Vec::new();
        let mut image_blobs = |parsed: Parsed| -> Result<()> {
            let Parsed::Manifest(_, image) = parsed else {
                return Err(err(ErrorKind::NotSupported(
                    "the index names another index; kiln does not follow nested indexes".into(),
                )));
            };
            for d in std::iter::once(image.config).chain(image.layers) {
                if !blobs.iter().any(|b| b.digest == d.digest) {
                    blobs.push(d);
                }
            }
            Ok(())
        };
        match parsed {
            Parsed::Index(_, index) => {
                for entry in index.manifests {
                    // Checked against the digest and size the index gives.
                    let (_, bytes) = self.fetch_index_entry(reference, &entry).await?;
                    image_blobs(
                        manifest::parse(&entry.media_type, &bytes)
                            .map_err(|e| err(ErrorKind::Invalid(e)))?,
                    )?;
                    manifests.push((entry, Some(bytes)));
                }
            }
            image => {
                image_blobs(image)?;
                manifests.push((top.clone(), None));
            }
        }
        let (foreign, blobs): (Vec<_>, Vec<_>) = blobs.into_iter().partition(|d| d.is_foreign());
        let mut results = self.download_all(store, reference, blobs).await?;
        results.extend(self.fetch_all_foreign(store, reference, &foreign).await?);
        // Manifests after their blobs, the top last: a store never names
        // an image whose blobs are not all there.
        for (desc, bytes) in &manifests {
            if let Some(bytes) = bytes {
                store
                    .put_bytes(bytes, &desc.digest)
                    .map_err(|e| err(e.into()))?;
            }
        }
        store
            .put_bytes(&top_bytes, &top.digest)
            .map_err(|e| err(e.into()))?;
        store
            .put_image(name.tag.is_some().then_some(name), &top)
            .map_err(|e| err(e.into()))?;
        let (fetched, present) = split_fetched(results);
        Ok(PulledAll {
            top,
            manifests: manifests.into_iter().map(|(d, _)| d).collect(),
            fetched,
            present,
            foreign,
        })
    }
}
