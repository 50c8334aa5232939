//! Sharing the build cache between machines: `--cache-to` writes a build's
//! step records and their layers to a registry or an OCI layout directory;
//! `--cache-from` reads them back, and a step found there takes only its
//! own layer, fetched when the step is replayed.
//!
//! The format is kiln's own: an OCI image manifest whose `artifactType`
//! is [`ARTIFACT_TYPE`], whose config (media type [`CONFIG_MEDIA_TYPE`])
//! lists the records by step key, and whose layers are the layers those
//! records name, so that a registry keeps them and a push skips the ones
//! it already has, as for an image. BuildKit's cache manifests describe its
//! LLB graph, which kiln's keys do not follow, so neither tool could use
//! the other's records; kiln does not pretend to.

use kiln_backend::{CacheExport, CacheLocation, ARTIFACT_TYPE, CONFIG_MEDIA_TYPE};
use kiln_cache::{Layer, Record};
use kiln_oci::{Digest, Index, Layout, Manifest, ManifestFormat, Parsed};
use kiln_registry::{Client, PushOptions};
use kiln_store::{media_type, Descriptor, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The config blob.
#[derive(Serialize, Deserialize)]
struct CacheConfig {
    version: u32,
    records: Vec<RecordJson>,
}

#[derive(Serialize, Deserialize)]
struct RecordJson {
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layer: Option<LayerJson>,
    created: String,
    description: String,
    metadata: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayerJson {
    digest: String,
    media_type: String,
    size: u64,
    diff_id: String,
}

/// A cache read with `--cache-from`.
pub(crate) struct Imported {
    location: CacheLocation,
    records: HashMap<Digest, Record>,
}

impl Imported {
    /// The record for `key`, if this cache has one.
    pub(crate) fn get(&self, key: &Digest) -> Option<&Record> {
        self.records.get(key)
    }

    /// Where the cache is.
    pub(crate) fn location(&self) -> &CacheLocation {
        &self.location
    }

    /// Whether a record here names `layer`, so it can be fetched from here.
    pub(crate) fn has_layer(&self, layer: &Digest) -> bool {
        self.records
            .values()
            .any(|r| r.layer.as_ref().is_some_and(|l| l.digest == *layer))
    }
}

/// Reads the records of the cache at `location`: only its manifest and
/// config, never a layer.
pub(crate) fn import(
    location: &CacheLocation,
    client: &Client,
    store: &Store,
) -> Result<Imported, String> {
    let config = match location {
        CacheLocation::Registry(r) => {
            let rt = kiln_backend::runtime()?;
            let (_, bytes) = rt
                .block_on(client.fetch_manifest(r))
                .map_err(|e| e.to_string())?;
            let config = config_of(&bytes)?;
            rt.block_on(client.fetch_blob(store, r, &config))
                .map_err(|e| e.to_string())?;
            store.read_blob(&config.digest).map_err(|e| e.to_string())?
        }
        CacheLocation::Local(dir) => {
            let layout = Layout::open(dir).map_err(|e| e.to_string())?;
            let index = layout.read_index().map_err(|e| e.to_string())?;
            let manifest = index
                .manifests
                .first()
                .ok_or_else(|| format!("{}/index.json names no manifest", dir.display()))?;
            let bytes = layout
                .read_blob(&manifest.digest)
                .map_err(|e| format!("{e}: the cache is corrupt"))?;
            layout
                .read_blob(&config_of(&bytes)?.digest)
                .map_err(|e| format!("{e}: the cache is corrupt"))?
        }
    };
    let config: CacheConfig = serde_json::from_slice(&config)
        .map_err(|e| format!("the cache config is not kiln's: {e}"))?;
    if config.version != 1 {
        return Err(format!(
            "the cache has format version {}; this kiln reads version 1",
            config.version
        ));
    }
    let mut records = HashMap::new();
    for r in config.records {
        let bad = |what: &str| format!("the cache config has a bad {what} in record {}", r.key);
        let key: Digest = r.key.parse().map_err(|_| bad("key"))?;
        let layer = match r.layer {
            None => None,
            Some(l) => Some(Layer {
                digest: l.digest.parse().map_err(|_| bad("layer digest"))?,
                media_type: l.media_type,
                size: l.size,
                diff_id: l.diff_id.parse().map_err(|_| bad("diff id"))?,
            }),
        };
        records.insert(
            key,
            Record {
                layer,
                created: r.created,
                description: r.description,
                metadata: r.metadata.into_bytes(),
            },
        );
    }
    Ok(Imported {
        location: location.clone(),
        records,
    })
}

/// The config descriptor of a cache manifest, checked to be kiln's.
fn config_of(manifest: &[u8]) -> Result<Descriptor, String> {
    let config = match kiln_oci::parse_manifest(manifest, Some(media_type::OCI_MANIFEST)) {
        Ok(Parsed::Manifest(_, m)) => m.config,
        Ok(Parsed::Index(..)) => return Err("the cache manifest is an index".into()),
        Err(e) => return Err(format!("the cache manifest cannot be read: {e}")),
    };
    if config.media_type != CONFIG_MEDIA_TYPE {
        return Err(format!(
            "it is not a kiln build cache (its config is {}, not {CONFIG_MEDIA_TYPE})",
            config.media_type
        ));
    }
    Ok(config)
}

/// Puts `layer` into the store from the imported cache: downloaded from
/// the registry, or copied (and verified) from the layout directory.
pub(crate) fn fetch_layer(
    imported: &Imported,
    client: &Client,
    store: &Store,
    layer: &Descriptor,
) -> Result<(), String> {
    match &imported.location {
        CacheLocation::Registry(r) => {
            kiln_backend::runtime()?
                .block_on(client.fetch_blob(store, r, layer))
                .map_err(|e| e.to_string())?;
        }
        CacheLocation::Local(dir) => {
            let layout = Layout::open(dir).map_err(|e| e.to_string())?;
            let path = layout.blob_path(&layer.digest);
            let mut src = layout.open_blob(&layer.digest).map_err(|e| e.to_string())?;
            let mut w = store.ingest().map_err(|e| e.to_string())?;
            std::io::copy(&mut src, &mut w)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            w.commit(Some(layer.digest)).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Writes `records` (and the layers they name, from the store) to the
/// cache `export` names. Records whose layer is not in the store are left
/// out.
pub(crate) fn export(
    export: &CacheExport,
    client: &Client,
    store: &Store,
    records: &[(Digest, Record)],
) -> Result<(), String> {
    let mut layers: Vec<Descriptor> = Vec::new();
    let mut json = Vec::new();
    for (key, r) in records {
        if let Some(l) = &r.layer {
            if !store.has_blob(&l.digest) {
                continue;
            }
            if !layers.iter().any(|d| d.digest == l.digest) {
                layers.push(Descriptor::new(&l.media_type, l.digest, l.size));
            }
        }
        json.push(RecordJson {
            key: key.to_string(),
            layer: r.layer.as_ref().map(|l| LayerJson {
                digest: l.digest.to_string(),
                media_type: l.media_type.clone(),
                size: l.size,
                diff_id: l.diff_id.to_string(),
            }),
            created: r.created.clone(),
            description: r.description.clone(),
            metadata: String::from_utf8_lossy(&r.metadata).into_owned(),
        });
    }
    let config = serde_json::to_vec(&CacheConfig {
        version: 1,
        records: json,
    })
    .expect("the cache config serializes");
    let err = |e: kiln_store::Error| e.to_string();
    let config = store.put_bytes(&config).map_err(err)?;
    let mut manifest = Manifest::new(
        ManifestFormat::OciManifest,
        Descriptor::new(CONFIG_MEDIA_TYPE, config.digest, config.size),
        layers.clone(),
    );
    manifest.artifact_type = Some(ARTIFACT_TYPE.to_string());
    let info = store.put_bytes(&manifest.to_json()).map_err(err)?;
    let mut desc = Descriptor::new(media_type::OCI_MANIFEST, info.digest, info.size);
    match &export.location {
        CacheLocation::Registry(r) => {
            kiln_backend::runtime()?
                .block_on(client.push(store, &desc, r, &PushOptions::default()))
                .map_err(|e| e.to_string())?;
        }
        CacheLocation::Local(dir) => {
            let layout = Layout::create(dir).map_err(|e| e.to_string())?;
            let all = layers
                .iter()
                .map(|l| l.digest)
                .chain([config.digest, info.digest]);
            for digest in all {
                let src = store.open_blob(&digest).map_err(err)?;
                layout.write_blob(&digest, src).map_err(|e| e.to_string())?;
            }
            desc.extra
                .insert("artifactType".into(), ARTIFACT_TYPE.into());
            layout
                .write_index(&Index::new(ManifestFormat::OciIndex, vec![desc]))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
