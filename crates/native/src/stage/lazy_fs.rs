//! A stage's file system, indexed only when a step looks at it.
//!
//! Indexing a layer reads (and decompresses) its whole tar, which for a
//! 1 GiB COPY takes seconds (once: big layers' headers are saved, see
//! `imagefs::headers`). A step taken from the cache and a base image only
//! put their layers on the stage; the first step that reads files (a COPY,
//! ADD or WORKDIR that runs, a `COPY --from` of the stage, a `local` or
//! `tar` output) indexes them, fetching a `--cache-from` layer first. A
//! RUN reads what it needs (its user database) from its mounted root. A
//! rebuild whose steps all hit reads no layer at all, and a layer no step
//! reads is never fetched.

use super::StageContext;
use crate::imagefs::ImageFs;
use kiln_backend::BuildError;
use kiln_oci::LayerFormat;
use kiln_store::Descriptor;
use std::sync::{Arc, OnceLock};

/// An indexed file system and the layers above it not yet indexed.
#[derive(Clone, Debug)]
pub(crate) struct LazyFs {
    fs: ImageFs,
    pending: Vec<Descriptor>,
    /// The whole file system once [`LazyFs::resolved`] indexed it, shared
    /// by the clones, so a stage that several `COPY --from`s read is
    /// indexed once.
    full: Arc<OnceLock<ImageFs>>,
}

impl LazyFs {
    /// An empty file system for layers in `format`.
    pub(crate) fn empty(format: LayerFormat) -> LazyFs {
        LazyFs::of_layers(Vec::new(), format)
    }

    /// `layers` (bottom first) in `format`, none indexed yet.
    pub(crate) fn of_layers(layers: Vec<Descriptor>, format: LayerFormat) -> LazyFs {
        LazyFs {
            fs: ImageFs::empty_as(format),
            pending: layers,
            full: Arc::default(),
        }
    }

    /// How its layers lay out their files.
    pub(crate) fn format(&self) -> LayerFormat {
        self.fs.format()
    }

    /// Puts `layer` on top without reading it.
    pub(crate) fn push(&mut self, layer: Descriptor) {
        self.pending.push(layer);
        self.full = Arc::default();
    }

    /// Indexes every pending layer; after this [`LazyFs::indexed`] is the
    /// whole file system.
    pub(crate) fn catch_up(&mut self, ctx: &StageContext) -> Result<(), BuildError> {
        if let Some(fs) = self.full.get().filter(|_| !self.pending.is_empty()) {
            self.fs = fs.clone();
            self.pending.clear();
            return Ok(());
        }
        while let Some(layer) = self.pending.first() {
            ctx.cache
                .ensure_blob(ctx.client, ctx.store, layer)
                .map_err(BuildError::CacheLayer)?;
            self.fs
                .push_layer(ctx.store, layer)
                .map_err(|e| BuildError::Request(e.to_string()))?;
            self.pending.remove(0);
        }
        Ok(())
    }

    /// The indexed part: the whole file system after
    /// [`LazyFs::catch_up`], which steps that read files run first.
    pub(crate) fn indexed(&self) -> &ImageFs {
        debug_assert!(
            self.pending.is_empty(),
            "a step read a file system not caught up"
        );
        &self.fs
    }

    /// The whole file system, indexed, leaving `self` as it is.
    pub(crate) fn resolved(&self, ctx: &StageContext) -> Result<ImageFs, BuildError> {
        if self.pending.is_empty() {
            return Ok(self.fs.clone());
        }
        if let Some(fs) = self.full.get() {
            return Ok(fs.clone());
        }
        let mut all = self.clone();
        all.catch_up(ctx)?;
        // Another thread may have indexed it meanwhile: either copy serves.
        let _ = self.full.set(all.fs.clone());
        Ok(all.fs)
    }
}
