//! Media types, defined once for every crate: OCI's and Docker's schema 2
//! names for manifests, indexes, configs and layers.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker uncompressed layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign (non-distributable) gzip layer, used by Windows bases.
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker foreign (non-distributable) uncompressed layer.
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar";
/// OCI non-distributable uncompressed layer (deprecated by the image spec,
/// still found in old images).
pub const OCI_NONDISTRIBUTABLE_LAYER: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable gzip layer (deprecated).
pub const OCI_NONDISTRIBUTABLE_LAYER_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable zstd layer (deprecated).
pub const OCI_NONDISTRIBUTABLE_LAYER_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

/// True for single-image manifests (OCI or Docker).
pub fn is_manifest(mt: &str) -> bool {
    mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
}

/// True for multi-platform indexes (OCI or Docker).
pub fn is_index(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
}

/// The ordinary layer type of the same format as the non-distributable
/// layer type `mt` (Docker foreign, OCI non-distributable), or `None` when
/// `mt` is not one: what a layer becomes when kiln pushes its bytes, as
/// BuildKit's `layerToDistributable` maps it.
pub fn distributable(mt: &str) -> Option<&'static str> {
    Some(match mt {
        DOCKER_FOREIGN_LAYER_GZIP => DOCKER_LAYER_GZIP,
        DOCKER_FOREIGN_LAYER => DOCKER_LAYER,
        OCI_NONDISTRIBUTABLE_LAYER_GZIP => OCI_LAYER_GZIP,
        OCI_NONDISTRIBUTABLE_LAYER => OCI_LAYER,
        OCI_NONDISTRIBUTABLE_LAYER_ZSTD => OCI_LAYER_ZSTD,
        _ => return None,
    })
}

/// True for the non-distributable layer types, by containerd's rule
/// (`images.IsNonDistributable`): either prefix.
pub fn is_non_distributable(mt: &str) -> bool {
    mt.starts_with("application/vnd.docker.image.rootfs.foreign.")
        || mt.starts_with("application/vnd.oci.image.layer.nondistributable.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_distributable_types_map_to_their_ordinary_form() {
        for (from, to) in [
            (DOCKER_FOREIGN_LAYER_GZIP, DOCKER_LAYER_GZIP),
            (DOCKER_FOREIGN_LAYER, DOCKER_LAYER),
            (OCI_NONDISTRIBUTABLE_LAYER_GZIP, OCI_LAYER_GZIP),
            (OCI_NONDISTRIBUTABLE_LAYER, OCI_LAYER),
            (OCI_NONDISTRIBUTABLE_LAYER_ZSTD, OCI_LAYER_ZSTD),
        ] {
            assert!(is_non_distributable(from), "{from}");
            assert_eq!(distributable(from), Some(to));
            assert!(!is_non_distributable(to), "{to}");
            assert_eq!(distributable(to), None);
        }
    }
}
