//! The store commands, run as the built `kiln` binary, checked by real
//! clients: skopeo, umoci and podman.

mod common {
    pub mod store_image;
}

use common::store_image::{kiln, kiln_ok, make_image, require, run_tool, sample_tree, Entry, Kind};
use kiln_oci::Digest;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CREATED: &str = "2020-01-01T00:00:00Z";

fn years_since_2020() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (now - 1_577_836_800) / (365 * 86400)
}

#[test]
fn images_lists_tags_as_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (m, config) = make_image(root, "busybox", &sample_tree(), CREATED);
    kiln_ok(root, &["tag", "busybox", "localhost:5000/team/app:v1"]);
    let size: u64 = kiln_store::Store::open(root)
        .unwrap()
        .image_blobs(&m)
        .unwrap()
        .iter()
        .map(|d| d.size)
        .sum();
    // IMAGE ID as docker and podman show it: the config's digest.
    let id = &config.hex()[..12];
    let ago = format!("{} years ago", years_since_2020());
    assert!((1000..10_000).contains(&size), "{size}");
    let size_h = format!("{:.2}kB", size as f64 / 1000.0);
    let rows = [
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        ["busybox", "latest", id, &ago, &size_h],
        ["localhost:5000/team/app", "v1", id, &ago, &size_h],
    ];
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap())
        .collect();
    let expected: String = rows
        .iter()
        .map(|r| {
            let line: String = (0..5)
                .map(|c| format!("{:w$}   ", r[c], w = widths[c]))
                .collect();
            format!("{}\n", line.trim_end())
        })
        .collect();
    assert_eq!(kiln_ok(root, &["images"]), expected);

    let json: serde_json::Value =
        serde_json::from_str(&kiln_ok(root, &["images", "--format", "json"])).unwrap();
    assert_eq!(
        json[1],
        serde_json::json!({
            "Repository": "localhost:5000/team/app",
            "Tag": "v1",
            "Name": "localhost:5000/team/app:v1",
            "Id": m.digest.to_string(),
            "ImageId": config.to_string(),
            "Created": CREATED,
            "Size": size,
        })
    );

    // A Go template per image, with docker's field names.
    assert_eq!(
        kiln_ok(
            root,
            &[
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}} {{.CreatedSince}}"
            ]
        ),
        format!(
            "busybox:latest {id} {size_h} {ago}\nlocalhost:5000/team/app:v1 {id} {size_h} {ago}\n"
        )
    );
    assert_eq!(
        kiln_ok(root, &["images", "--format", "{{.Digest}}", "busybox"]),
        format!("{}\n", m.digest)
    );

    // -q: each id once; --no-trunc: in full; a reference filter, with
    // wildcards; --digests: the manifest digest.
    assert_eq!(kiln_ok(root, &["images", "-q"]), format!("{id}\n"));
    assert_eq!(
        kiln_ok(root, &["images", "-q", "--no-trunc"]),
        format!("{config}\n")
    );
    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["images"];
        all.extend_from_slice(args);
        kiln_ok(root, &all)
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(":"))
            .collect()
    };
    assert_eq!(names(&["busybox"]), ["busybox:latest"]);
    assert_eq!(
        names(&["docker.io/library/busybox:latest"]),
        ["busybox:latest"]
    );
    assert_eq!(
        names(&["localhost:5000/team/*"]),
        ["localhost:5000/team/app:v1"]
    );
    assert_eq!(
        names(&["localhost:5000/team/app:v?"]),
        ["localhost:5000/team/app:v1"]
    );
    assert!(names(&["busybox:2"]).is_empty());
    assert!(names(&["*"]).contains(&"busybox:latest".to_string()));
    let with_digests = kiln_ok(root, &["images", "--digests", "busybox"]);
    let mut lines = with_digests.lines();
    assert!(
        lines.next().unwrap().contains("TAG      DIGEST"),
        "{with_digests}"
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[..4], ["busybox", "latest", &m.digest.to_string(), id]);
    // The id it shows names the image in other commands.
    kiln_ok(root, &["tag", id, "by-id:1"]);
    assert_eq!(names(&["by-id"]), ["by-id:1"]);
}

#[test]
fn inspect_shows_manifest_and_config() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (m, config) = make_image(root, "app:1", &sample_tree(), CREATED);
    let all: serde_json::Value =
        serde_json::from_str(&kiln_ok(root, &["inspect", "app:1"])).unwrap();
    // docker's shape: an array, one object per image.
    assert_eq!(all.as_array().unwrap().len(), 1);
    let out = &all[0];
    assert_eq!(out["Id"], config.to_string());
    assert_eq!(out["Digest"], m.digest.to_string());
    assert_eq!(out["RepoTags"], serde_json::json!(["app:1"]));
    assert_eq!(
        out["RepoDigests"],
        serde_json::json!([format!("app@{}", m.digest)])
    );
    assert_eq!(out["Created"], CREATED);
    assert_eq!(out["Os"], "linux");
    assert_eq!(out["Architecture"], "amd64");
    assert_eq!(out["RootFS"]["type"], "layers");
    assert_eq!(
        out["MediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(out["Platform"], "linux/amd64");
    assert_eq!(out["Index"], serde_json::Value::Null);
    assert_eq!(out["ManifestDigest"], m.digest.to_string());
    assert_eq!(out["Manifest"]["config"]["digest"], config.to_string());
    assert_eq!(out["ConfigDigest"], config.to_string());
    assert_eq!(out["Config"]["Cmd"], serde_json::json!(["/bin/tool"]));
    assert_eq!(
        out["ImageConfig"]["config"]["Cmd"],
        serde_json::json!(["/bin/tool"])
    );
    // By id prefix too: the manifest's, or the config's as docker shows it.
    for prefix in [&m.digest.hex()[..10], &config.hex()[..12]] {
        let by_id: serde_json::Value =
            serde_json::from_str(&kiln_ok(root, &["inspect", prefix])).unwrap();
        assert_eq!(by_id, all, "{prefix}");
    }
    // Two images, two objects.
    kiln_ok(root, &["tag", "app:1", "app:2"]);
    let two: serde_json::Value =
        serde_json::from_str(&kiln_ok(root, &["inspect", "app:1", "app:2"])).unwrap();
    assert_eq!(two.as_array().unwrap().len(), 2);
}

/// `kiln inspect --format` with the Go templates docker users type.
#[test]
fn inspect_format_takes_go_templates() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (m, config) = make_image(root, "app:1", &sample_tree(), CREATED);
    let format = |t: &str| kiln_ok(root, &["inspect", "--format", t, "app:1"]);
    assert_eq!(format("{{.Id}}"), format!("{config}\n"));
    assert_eq!(format("{{.Os}}/{{.Architecture}}"), "linux/amd64\n");
    assert_eq!(format("{{.Config.Cmd}}"), "[/bin/tool]\n");
    assert_eq!(format("{{json .Config.Cmd}}"), "[\"/bin/tool\"]\n");
    let config_json: serde_json::Value = serde_json::from_str(&format("{{json .Config}}")).unwrap();
    assert_eq!(config_json["Cmd"], serde_json::json!(["/bin/tool"]));
    let whole: serde_json::Value = serde_json::from_str(&format("{{json .}}")).unwrap();
    assert_eq!(whole["Digest"], m.digest.to_string());
    assert_eq!(format("{{range .RepoTags}}<{{.}}>{{end}}"), "<app:1>\n");
    assert_eq!(
        kiln_ok(root, &["inspect", "-f", "{{.Config.Env}}", "app:1"]),
        "<no value>\n",
        "a field the config lacks, as Go prints it"
    );
    let bad = kiln(root, &["inspect", "--format", "{{printf .Id}}", "app:1"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("kiln knows json, join and index"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn missing_images_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let out = kiln(root, &["inspect", "busybox:latest"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: image busybox:latest not found in the store at {}; run `kiln pull busybox:latest` or `kiln images`\n",
            root.display()
        )
    );
    let out = kiln(root, &["tag", "busybox", "Bad:Name"]);
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: image busybox not found"));
    make_image(root, "busybox", &sample_tree(), CREATED);
    let out = kiln(root, &["tag", "busybox", "Bad"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: invalid image reference \"Bad\": repository name \"library/Bad\" must be lowercase\n"
    );
}

#[test]
fn rm_prune_and_fsck() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (keep, _) = make_image(root, "keep", &sample_tree(), CREATED);
    let mut other = sample_tree();
    other[6].kind = Kind::File(b"different\n".to_vec());
    let (gone, gone_config) = make_image(root, "gone:1", &other, CREATED);
    kiln_ok(root, &["tag", "gone:1", "gone:2"]);

    let out = kiln(root, &["rm", &gone.digest.hex()[..12]]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: image {} has several names (gone:1, gone:2); remove them by name, or use --force\n",
            &gone.digest.hex()[..12]
        )
    );
    // `rmi`, docker's and podman's name, is the same command.
    assert_eq!(
        kiln_ok(root, &["rmi", "gone:1", "gone:2"]),
        "Untagged: gone:1\nUntagged: gone:2\n"
    );

    let store = kiln_store::Store::open(root).unwrap();
    let layer = {
        let m: serde_json::Value =
            serde_json::from_slice(&store.read_blob(&gone.digest).unwrap()).unwrap();
        m["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .parse::<Digest>()
            .unwrap()
    };
    let bytes: u64 = [gone.digest, gone_config, layer]
        .iter()
        .map(|d| fs::metadata(store.blob_path(d)).unwrap().len())
        .sum();
    drop(store);
    assert_eq!(
        kiln_ok(root, &["prune", "-f"]),
        format!(
            "Deleted 3 blobs; reclaimed {} ({bytes} bytes)\n",
            if bytes < 1000 {
                format!("{bytes}B")
            } else {
                format!("{:.2}kB", bytes as f64 / 1000.0)
            }
        )
    );
    assert_eq!(
        kiln_ok(root, &["fsck"]),
        "3 blobs and 1 images checked: no problems\n"
    );
    assert!(kiln_ok(root, &["inspect", "keep"]).contains(&keep.digest.to_string()));

    // Corruption is found and listed.
    let store = kiln_store::Store::open(root).unwrap();
    let keep_manifest: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&keep.digest).unwrap()).unwrap();
    let keep_layer: Digest = keep_manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    fs::write(store.blob_path(&keep_layer), b"bitrot").unwrap();
    let out = kiln(root, &["fsck"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: the store at {} has 2 problems:\n  - blob {keep_layer} is corrupt: its content has digest {}\n  \
             - image docker.io/library/keep:latest: application/vnd.oci.image.layer.v1.tar+gzip {keep_layer} is 6 bytes, \
             but its descriptor says {}\n\
             Remove broken images with `kiln rm`, run `kiln prune`, then pull or load them again.\n",
            root.display(),
            Digest::of(b"bitrot"),
            keep_manifest["layers"][0]["size"]
        )
    );
}

/// `skopeo` reads kiln's OCI layouts (dir and tar) and docker-archives,
/// and kiln loads what skopeo writes.
#[test]
fn skopeo_reads_and_writes_what_kiln_does() {
    require("skopeo");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (m, config) = make_image(&root, "app:1", &sample_tree(), CREATED);
    let d = |p: &str| dir.path().join(p).display().to_string();
    kiln_ok(&root, &["export", "-o", &d("layout"), "app:1"]);
    kiln_ok(
        &root,
        &["export", "--format", "oci", "-o", &d("layout.tar"), "app:1"],
    );
    kiln_ok(&root, &["save", "-o", &d("docker.tar"), "app:1"]);
    kiln_ok(
        &root,
        &[
            "export",
            "--format",
            "docker",
            "-o",
            &d("export.tar"),
            "app:1",
        ],
    );
    assert_eq!(
        fs::read(d("export.tar")).unwrap(),
        fs::read(d("docker.tar")).unwrap(),
        "export --format docker is save, and archives are deterministic"
    );

    let skopeo =
        |args: &[&str]| run_tool(Command::new("skopeo").arg("--insecure-policy").args(args));
    for src in [
        format!("oci:{}:1", d("layout")),
        format!("oci-archive:{}:1", d("layout.tar")),
    ] {
        let v: serde_json::Value = serde_json::from_str(&skopeo(&["inspect", &src])).unwrap();
        assert_eq!(v["Digest"], m.digest.to_string(), "{src}");
        assert_eq!(v["Os"], "linux");
    }
    let raw: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--config",
        "--raw",
        &format!("docker-archive:{}", d("docker.tar")),
    ]))
    .unwrap();
    assert_eq!(raw["config"]["Cmd"], serde_json::json!(["/bin/tool"]));
    let v: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("docker-archive:{}", d("docker.tar")),
    ]))
    .unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(v["Architecture"], "amd64");

    // skopeo copies kiln's layout to a docker-archive and an OCI layout of
    // its own; kiln loads both and gets the same config back.
    skopeo(&[
        "copy",
        &format!("oci:{}:1", d("layout")),
        &format!("docker-archive:{}:copied:2", d("copied.tar")),
    ]);
    skopeo(&[
        "copy",
        &format!("docker-archive:{}", d("docker.tar")),
        &format!("oci:{}:docker.io/library/copied:3", d("copied-layout")),
    ]);
    let other = dir.path().join("other");
    assert_eq!(
        kiln_ok(&other, &["load", "-i", &d("copied.tar")]),
        "Loaded image: copied:2\n"
    );
    assert_eq!(
        kiln_ok(&other, &["load", "-i", &d("copied-layout")]),
        "Loaded image: copied:3\n"
    );
    for name in ["copied:2", "copied:3"] {
        let v: serde_json::Value =
            serde_json::from_str(&kiln_ok(&other, &["inspect", name])).unwrap();
        assert_eq!(v[0]["ConfigDigest"], config.to_string(), "{name}");
    }
    assert!(kiln_ok(&other, &["fsck"]).ends_with(" blobs and 2 images checked: no problems\n"));
}

/// `umoci unpack` of a kiln layout recreates exactly the tree put in.
#[test]
fn umoci_unpacks_the_exact_tree() {
    require("umoci");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    make_image(&root, "app:1", &sample_tree(), CREATED);
    let layout = dir.path().join("layout");
    kiln_ok(&root, &["export", "-o", layout.to_str().unwrap(), "app:1"]);
    let bundle = dir.path().join("bundle");
    run_tool(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:1", layout.display()))
            .arg(&bundle),
    );
    assert_eq!(read_tree(&bundle.join("rootfs")), sample_tree());
}

fn read_tree(root: &Path) -> Vec<Entry> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let kind = if meta.file_type().is_symlink() {
                Kind::Symlink(fs::read_link(&path).unwrap().display().to_string())
            } else if meta.is_dir() {
                stack.push(path.clone());
                Kind::Dir
            } else {
                Kind::File(fs::read(&path).unwrap())
            };
            out.push(Entry {
                path: path.strip_prefix(root).unwrap().display().to_string(),
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid().into(),
                gid: meta.gid().into(),
                xattrs: user_xattrs(&path),
            });
        }
    }
    out.sort();
    out
}

fn user_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(path, &mut names).unwrap();
    let mut out = Vec::new();
    for name in names[..n]
        .split(|b| *b == 0)
        .filter(|n| n.starts_with(b"user."))
    {
        let name = String::from_utf8(name.to_vec()).unwrap();
        let mut value = vec![0u8; 4096];
        let len = rustix::fs::lgetxattr(path, name.as_str(), &mut value).unwrap();
        out.push((name, value[..len].to_vec()));
    }
    out.sort();
    out
}

/// `podman load` of a `kiln save` archive gives the image under its name.
#[test]
fn podman_loads_kiln_save() {
    require("podman");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (_, config) = make_image(&root, "app:1", &sample_tree(), CREATED);
    let archive = dir.path().join("app.tar");
    kiln_ok(&root, &["save", "-o", archive.to_str().unwrap(), "app:1"]);
    let podman = |args: &[&str]| {
        run_tool(
            Command::new("podman")
                .arg("--root")
                .arg(dir.path().join("podman-root"))
                .arg("--runroot")
                .arg(dir.path().join("podman-run"))
                .args(["--storage-driver", "vfs", "--events-backend", "none"])
                .args(args),
        )
    };
    let loaded = podman(&["load", "-i", archive.to_str().unwrap()]);
    assert!(
        loaded.contains("Loaded image: docker.io/library/app:1"),
        "{loaded}"
    );
    assert_eq!(
        podman(&[
            "images",
            "--no-trunc",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}"
        ]),
        format!("docker.io/library/app:1 {config}\n")
    );
}

/// A `kiln load` killed with SIGKILL at varied moments never leaves a store
/// fsck objects to, and the images already there stay intact.
#[test]
fn sigkill_during_load_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (base, _) = make_image(&root, "base:1", &sample_tree(), CREATED);
    let base_inspect = kiln_ok(&root, &["inspect", "base:1"]);

    // A big image in another store, saved as a docker-archive.
    let big_root = dir.path().join("big");
    let mut data = vec![0u8; 24 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut tree = sample_tree();
    tree[6].kind = Kind::File(data);
    make_image(&big_root, "big:1", &tree, CREATED);
    let archive = dir.path().join("big.tar");
    kiln_ok(
        &big_root,
        &["save", "-o", archive.to_str().unwrap(), "big:1"],
    );

    let load = || {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["load", "-i", archive.to_str().unwrap()])
            .env("KILN_ROOT", &root)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // Time one full load, then kill later runs at points spread across it.
    let start = Instant::now();
    assert!(load().wait().unwrap().success());
    let full = start.elapsed();
    kiln_ok(&root, &["rm", "big:1"]);
    kiln_ok(&root, &["prune", "-f"]);
    let mut killed = 0;
    for i in 0..14u32 {
        let mut child = load();
        // Up to two thirds in: later runs can be quicker (blobs left by
        // earlier runs are deduplicated), and each must die mid-way.
        std::thread::sleep(full * i / 21 + Duration::from_millis(u64::from(i)));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let fsck = kiln(&root, &["fsck"]);
        assert!(
            fsck.status.success(),
            "after kill {i}: {}",
            String::from_utf8_lossy(&fsck.stderr)
        );
        assert_eq!(kiln_ok(&root, &["inspect", "base:1"]), base_inspect);
    }
    assert!(
        killed >= 10,
        "only {killed} of 12 loads were killed mid-way"
    );
    // Whatever the kills left, prune clears it and a full load still works.
    kiln_ok(&root, &["prune", "-f"]);
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    assert_eq!(
        kiln_ok(&root, &["load", "-i", archive.to_str().unwrap()]),
        "Loaded image: big:1\n"
    );
    assert!(kiln_ok(&root, &["fsck"]).ends_with("images checked: no problems\n"));
    assert_eq!(
        kiln_store::Store::open(&root)
            .unwrap()
            .resolve("base:1")
            .unwrap()
            .descriptor,
        base
    );
}

/// Processes tagging at the same time all land: index updates are
/// serialised by the store lock, none overwrites another's.
#[test]
fn concurrent_tags_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (m, _) = make_image(root, "base:1", &sample_tree(), CREATED);
    let children: Vec<_> = (0..8)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_kiln"))
                .args(["tag", "base:1", &format!("copy:{i}")])
                .env("KILN_ROOT", root)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let store = kiln_store::Store::open(root).unwrap();
    let mut names: Vec<String> = store
        .images()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i.descriptor.digest, m.digest);
            i.reference.as_ref().unwrap().familiar()
        })
        .collect();
    names.sort();
    let mut expected: Vec<String> = (0..8).map(|i| format!("copy:{i}")).collect();
    expected.push("base:1".into());
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn save_writes_standard_output_and_load_reads_standard_input() {
    // `kiln save img | ssh host docker load` needs both ends on pipes.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    make_image(&a, "piped:1", &sample_tree(), "2024-01-01T00:00:00Z");
    let saved = kiln(&a, &["save", "piped:1"]);
    assert!(
        saved.status.success(),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    assert!(saved.stdout.len() > 1024, "a tar archive on stdout");
    let mut load = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["load"])
        .env("KILN_ROOT", &b)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut load.stdin.take().unwrap(), &saved.stdout).unwrap();
    let out = load.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Loaded image: piped:1\n"
    );
    assert!(kiln_ok(&b, &["images"]).contains("piped"));
    // Nothing of the streaming is left in either store's temporary files.
    assert!(kiln_ok(&a, &["fsck"]).contains("no problems"));
}
