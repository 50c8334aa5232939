//! Where a stage's base and `COPY --from` images come from: the store,
//! a registry (pulled into the store), or a named build context
//! (`--build-context name=docker-image://ref|oci-layout://dir[:tag]`).
//!
//! Each reference is looked up once per build; the lookup is serialised
//! (one lock), so two stages needing the same image pull it once.

use crate::transfer::Counted;
use kiln_backend::events::{BuildEvent, EventSink};
use kiln_backend::{NamedContext, PullPolicy};
use kiln_frontend::stages::Platform;
use kiln_oci::reference::Reference;
use kiln_oci::{select_platform, Digest, ImageConfig, Layout};
use kiln_registry::{first_that_pulls, Client};
use kiln_store::{children, media_type, Descriptor, Store, REF_NAME};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// An image ready to build on: its manifest, config and layers, all in the
/// store.
#[derive(Clone, Debug)]
pub(crate) struct ImageSource {
    /// The config.
    pub(crate) config: ImageConfig,
    /// The layers, bottom first.
    pub(crate) layers: Vec<Descriptor>,
}

impl ImageSource {
    /// The image's ENV as pairs.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        self.config
            .env()
            .iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e.clone(), String::new()),
            })
            .collect()
    }
}

/// Why an image could not be found or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BaseError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] kiln_store::Error),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] kiln_registry::Error),
    /// Anything else, said for the user.
    #[error("{0}")]
    Other(String),
}

/// Finds images for one build.
pub(crate) struct Bases<'a> {
    store: &'a Store,
    client: &'a Client,
    pull: PullPolicy,
    contexts: &'a BTreeMap<String, NamedContext>,
    /// Where pulls report their bytes.
    events: &'a EventSink,
    cache: Mutex<HashMap<(String, Platform), Arc<ImageSource>>>,
}

impl<'a> Bases<'a> {
    /// `pull` says when the registry is asked (`--pull`).
    pub(crate) fn new(
        store: &'a Store,
        client: &'a Client,
        pull: PullPolicy,
        contexts: &'a BTreeMap<String, NamedContext>,
        events: &'a EventSink,
    ) -> Bases<'a> {
        Bases {
            store,
            client,
            pull,
            contexts,
            events,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The named build context for `name`, matched as written or by its
    /// normalised reference (`alpine` and `docker.io/library/alpine:latest`
    /// are the same name), as BuildKit matches them.
    pub(crate) fn context(&self, name: &str) -> Option<&'a NamedContext> {
        if let Some(c) = self.contexts.get(name) {
            return Some(c);
        }
        let wanted = Reference::parse(name).ok()?;
        self.contexts
            .iter()
            .find(|(k, _)| Reference::parse(k).ok().as_ref() == Some(&wanted))
            .map(|(_, c)| c)
    }

    /// The image `name` (as written in FROM or `COPY --from`) for `platform`.
    pub(crate) fn image(
        &self,
        name: &str,
        platform: &Platform,
    ) -> Result<Arc<ImageSource>, BaseError> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let key = (name.to_string(), platform.clone());
        if let Some(hit) = cache.get(&key) {
            return Ok(hit.clone());
        }
        let found = match self.context(name) {
            Some(NamedContext::Image(other)) => self.registry_or_store(other, platform)?,
            Some(NamedContext::OciLayout { path, reference }) => {
                let image = self.layout_image(path, reference.as_deref(), platform)?;
                self.with_foreign_layers(image, None)?
            }
            Some(NamedContext::Dir(dir)) => {
                return Err(BaseError::Other(format!(
                    "the build context {name:?} is a directory ({}); kiln can use it with COPY --from={name} but not yet as a base image",
                    dir.display()
                )))
            }
            None => self.registry_or_store(name, platform)?,
        };
        let found = Arc::new(found);
        cache.insert(key, found.clone());
        Ok(found)
    }

    /// The image `name` names, from the store or a registry as the pull
    /// policy says. A short name tries what `registries.conf` resolves it
    /// to ([`Client::candidates`]); in the store it is first kiln's own
    /// name for it (`-t app` tags `docker.io/library/app`, as docker
    /// does), then each of those.
    fn registry_or_store(&self, name: &str, platform: &Platform) -> Result<ImageSource, BaseError> {
        let written = Reference::parse(name).map_err(|e| BaseError::Other(e.to_string()))?;
        let candidates = self
            .client
            .candidates(name)
            .map_err(|e| BaseError::Other(e.to_string()))?;
        let stored = match self.pull {
            PullPolicy::Always => None,
            _ => self.stored(&written, &candidates, platform)?,
        };
        let stored_image = |(reference, manifest): (Reference, Descriptor)| {
            let image = read_image(self.store, manifest)?;
            self.with_foreign_layers(image, Some(&reference))
        };
        match (self.pull, stored) {
            (PullPolicy::Missing | PullPolicy::Never, Some(found)) => stored_image(found),
            (PullPolicy::Never, None) => Err(BaseError::Other(format!(
                "not in the store, and --pull=never does not ask the registry; pull it \
                 first (`kiln pull {name}`) or build with --pull=missing"
            ))),
            (PullPolicy::Newer, Some(found)) => {
                match self.pull_image(name, &candidates, platform) {
                    Err(BaseError::Registry(e)) => {
                        self.events.send(BuildEvent::Warning {
                            file: String::new(),
                            line: 0,
                            message: format!(
                            "--pull=newer: {}: the registry failed ({e}); using the store's image",
                            found.0
                        ),
                        });
                        stored_image(found)
                    }
                    other => other,
                }
            }
            _ => self.pull_image(name, &candidates, platform),
        }
    }

    /// The first of `written` and `candidates` the store has an image of
    /// for `platform`, with its manifest.
    fn stored(
        &self,
        written: &Reference,
        candidates: &[Reference],
        platform: &Platform,
    ) -> Result<Option<(Reference, Descriptor)>, BaseError> {
        // A name with a registry is its own only candidate: asked once.
        let others = candidates.iter().filter(|c| *c != written);
        for reference in std::iter::once(written).chain(others) {
            match self.store.resolve(&reference.to_string()) {
                Ok(found) => {
                    if let Some(manifest) = self.select(&found.descriptor, platform)? {
                        return Ok(Some((reference.clone(), manifest)));
                    }
                }
                Err(kiln_store::Error::ImageNotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    fn pull_image(
        &self,
        name: &str,
        candidates: &[Reference],
        platform: &Platform,
    ) -> Result<ImageSource, BaseError> {
        let runtime = kiln_backend::runtime().map_err(BaseError::Other)?;
        let what = match candidates {
            [one] => format!("pull {one}"),
            _ => format!("pull {name}"),
        };
        let counted = Counted::start(self.store, self.events, what);
        let (reference, pulled) = runtime.block_on(first_that_pulls(name, candidates, |r| {
            let counted = &counted;
            async move { self.client.pull(counted, &r, Some(platform)).await }
        }))?;
        counted.finish();
        let image = read_image(self.store, pulled.manifest)?;
        self.with_foreign_layers(image, Some(&reference))
    }

    /// `image` with its foreign layers in the store and listed as ordinary
    /// layers, so that the build's image pushes and exports them with their
    /// bytes (windows-images.md §2.4, §2.6); absent ones come from the
    /// registry of `source`, the image's reference when it has one, then
    /// their URLs. When the client keeps foreign layers they stay as they
    /// are and unfetched: a step that reads one fetches it from its URLs
    /// then (`BuildCache::ensure_blob`), and a build of config steps never
    /// does.
    fn with_foreign_layers(
        &self,
        mut image: ImageSource,
        source: Option<&Reference>,
    ) -> Result<ImageSource, BaseError> {
        if self.client.options().keep_foreign_layers {
            return Ok(image);
        }
        let absent: Vec<&Descriptor> = image
            .layers
            .iter()
            .filter(|l| l.is_foreign() && !self.store.has_blob(&l.digest))
            .collect();
        if !absent.is_empty() {
            let runtime = kiln_backend::runtime().map_err(BaseError::Other)?;
            for layer in absent {
                runtime.block_on(self.client.fetch_foreign(self.store, source, layer))?;
                self.store.hold(&layer.digest)?;
            }
        }
        image.layers = image.layers.iter().map(Descriptor::distributable).collect();
        Ok(image)
    }

    /// The manifest for `platform`: `desc` itself, or its entry in an index
    /// (`None` when the stored index has no manifest for it).
    fn select(
        &self,
        desc: &Descriptor,
        platform: &Platform,
    ) -> Result<Option<Descriptor>, BaseError> {
        if !media_type::is_index(&desc.media_type) {
            return Ok(Some(desc.clone()));
        }
        let bytes = self.store.read_blob(&desc.digest)?;
        let present: Vec<Descriptor> = children(desc, &bytes)?
            .into_iter()
            .filter(|d| self.store.has_blob(&d.digest))
            .collect();
        Ok(select_platform(platform, &present, Descriptor::platform).cloned())
    }

    /// Copies the image `reference` names (a tag, `@digest`, or the only
    /// image) from the OCI layout at `dir` into the store, untagged.
    fn layout_image(
        &self,
        dir: &Path,
        reference: Option<&str>,
        platform: &Platform,
    ) -> Result<ImageSource, BaseError> {
        let layout = Layout::open(dir).map_err(|e| {
            BaseError::Other(format!(
                "cannot read the OCI layout: {e}; give a directory holding index.json"
            ))
        })?;
        let index = layout
            .read_index()
            .map_err(|e| BaseError::Other(e.to_string()))?;
        let pick = |d: &&Descriptor| match reference {
            None => true,
            Some(r) if r.starts_with("sha256:") => d.digest.to_string() == r,
            Some(tag) => d
                .annotations
                .get(REF_NAME)
                .is_some_and(|n| n == tag || n.rsplit_once(':').is_some_and(|(_, t)| t == tag)),
        };
        let candidates: Vec<&Descriptor> = index.manifests.iter().filter(pick).collect();
        let entry = match (candidates.as_slice(), reference) {
            ([one], _) => (*one).clone(),
            ([], Some(r)) => {
                return Err(BaseError::Other(format!(
                    "the OCI layout {} has no image {r:?}",
                    dir.display()
                )))
            }
            (_, _) => {
                return Err(BaseError::Other(format!(
                    "the OCI layout {} holds {} images; name one with oci-layout://{}:TAG",
                    dir.display(),
                    candidates.len(),
                    dir.display()
                )))
            }
        };
        let mut manifest = Descriptor::new(&entry.media_type, entry.digest, entry.size);
        import_blob(self.store, &layout, &manifest.digest)?;
        if media_type::is_index(&manifest.media_type) {
            let bytes = self.store.read_blob(&manifest.digest)?;
            let entries = children(&manifest, &bytes)?;
            let child =
                select_platform(platform, &entries, Descriptor::platform).ok_or_else(|| {
                    BaseError::Other(format!(
                        "the image in the OCI layout {} has no manifest for {platform}",
                        dir.display()
                    ))
                })?;
            manifest = Descriptor::new(&child.media_type, child.digest, child.size);
            import_blob(self.store, &layout, &manifest.digest)?;
        }
        let bytes = self.store.read_blob(&manifest.digest)?;
        for blob in children(&manifest, &bytes)? {
            import_blob(self.store, &layout, &blob.digest)?;
        }
        read_image(self.store, manifest)
    }
}

/// Reads a manifest's config and layer list from the store, and holds them
/// in the build's lease: a base image removed and pruned while the build
/// runs (or one never tagged, from an OCI layout) keeps its blobs until
/// the build is done.
pub(crate) fn read_image(store: &Store, manifest: Descriptor) -> Result<ImageSource, BaseError> {
    store.hold(&manifest.digest)?;
    let bytes = store.read_blob(&manifest.digest)?;
    let kids = children(&manifest, &bytes)?;
    for kid in &kids {
        store.hold(&kid.digest)?;
    }
    let Some((config_desc, layers)) = kids.split_first() else {
        return Err(BaseError::Other(format!(
            "manifest {} has no config",
            manifest.digest
        )));
    };
    let config = ImageConfig::from_json(&store.read_blob(&config_desc.digest)?)
        .map_err(|e| BaseError::Other(format!("image {}: {e}", manifest.digest)))?;
    Ok(ImageSource {
        config,
        layers: layers.to_vec(),
    })
}

fn import_blob(store: &Store, layout: &Layout, digest: &Digest) -> Result<(), BaseError> {
    if store.hold(digest)? {
        return Ok(());
    }
    let mut file = layout
        .open_blob(digest)
        .map_err(|e| BaseError::Other(e.to_string()))?;
    let mut w = store.ingest()?;
    io::copy(&mut file, &mut w).map_err(|e| {
        BaseError::Other(format!(
            "reading {}: {e}",
            layout.blob_path(digest).display()
        ))
    })?;
    w.commit(Some(*digest))?;
    Ok(())
}
