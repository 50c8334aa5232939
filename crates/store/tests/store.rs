//! The store's public API against a real store in a temp dir.

use flate2::write::GzEncoder;
use kiln_oci::reference::Reference;
use kiln_oci::Digest;
use kiln_store::{media_type, ArchiveImage, Descriptor, Error, LeaseUsage, Store};
use std::fs;
use std::io::Write;
use std::path::Path;

/// A one-layer image whose layer holds `file` with `content`; returns the
/// manifest descriptor and the layer's digest.
fn make_image(store: &Store, content: &[u8]) -> (Descriptor, Digest) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "file", content).unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let layer = store.put_bytes(&gz.finish().unwrap()).unwrap();
    let config = serde_json::json!({
        "created": "2024-01-02T03:04:05Z",
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(&tar)]},
    });
    let config = store.put_bytes(config.to_string().as_bytes()).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": Descriptor::new(media_type::OCI_CONFIG, config.digest, config.size),
        "layers": [Descriptor::new(media_type::OCI_LAYER_GZIP, layer.digest, layer.size)],
    });
    let m = store.put_bytes(manifest.to_string().as_bytes()).unwrap();
    (
        Descriptor::new(media_type::OCI_MANIFEST, m.digest, m.size),
        layer.digest,
    )
}

fn r(s: &str) -> Reference {
    s.parse().unwrap()
}

/// The entries of the store's own work directory.
fn tmp_entries(store: &Store) -> usize {
    fs::read_dir(store.tmp_dir()).unwrap().count()
}

#[test]
fn blobs_are_ingested_checked_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join("content/oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let info = store.put_bytes(b"hello").unwrap();
    assert_eq!(info.digest, Digest::of(b"hello"));
    assert_eq!(info.size, 5);
    assert!(store.has_blob(&info.digest));
    assert_eq!(store.read_blob(&info.digest).unwrap(), b"hello");
    assert_eq!(
        store.blob_path(&info.digest),
        dir.path()
            .join("content/blobs/sha256")
            .join(info.digest.hex())
    );

    let mut w = store.ingest().unwrap();
    w.write_all(b"other").unwrap();
    let err = w.commit(Some(Digest::of(b"expected"))).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(!store.has_blob(&Digest::of(b"other")));
    let w = store.ingest().unwrap();
    drop(w);
    assert_eq!(tmp_entries(&store), 0, "abandoned writers leave nothing");

    let missing = Digest::of(b"nope");
    let err = store.open_blob(&missing).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "blob {missing} is not in the store at {}; run `kiln fsck` to check the store",
            dir.path().display()
        )
    );
}

#[test]
fn tags_resolve_move_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (a, _) = make_image(&store, b"a");
    let (b, _) = make_image(&store, b"b");
    store.tag(&r("busybox"), &a).unwrap();
    store.tag(&r("localhost:5000/x/y:1"), &a).unwrap();
    store.add_untagged(&b).unwrap();

    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("content/index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "docker.io/library/busybox:latest"
    );

    let got = store.resolve("busybox").unwrap();
    assert_eq!(got.descriptor, a);
    assert_eq!(got.by_name, Some(r("busybox:latest")));
    assert_eq!(got.tags, vec![r("busybox"), r("localhost:5000/x/y:1")]);
    assert_eq!(
        store
            .resolve("docker.io/library/busybox:latest")
            .unwrap()
            .descriptor,
        a
    );
    assert_eq!(store.resolve(&b.digest.hex()[..12]).unwrap().descriptor, b);
    assert_eq!(
        store
            .resolve(&format!("sha256:{}", &a.digest.hex()[..8]))
            .unwrap()
            .by_name,
        None
    );
    assert_eq!(
        store
            .resolve(&format!("busybox@{}", a.digest))
            .unwrap()
            .descriptor,
        a
    );

    let err = store.resolve("nothere:1").unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "image nothere:1 not found in the store at {}; run `kiln pull nothere:1` or `kiln images`",
            dir.path().display()
        )
    );

    // Moving a tag; tagging the untagged image replaces its `<none>` entry.
    store.tag(&r("busybox"), &b).unwrap();
    let images = store.images().unwrap();
    let names: Vec<_> = images
        .iter()
        .map(|i| {
            (
                i.reference.as_ref().map(|r| r.familiar()),
                i.descriptor.digest,
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            (Some("localhost:5000/x/y:1".to_string()), a.digest),
            (Some("busybox:latest".to_string()), b.digest),
        ]
    );

    let err = store
        .tag(&r(&format!("x@{}", a.digest)), &a)
        .unwrap_err()
        .to_string();
    assert!(err.contains("a tag is needed"), "{err}");
    assert_eq!(store.untag(&r("busybox")).unwrap(), b);
    assert!(matches!(
        store.untag(&r("busybox")),
        Err(Error::ImageNotFound { .. })
    ));
    assert_eq!(store.remove(&a.digest).unwrap().len(), 1);
    assert!(store.images().unwrap().is_empty());
}

#[test]
fn tagging_needs_every_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (m, layer) = make_image(&store, b"x");
    fs::remove_file(store.blob_path(&layer)).unwrap();
    let err = store.tag(&r("x"), &m).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "cannot add image {}: application/vnd.oci.image.layer.v1.tar+gzip {layer} is missing; \
             store the blobs it needs first",
            m.digest
        )
    );
}

#[test]
fn gc_removes_only_unreferenced_blobs_and_keeps_what_live_leases_hold() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (keep, _) = make_image(&store, b"keep");
    let (gone, gone_layer) = make_image(&store, b"gone");
    store.tag(&r("keep"), &keep).unwrap();
    store.tag(&r("gone"), &gone).unwrap();
    store.untag(&r("gone")).unwrap();
    let loose = store.put_bytes(b"written, never tagged").unwrap();
    drop(store);

    // Another process is building: it uses gone's layer, has committed a
    // blob it has not tagged yet and is writing another.
    let writer = Store::open(dir.path()).unwrap();
    assert!(writer.hold(&gone_layer).unwrap());
    let fresh = writer.put_bytes(b"a layer a build just wrote").unwrap();
    let mut w = writer.ingest().unwrap();
    w.write_all(b"12345").unwrap();
    w.flush().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.in_flight(),
        LeaseUsage {
            leases: 1,
            bytes: 5
        }
    );
    let report = store.gc().unwrap();
    assert_eq!((report.removed_blobs, report.kept_in_flight), (3, 2));
    assert!(store.has_blob(&gone_layer) && store.has_blob(&fresh.digest));
    assert!(!store.has_blob(&loose.digest));
    assert_eq!(tmp_entries(&writer), 1, "the writer's ingest stays");
    let info = w.commit(None).unwrap();
    assert!(writer.has_blob(&info.digest));
    drop(writer);

    // Its lease ended with it: what it held goes.
    let layer_bytes = fs::metadata(store.blob_path(&gone_layer)).unwrap().len();
    let report = store.gc().unwrap();
    assert_eq!(report.removed_blobs, 3);
    assert_eq!(report.kept_in_flight, 0);
    assert!(report.reclaimed_bytes > layer_bytes);
    assert!(!store.has_blob(&gone_layer));
    assert_eq!(store.resolve("keep").unwrap().descriptor, keep);
    assert!(store.fsck().unwrap().problems.is_empty());
}

#[test]
fn opening_the_store_reclaims_what_dead_leases_left_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let live = Store::open(root).unwrap();
    fs::write(live.tmp_dir().join("build-scratch"), b"live work").unwrap();
    // A lease whose process died: its lock is not held by anyone.
    let dead = "999999.dead.0";
    fs::create_dir_all(root.join("leases").join(dead)).unwrap();
    fs::write(root.join("leases").join(dead).join("lock"), b"").unwrap();
    fs::write(
        root.join("leases").join(dead).join("blobs"),
        format!("{}\n", Digest::of(b"x")),
    )
    .unwrap();
    fs::create_dir_all(root.join("tmp").join(dead).join("build-1")).unwrap();
    fs::write(root.join("tmp").join(dead).join("build-1/f"), [0u8; 1000]).unwrap();
    fs::write(root.join("tmp").join(dead).join("ingest-2"), [0u8; 24]).unwrap();
    // Work with no lease at all (made before leases existed, or whose
    // lease was reclaimed first), and a lease killed while being made.
    fs::write(root.join("tmp/ingest-orphan"), [0u8; 100]).unwrap();
    fs::create_dir_all(root.join("leases/.new-1.2.3")).unwrap();
    fs::write(root.join("leases/.new-1.2.3/lock"), b"").unwrap();
    assert!(!Store::lease_is_live(root, dead));
    assert!(Store::lease_is_live(root, live.lease_id()));

    let next = Store::open(root).unwrap();
    assert_eq!(
        next.reclaimed(),
        LeaseUsage {
            leases: 1,
            bytes: 1124
        }
    );
    let mut leases: Vec<String> = fs::read_dir(root.join("leases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    leases.sort();
    let mut expected = vec![live.lease_id().to_string(), next.lease_id().to_string()];
    expected.sort();
    assert_eq!(leases, expected);
    assert_eq!(tmp_entries(&live), 1);
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 2);
    assert_eq!(
        next.in_flight(),
        LeaseUsage {
            leases: 1,
            bytes: 9
        }
    );
    drop(live);
    drop(next);
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(root.join("leases")).unwrap().count(), 0);
}

#[test]
fn gc_keeping_spares_the_blobs_it_is_given_and_usage_counts_what_images_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (image, image_layer) = make_image(&store, b"image");
    store.tag(&r("image"), &image).unwrap();
    let cached = store
        .put_bytes(b"a layer only the build cache knows")
        .unwrap();
    let loose = store.put_bytes(b"a blob nothing knows").unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let (live, total) = store.usage().unwrap();
    assert!(live.contains(&image.digest) && live.contains(&image_layer));
    assert!(!live.contains(&cached.digest) && !live.contains(&loose.digest));
    assert_eq!(live.len(), 3);
    let on_disk: u64 = fs::read_dir(dir.path().join("content/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(total, on_disk);
    let report = store
        .gc_keeping(|| Ok::<_, Error>(std::iter::once(cached.digest).collect()))
        .unwrap();
    assert_eq!(report.removed_blobs, 1);
    assert!(store.has_blob(&cached.digest));
    assert!(!store.has_blob(&loose.digest));
    assert!(store.has_blob(&image_layer));
}

#[test]
fn a_prehashed_blob_is_stored_under_the_digest_given_and_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.ingest_prehashed().unwrap();
    w.write_all(b"layer bytes").unwrap();
    assert_eq!(w.len(), 11);
    let info = w.commit(Some(Digest::of(b"layer bytes"))).unwrap();
    assert_eq!(info.size, 11);
    assert_eq!(store.read_blob(&info.digest).unwrap(), b"layer bytes");
    let mut w = store.ingest_prehashed().unwrap();
    w.write_all(b"x").unwrap();
    let err = w.commit(None).unwrap_err().to_string();
    assert!(err.contains("needs its digest"), "{err}");
    // Nothing half-written stays behind.
    assert_eq!(tmp_entries(&store), 0);
}

#[test]
fn fsck_lists_corrupt_and_missing_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (m, layer) = make_image(&store, b"x");
    store.tag(&r("x"), &m).unwrap();
    let clean = store.fsck().unwrap();
    assert_eq!((clean.blobs_checked, clean.images_checked), (3, 1));
    assert!(clean.problems.is_empty());

    fs::remove_file(store.blob_path(&layer)).unwrap();
    let config = Digest::of(b"not the config");
    fs::write(store.blob_path(&config), b"tampered").unwrap();
    let report = store.fsck().unwrap();
    assert_eq!(
        report.problems,
        vec![
            format!("blob {config} is corrupt: its content has digest {}", Digest::of(b"tampered")),
            format!(
                "image docker.io/library/x:latest: application/vnd.oci.image.layer.v1.tar+gzip {layer} is missing"
            ),
        ]
    );
}

#[test]
fn oci_layout_and_docker_archive_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("a")).unwrap();
    let (m, _) = make_image(&store, b"content");
    store.tag(&r("app:1"), &m).unwrap();
    let img = ArchiveImage {
        descriptor: m.clone(),
        tags: vec![r("app:1"), r("quay.io/o/app:2")],
    };

    let layout = dir.path().join("layout");
    store
        .export_oci(std::slice::from_ref(&img), &layout)
        .unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    // BuildKit's naming: the tag for skopeo and umoci, the full name for
    // containerd and `kiln load`.
    assert_eq!(
        index["manifests"][1]["annotations"]["org.opencontainers.image.ref.name"],
        "2"
    );
    assert_eq!(
        index["manifests"][1]["annotations"]["io.containerd.image.name"],
        "quay.io/o/app:2"
    );
    let oci_tar = dir.path().join("img.tar");
    store
        .export_oci(std::slice::from_ref(&img), &oci_tar)
        .unwrap();
    let docker_tar = dir.path().join("docker.tar");
    store
        .save_docker(std::slice::from_ref(&img), &docker_tar)
        .unwrap();

    for (src, want_digest) in [(&layout, true), (&oci_tar, true), (&docker_tar, false)] {
        let other = Store::open(
            dir.path()
                .join(format!("b-{}", src.file_name().unwrap().to_string_lossy())),
        )
        .unwrap();
        let loaded = other.load(src).unwrap();
        assert_eq!(loaded.len(), 1, "{}", src.display());
        assert_eq!(loaded[0].tags, img.tags);
        if want_digest {
            assert_eq!(loaded[0].descriptor, m);
        }
        let got = other.resolve("quay.io/o/app:2").unwrap();
        assert_eq!(got.tags, img.tags);
        assert!(other.fsck().unwrap().problems.is_empty());
    }
}

#[test]
fn load_rejects_tampered_docker_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("a")).unwrap();
    let (m, layer) = make_image(&store, b"content");
    let out = dir.path().join("d");
    fs::create_dir(&out).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&m.digest).unwrap()).unwrap();
    let config: Digest = manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    fs::copy(store.blob_path(&config), out.join("config.json")).unwrap();
    fs::write(out.join("layer.tar"), b"not the layer").unwrap();
    fs::write(
        out.join("manifest.json"),
        r#"[{"Config":"config.json","RepoTags":["t:1"],"Layers":["layer.tar"]}]"#,
    )
    .unwrap();
    let other = Store::open(dir.path().join("b")).unwrap();
    let err = other.load(&out).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "the uncompressed content of {}",
            out.join("layer.tar").display()
        )),
        "{err}"
    );
    assert!(err.contains("the data is corrupt or was changed"), "{err}");
    let _ = layer;

    fs::write(
        out.join("manifest.json"),
        r#"[{"Config":"../config.json","RepoTags":[],"Layers":[]}]"#,
    )
    .unwrap();
    let err = other.load(&out).unwrap_err().to_string();
    assert_eq!(
        err,
        "path \"../config.json\" in manifest.json: points outside the archive"
    );
    let err = other.load(dir.path()).unwrap_err().to_string();
    assert!(err.ends_with("is neither an OCI image layout (no index.json) nor a docker-archive (no manifest.json)"), "{err}");
}

#[test]
fn default_root_honours_kiln_root_then_the_user_s_directories() {
    let some = |p: &str| Some(std::path::PathBuf::from(p));
    assert_eq!(
        Store::default_root(some("/somewhere/kiln"), some("/data"), some("/home/u")).unwrap(),
        Path::new("/somewhere/kiln")
    );
    #[cfg(unix)]
    let is_root = std::os::unix::fs::MetadataExt::uid(&fs::metadata("/proc/self").unwrap()) == 0;
    // Windows has no root whose store is the system's.
    #[cfg(windows)]
    let is_root = false;
    let expected = if is_root {
        "/var/lib/kiln"
    } else {
        "/data/kiln"
    };
    assert_eq!(
        Store::default_root(None, some("/data"), some("/home/u")).unwrap(),
        Path::new(expected)
    );
    #[cfg(windows)]
    assert_eq!(
        Store::default_root(None, None, some(r"C:\Users\u")).unwrap(),
        Path::new(r"C:\Users\u\AppData\Local\kiln")
    );
}

#[test]
fn bare_ref_names_load_untagged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("a")).unwrap();
    let (m, _) = make_image(&store, b"content");
    let layout = dir.path().join("layout");
    let img = ArchiveImage {
        descriptor: m.clone(),
        tags: vec![r("app:1")],
    };
    store.export_oci(&[img], &layout).unwrap();
    let index_path = layout.join("index.json");
    // A layout another tool wrote: a bare tag and no containerd name.
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    let annotations = index["manifests"][0]["annotations"]
        .as_object_mut()
        .unwrap();
    annotations.remove("io.containerd.image.name");
    annotations.insert("org.opencontainers.image.ref.name".into(), "latest".into());
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    let other = Store::open(dir.path().join("b")).unwrap();
    let loaded = other.load(&layout).unwrap();
    assert_eq!(loaded.len(), 1);
    assert!(loaded[0].tags.is_empty());
    let images = other.images().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].reference, None);
    assert_eq!(images[0].descriptor, m);
}

#[test]
fn an_index_uses_the_host_platform_and_may_lack_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (m, _) = make_image(&store, b"amd");
    let host = m.clone().with_platform(&kiln_oci::Platform::host());
    let mut absent = Descriptor::new(media_type::OCI_MANIFEST, Digest::of(b"never pulled"), 10);
    absent.extra.insert(
        "platform".into(),
        serde_json::json!({"os": "linux", "architecture": "s390x"}),
    );
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": [absent, host]});
    let info = store.put_bytes(index.to_string().as_bytes()).unwrap();
    let idesc = Descriptor::new(media_type::OCI_INDEX, info.digest, info.size);
    store.tag(&r("multi:1"), &idesc).unwrap();

    assert_eq!(store.select_manifest(&idesc).unwrap(), host);
    assert_eq!(store.image_blobs(&idesc).unwrap().len(), 4);
    assert!(store.fsck().unwrap().problems.is_empty());
    let out = dir.path().join("multi.tar");
    let img = ArchiveImage {
        descriptor: idesc.clone(),
        tags: vec![r("multi:1")],
    };
    store.save_docker(&[img], &out).unwrap();
    let other = Store::open(dir.path().join("other")).unwrap();
    let loaded = other.load(&out).unwrap();
    assert_eq!(
        loaded[0].descriptor.digest, m.digest,
        "the docker-archive holds the host's manifest"
    );
}

#[test]
fn foreign_layers_may_be_absent() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (base, layer) = make_image(&store, b"x");
    let manifest: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&base.digest).unwrap()).unwrap();
    let foreign_bytes = b"windows base layer";
    let foreign = Digest::of(foreign_bytes);
    let mut with_foreign = manifest.clone();
    with_foreign["layers"].as_array_mut().unwrap().insert(
        0,
        serde_json::json!({
            "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "digest": foreign, "size": foreign_bytes.len(),
            "urls": ["https://example.com/base.tar.gz"],
        }),
    );
    let m = store
        .put_bytes(with_foreign.to_string().as_bytes())
        .unwrap();
    let m = Descriptor::new(media_type::OCI_MANIFEST, m.digest, m.size);
    store.tag(&r("win"), &m).unwrap();
    let report = store.fsck().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        report.notes,
        vec![format!(
            "image docker.io/library/win:latest: foreign layer {foreign} is not present \
             (it is fetched from https://example.com/base.tar.gz when needed)"
        )]
    );
    // An ordinary layer is still required.
    let mut broken = with_foreign.clone();
    broken["layers"][1]["digest"] = serde_json::json!(Digest::of(b"gone"));
    let b = store.put_bytes(broken.to_string().as_bytes()).unwrap();
    let b = Descriptor::new(media_type::OCI_MANIFEST, b.digest, b.size);
    let err = store.tag(&r("broken"), &b).unwrap_err().to_string();
    assert!(
        err.contains("is missing; store the blobs it needs first"),
        "{err}"
    );

    store.gc().unwrap();
    assert!(store.has_blob(&layer));
    // Exported layouts leave the foreign layer out, as skopeo does, and load back.
    let out = dir.path().join("out");
    store
        .export_oci(
            &[ArchiveImage {
                descriptor: m.clone(),
                tags: vec![r("win")],
            }],
            &out,
        )
        .unwrap();
    assert!(!out.join("blobs/sha256").join(foreign.hex()).exists());
    let other = Store::open(dir.path().join("other")).unwrap();
    let loaded = other.load(&out).unwrap();
    assert_eq!(loaded[0].descriptor.digest, m.digest);

    // Once fetched, the bytes count like any blob's.
    store.put_bytes(foreign_bytes).unwrap();
    let report = store.fsck().unwrap();
    assert!(report.problems.is_empty() && report.notes.is_empty());
    store.gc().unwrap();
    assert!(store.has_blob(&foreign));
}

/// A build drops its uncompressed layers once their compressed blobs are
/// made; everything anyone else still uses stays.
#[test]
fn discard_removes_only_blobs_nothing_else_uses() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (image, image_layer) = make_image(&store, b"image");
    store.tag(&r("image"), &image).unwrap();
    let done = store
        .put_bytes(b"an uncompressed layer, compressed since")
        .unwrap();
    let twice = store.put_bytes(b"the same layer two builds made").unwrap();
    store.put_bytes(b"the same layer two builds made").unwrap();
    let cached = store.put_bytes(b"a layer a cache record names").unwrap();
    let shared = store.put_bytes(b"a layer another process uses").unwrap();
    let other = Store::open(dir.path()).unwrap();
    assert!(other.hold(&shared.digest).unwrap());

    let all = [
        done.digest,
        twice.digest,
        cached.digest,
        shared.digest,
        image_layer,
    ];
    let removed = store
        .discard(&all, || {
            Ok::<_, Error>(std::iter::once(cached.digest).collect())
        })
        .unwrap();
    assert_eq!(removed, 1);
    assert!(!store.has_blob(&done.digest));
    assert!(store.has_blob(&twice.digest), "held by a second build here");
    assert!(store.has_blob(&cached.digest));
    assert!(store.has_blob(&shared.digest));
    assert!(store.has_blob(&image_layer));
    assert_eq!(store.resolve("image").unwrap().descriptor, image);

    // Once the second build is done with it too, it goes.
    let removed = store
        .discard(&[twice.digest], || Ok::<_, Error>(Default::default()))
        .unwrap();
    assert_eq!(removed, 1);
    assert!(!store.has_blob(&twice.digest));
}

/// A warm rebuild tags the image it tagged before: the index is not
/// written again (a write and two fsyncs, most of a warm build's time on
/// a slow disk), and an image named anew still moves the tag.
#[test]
fn tagging_an_image_with_the_name_it_has_leaves_the_index_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (one, _) = make_image(&store, b"one");
    let (two, _) = make_image(&store, b"two");
    store.tag(&r("app"), &one).unwrap();
    let index = dir.path().join("content/index.json");
    let before = fs::read(&index).unwrap();
    #[cfg(unix)]
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
    // The file index: a rewrite renames a new file over the old one.
    #[cfg(windows)]
    let inode = |p: &Path| {
        kiln_oci::tree::FileIdentity::of_file(&fs::File::open(p).unwrap())
            .unwrap()
            .ino
    };
    let first = inode(&index);
    store.tag(&r("app"), &one).unwrap();
    assert_eq!(inode(&index), first, "not rewritten");
    assert_eq!(fs::read(&index).unwrap(), before);

    let mut annotated = one.clone();
    annotated
        .annotations
        .insert("org.example.note".into(), "x".into());
    store.tag(&r("app"), &annotated).unwrap();
    assert_ne!(inode(&index), first, "new annotations are written");
    store.tag(&r("app"), &two).unwrap();
    assert_eq!(store.resolve("app").unwrap().descriptor.digest, two.digest);
}
