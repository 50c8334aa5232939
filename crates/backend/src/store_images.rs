//! Naming, pushing and gathering images of kiln's store: what the native
//! backend does after a build, and what `kiln tag` and `kiln push` run.
//!
//! A manifest list being assembled is an image index in the store, named
//! like any image (as buildah and podman keep theirs): pushing it is an
//! ordinary push of an index.

use crate::events::EventSink;
use crate::push::Pusher;
use crate::{BuildError, Pushed};
use kiln_oci::reference::Reference;
use kiln_oci::{parse_manifest, ImageConfig, Index, ManifestFormat, Parsed, Platform};
use kiln_registry::{Client, ClientOptions};
use kiln_store::{media_type, Descriptor, Store};

/// Names `image` (a name or id in `store`) `new_name` too.
pub fn tag(store: &Store, image: &str, new_name: &str) -> Result<(), BuildError> {
    let found = store.resolve(image)?;
    store.tag(&parse_name(new_name)?, &found.descriptor)?;
    Ok(())
}

/// A name given by the user, its error as the CLI words it.
pub fn parse_name(name: &str) -> Result<Reference, BuildError> {
    Reference::parse(name).map_err(|e| BuildError::Request(e.to_string()))
}

/// Pushes `image` to `dest`, else to the name it was found by, else to
/// its first name, reporting to `events`.
pub fn push(
    store: &Store,
    registry: &ClientOptions,
    image: &str,
    dest: Option<&Reference>,
    events: &EventSink,
) -> Result<Pushed, BuildError> {
    let found = store.resolve(image)?;
    let dest = match dest {
        Some(d) => d.clone(),
        None => found
            .by_name
            .clone()
            .or_else(|| found.tags.first().cloned())
            .ok_or_else(|| {
                BuildError::Request(format!(
                    "{image} has no name to push to; give a destination: `kiln push {image} REGISTRY/REPO:TAG`"
                ))
            })?,
    };
    let client = Client::new(registry.clone());
    let pushed = Pusher {
        client: &client,
        events,
    }
    .push(store, &found.descriptor, &dest)?;
    Ok(Pushed {
        reference: dest,
        digest: pushed.digest,
    })
}

/// Names an empty OCI index `list`.
pub fn manifest_create(store: &Store, list: &Reference) -> Result<(), BuildError> {
    write_list(
        store,
        list,
        Index::new(ManifestFormat::OciIndex, Vec::new()),
    )
}

/// Adds `image`'s manifest to the index named `list`, with the platform
/// its config gives.
pub fn manifest_add(store: &Store, list: &Reference, image: &str) -> Result<(), BuildError> {
    let listed = store.resolve(&list.to_string())?.descriptor;
    let Parsed::Index(_, mut index) = parse(store, &listed)? else {
        return Err(BuildError::Request(format!(
            "{} is an image, not a manifest list; create one with manifest create",
            list.familiar()
        )));
    };
    let found = store.resolve(image)?.descriptor;
    let Parsed::Manifest(_, manifest) = parse(store, &found)? else {
        return Err(BuildError::NotSupported(format!(
            "{image} is a manifest list itself; add its images one by one"
        )));
    };
    let config = ImageConfig::from_json(&store.read_blob(&manifest.config.digest)?)
        .map_err(|e| BuildError::Request(format!("{image}: its config: {e}")))?;
    let platform = Platform::from_json(&serde_json::Value::Object(config.as_json().clone()))
        .ok_or_else(|| {
            BuildError::Request(format!(
                "{image}: its config names no os and architecture, so it has no place in a manifest list"
            ))
        })?;
    let mut entry = Descriptor::new(&found.media_type, found.digest, found.size);
    entry = entry.with_platform(&platform);
    index.manifests.retain(|m| m.digest != found.digest);
    index.manifests.push(entry);
    write_list(store, list, *index)
}

fn parse(store: &Store, desc: &Descriptor) -> Result<Parsed, BuildError> {
    parse_manifest(&store.read_blob(&desc.digest)?, Some(&desc.media_type))
        .map_err(|e| BuildError::Request(format!("{}: {e}", desc.digest)))
}

fn write_list(store: &Store, list: &Reference, index: Index) -> Result<(), BuildError> {
    let info = store.put_bytes(&index.to_json())?;
    let desc = Descriptor::new(media_type::OCI_INDEX, info.digest, info.size);
    store.tag(list, &desc)?;
    Ok(())
}
