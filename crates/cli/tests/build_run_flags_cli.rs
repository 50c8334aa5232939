//! The build-wide RUN settings of `docker buildx build` (`--network`,
//! `--add-host`, `--shm-size`, `--ulimit`) and `--annotation`, through
//! the binary: what a RUN step sees, and what the manifest carries.

use kiln_testsupport::base_images;
use std::path::Path;
use std::process::Command;

fn kiln(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Builds `dockerfile` on busybox with `flags`, the file system written
/// to `dir/out`; returns the file `name` of it.
fn run_and_read(dir: &Path, dockerfile: &str, flags: &[&str], name: &str) -> String {
    std::fs::create_dir_all(dir.join("ctx")).unwrap();
    std::fs::write(dir.join("ctx/Dockerfile"), dockerfile).unwrap();
    let _ = std::fs::remove_dir_all(dir.join("out"));
    let bb = format!("bb=oci-layout://{}:latest", base_images().busybox.display());
    let mut args = vec!["build", "--build-context", &bb, "-o", "out"];
    args.extend_from_slice(flags);
    args.push("ctx");
    let (code, err) = kiln(dir, &args);
    assert_eq!(code, 0, "{flags:?}: {err}");
    std::fs::read_to_string(dir.join("out").join(name)).unwrap()
}

fn interfaces(proc_net_dev: &str) -> Vec<String> {
    let mut names: Vec<String> = proc_net_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

/// `--network=none` takes the network away from steps that do not ask for
/// one; `host` needs the entitlement and then gives the host's
/// interfaces; a step's own `--network` still wins.
#[test]
fn network_sets_the_default_of_run_steps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = "FROM bb\nRUN cat /proc/net/dev > /net\n";
    let none = run_and_read(d, file, &["--network=none"], "net");
    assert_eq!(interfaces(&none), ["lo"]);

    let (code, err) = kiln(d, &["build", "--network=host", "ctx"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--network=host needs the network.host entitlement, as in BuildKit: add --allow network.host"),
        "{err}"
    );
    // The host's interfaces may come and go meanwhile (another program's
    // veth): the step sees at least those there before and after, and
    // none that was in neither list.
    let before = interfaces(&std::fs::read_to_string("/proc/net/dev").unwrap());
    let host = run_and_read(
        d,
        file,
        &["--network=host", "--allow", "network.host"],
        "net",
    );
    let after = interfaces(&std::fs::read_to_string("/proc/net/dev").unwrap());
    let seen = interfaces(&host);
    let stayed: Vec<&String> = before.iter().filter(|n| after.contains(n)).collect();
    assert!(stayed.len() > 1, "the host has only {stayed:?}");
    for name in stayed {
        assert!(seen.contains(name), "{name} missing from {seen:?}");
    }
    for name in &seen {
        assert!(
            before.contains(name) || after.contains(name),
            "{name} is not the host's"
        );
    }

    let own = "FROM bb\nRUN --network=none cat /proc/net/dev > /net\n";
    let step_wins = run_and_read(
        d,
        own,
        &["--network=host", "--allow", "network.host"],
        "net",
    );
    assert_eq!(interfaces(&step_wins), ["lo"]);

    let (code, err) = kiln(d, &["build", "--network=bridge", "ctx"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--network=bridge: kiln knows default, none and host"),
        "{err}"
    );
}

/// `--add-host` entries are in the steps' /etc/hosts, after BuildKit's,
/// and a different set runs the step again rather than taking the cached
/// one.
#[test]
fn add_host_entries_reach_etc_hosts_and_the_cache_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = "FROM bb\nRUN cat /etc/hosts > /hosts\n";
    let hosts = run_and_read(
        d,
        file,
        &["--add-host", "db:10.1.2.3", "--add-host=v6.example:fd00::7"],
        "hosts",
    );
    assert!(
        hosts.starts_with("127.0.0.1\tlocalhost buildkitsandbox\n"),
        "{hosts}"
    );
    assert!(hosts.contains("10.1.2.3\tdb\n"), "{hosts}");
    assert!(hosts.contains("fd00::7\tv6.example\n"), "{hosts}");
    let again = run_and_read(d, file, &["--add-host", "db:10.9.9.9"], "hosts");
    assert!(again.contains("10.9.9.9\tdb\n"), "{again}");
    assert!(!again.contains("10.1.2.3"), "{again}");

    let (code, err) = kiln(d, &["build", "--add-host", "db", "ctx"]);
    assert_eq!(code, 1);
    assert!(err.contains("--add-host \"db\": expected HOST:IP"), "{err}");
}

/// `--shm-size` sizes the steps' /dev/shm.
#[test]
fn shm_size_sizes_dev_shm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = "FROM bb\nRUN grep ' /dev/shm ' /proc/mounts > /shm\n";
    let shm = run_and_read(d, file, &["--shm-size", "128m"], "shm");
    assert!(shm.contains("size=131072k"), "{shm}");
    let default = run_and_read(d, file, &[], "shm");
    assert!(default.contains("size=65536k"), "{default}");
}

/// `--ulimit` sets the steps' limits (below this host's hard limits: root
/// here cannot raise its own).
#[test]
fn ulimit_sets_the_steps_limits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = "FROM bb\nRUN cat /proc/self/limits > /limits\n";
    let limits = run_and_read(
        d,
        file,
        &["--ulimit", "nofile=1000:2000", "--ulimit", "nproc=300"],
        "limits",
    );
    let row = |name: &str| -> Vec<String> {
        let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
        line[name.len()..]
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(row("Max open files")[..2], ["1000", "2000"], "{limits}");
    assert_eq!(row("Max processes")[..2], ["300", "300"], "{limits}");

    let (code, err) = kiln(d, &["build", "--ulimit", "files=1", "ctx"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown resource \"files\""), "{err}");
    let (code, err) = kiln(d, &["build", "--ulimit", "nofile=20:10", "ctx"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the soft limit is above the hard limit"),
        "{err}"
    );
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &serde_json::Value) -> serde_json::Value {
    let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
    read_json(&layout.join("blobs/sha256").join(hex))
}

/// `--annotation` in buildx's syntax: the manifest by default, the index
/// and its entries of a multi-platform build, and the image's entry in an
/// OCI layout's index.json.
#[test]
fn annotations_go_where_their_type_says() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("ctx")).unwrap();
    std::fs::write(d.join("ctx/a"), "a").unwrap();
    std::fs::write(d.join("ctx/Dockerfile"), "FROM scratch\nCOPY a /\n").unwrap();
    let (code, err) = kiln(
        d,
        &[
            "build",
            "-o",
            "type=oci,dest=one",
            "--annotation",
            "org.example.plain=1",
            "--annotation",
            "manifest:org.example.m=2",
            "--annotation",
            "index-descriptor:org.example.id=3",
            "ctx",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let index = read_json(&d.join("one/index.json"));
    let entry = &index["manifests"][0];
    assert_eq!(entry["annotations"]["org.example.id"], "3", "{index}");
    let manifest = blob(&d.join("one"), &entry["digest"]);
    assert_eq!(manifest["annotations"]["org.example.plain"], "1");
    assert_eq!(manifest["annotations"]["org.example.m"], "2");
    assert!(manifest["annotations"].get("org.example.id").is_none());

    let (code, err) = kiln(
        d,
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            "type=oci,dest=multi",
            "--annotation",
            "index,manifest:org.example.both=b",
            "--annotation",
            "manifest-descriptor:org.example.md=d",
            "ctx",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let layout = d.join("multi");
    let top = &read_json(&layout.join("index.json"))["manifests"][0];
    let image_index = blob(&layout, &top["digest"]);
    assert_eq!(image_index["annotations"]["org.example.both"], "b");
    let entries = image_index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for e in entries {
        assert_eq!(e["annotations"]["org.example.md"], "d", "{e}");
        let m = blob(&layout, &e["digest"]);
        assert_eq!(m["annotations"]["org.example.both"], "b");
        assert!(m["annotations"].get("org.example.md").is_none());
    }

    for (flags, expected) in [
        (
            &["--annotation", "index:k=v"][..],
            "this build makes a single manifest",
        ),
        (
            &["--annotation", "k=v", "--format", "docker"],
            "Docker schema 2 manifests and lists have no annotations",
        ),
        (&["--annotation", "layer:k=v"], "unknown type \"layer\""),
        (
            &["--annotation", "manifest[linux/amd64]:k=v"],
            "NotSupported: annotations for one platform",
        ),
    ] {
        let mut args = vec!["build"];
        args.extend_from_slice(flags);
        args.push("ctx");
        let (code, err) = kiln(d, &args);
        assert_eq!(code, 1, "{flags:?}");
        assert!(err.contains(expected), "{flags:?}: {err}");
    }
}
