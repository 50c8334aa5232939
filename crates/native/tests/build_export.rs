//! Every output type, read back with other tools.

mod build_support;

use build_support::*;
use kiln_backend::Output;
use kiln_testsupport::Registry;
use std::process::Command;

const EPOCH: i64 = 1_700_000_000;

fn env_with_image() -> (Env, kiln_backend::BuildRequest) {
    let env = Env::new();
    env.file("hello.txt", "hello\n").file("sub/x.txt", "x");
    let mut req = env.request("FROM scratch\nCOPY hello.txt /\nCOPY sub /sub\nLABEL a=b\n");
    req.source_date_epoch = Some(EPOCH);
    req.tags.push("example.com/app:1".parse().unwrap());
    (env, req)
}

fn skopeo_inspect(target: &str) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(["inspect", target])
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn oci_layout_directory_and_tar() {
    let (env, mut req) = env_with_image();
    let dir = env.path("layout");
    let tar = env.path("layout.tar");
    req.outputs = vec![
        Output::Oci { dest: dir.clone() },
        Output::Oci { dest: tar.clone() },
    ];
    let images_before = env.images();
    let built = env.run(&req).unwrap();
    // Not asked to go into the store, so no name there.
    assert_eq!(env.images(), images_before);
    let got = skopeo_inspect(&format!("oci:{}:1", dir.display()));
    assert_eq!(got["Digest"], built.manifest.digest.to_string());
    assert_eq!(got["Labels"]["a"], "b");
    assert_eq!(got["Layers"].as_array().unwrap().len(), 2);
    let got = skopeo_inspect(&format!("oci-archive:{}:1", tar.display()));
    assert_eq!(got["Digest"], built.manifest.digest.to_string());
}

#[test]
fn docker_archive() {
    let (env, mut req) = env_with_image();
    let file = env.path("image.tar");
    req.outputs = vec![Output::Docker { dest: file.clone() }];
    env.run(&req).unwrap();
    let got = skopeo_inspect(&format!("docker-archive:{}", file.display()));
    let mut archive = tar::Archive::new(std::fs::File::open(&file).unwrap());
    let manifest: serde_json::Value = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some("manifest.json"))
        .map(|e| serde_json::from_reader(e).unwrap())
        .unwrap();
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["example.com/app:1"])
    );
    assert_eq!(got["Labels"]["a"], "b");
    assert_eq!(got["Created"], "2023-11-14T22:13:20Z");
}

#[test]
fn local_directory_and_rootfs_tar() {
    let (env, mut req) = env_with_image();
    let dir = env.path("rootfs");
    let tar = env.path("rootfs.tar");
    req.outputs = vec![
        Output::Local { dest: dir.clone() },
        Output::Tar { dest: tar.clone() },
    ];
    env.run(&req).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("hello.txt")).unwrap(),
        "hello\n"
    );
    assert_eq!(std::fs::read_to_string(dir.join("sub/x.txt")).unwrap(), "x");
    let mut names: Vec<String> = walk(&dir);
    names.sort();
    assert_eq!(names, ["hello.txt", "sub", "sub/x.txt"]);
    let entries = read_tar(&std::fs::read(&tar).unwrap());
    assert_eq!(
        lines(&entries),
        [
            format!("hello.txt file 644 0:0 {EPOCH}"),
            format!("sub dir 755 0:0 {EPOCH}"),
            format!("sub/x.txt file 644 0:0 {EPOCH}"),
        ]
    );
}

#[test]
fn a_local_output_belongs_to_whoever_builds_and_a_new_destination_is_0700() {
    // BuildKit's local exporter: the client's uid and gid on every file
    // (its file sync), a missing destination (and parents) made 0700; the
    // tar output keeps the image's owners.
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    env.file("f", "f\n");
    let mut req = env.request("FROM scratch\nCOPY --chown=1234:5678 f /d/f\n");
    req.source_date_epoch = Some(EPOCH);
    let dir = env.path("new/parent/rootfs");
    let tar = env.path("rootfs.tar");
    req.outputs = vec![
        Output::Local { dest: dir.clone() },
        Output::Tar { dest: tar.clone() },
    ];
    env.run(&req).unwrap();
    let me = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    for p in ["d", "d/f"] {
        let md = std::fs::symlink_metadata(dir.join(p)).unwrap();
        assert_eq!((md.uid(), md.gid()), me, "{p}");
    }
    for p in ["new", "new/parent", "new/parent/rootfs"] {
        let md = std::fs::metadata(env.path(p)).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o700, "{p}");
    }
    assert!(lines(&read_tar(&std::fs::read(&tar).unwrap()))
        .contains(&format!("d/f file 644 1234:5678 {EPOCH}")));
}

#[test]
fn a_local_output_replaces_what_a_previous_output_left_in_the_way() {
    // BuildKit's local exporter: a file or symlink where the image has a
    // directory is replaced; other files stay; nothing is written through
    // the symlink.
    let env = Env::new();
    env.file("d/a", "a\n");
    let mut req = env.request("FROM scratch\nCOPY d /asfile/\nCOPY d /link/\n");
    req.source_date_epoch = Some(EPOCH);
    let dir = env.path("out");
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(dir.join("asfile"), "old").unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join("link")).unwrap();
    std::fs::write(dir.join("keep"), "kept").unwrap();
    req.outputs = vec![Output::Local { dest: dir.clone() }];
    env.run(&req).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("asfile/a")).unwrap(),
        "a\n"
    );
    assert_eq!(std::fs::read_to_string(dir.join("link/a")).unwrap(), "a\n");
    assert!(std::fs::symlink_metadata(dir.join("link"))
        .unwrap()
        .is_dir());
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_eq!(std::fs::read_to_string(dir.join("keep")).unwrap(), "kept");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()).into_iter().map(|n| format!("{name}/{n}")));
        }
        out.push(name);
    }
    out
}

#[test]
fn image_output_tags_and_pushes() {
    let registry = Registry::start();
    let host = registry.host();
    let env = Env::with_registry(&host);
    env.file("hello.txt", "hello\n");
    let mut req = env.request("FROM scratch\nCOPY hello.txt /\n");
    req.tags.push(format!("{host}/app:1").parse().unwrap());
    req.tags.push(format!("{host}/app:latest").parse().unwrap());
    req.outputs = vec![Output::Image { push: true }];
    let built = env.run(&req).unwrap();
    assert_eq!(built.tags.len(), 2);
    for tag in ["1", "latest"] {
        let out = Command::new("skopeo")
            .args([
                "inspect",
                "--tls-verify=false",
                &format!("docker://{host}/app:{tag}"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(got["Digest"], built.manifest.digest.to_string());
    }
    assert_eq!(
        env.store()
            .resolve(&format!("{host}/app:1"))
            .unwrap()
            .descriptor
            .digest,
        built.manifest.digest
    );

    // Pushing needs a name.
    req.tags.clear();
    let err = env.run(&req).unwrap_err().to_string();
    assert_eq!(err, "pushing needs a name: add -t REGISTRY/REPOSITORY:TAG");
}
