//! Tests of the harness itself: the comparison code on hand-made trees and
//! configs, and the reference side (buildah) against trees written by hand,
//! so a corpus failure can be trusted to be kiln's.

use super::case;
use super::config;
use super::tools::{self, BuildRequest, Buildah};
use super::tree::{self, Kind, Node};
use serde_json::json;

fn node(kind: Kind, mode: u32, uid: u32, gid: u32) -> Node {
    Node {
        kind,
        mode,
        uid,
        gid,
        xattrs: Vec::new(),
        hardlink_of: None,
    }
}

fn file(content: &str, mode: u32, uid: u32, gid: u32) -> Node {
    Node::from_json(
        "test",
        &json!({"type": "file", "mode": format!("{mode:o}"), "uid": uid, "gid": gid, "content": content}),
    )
    .unwrap()
}

#[test]
fn tree_diff_names_every_difference() {
    let want: tree::Tree = [
        ("/".to_string(), node(Kind::Dir, 0o755, 0, 0)),
        ("/a".to_string(), file("a\n", 0o644, 0, 0)),
        (
            "/gone".to_string(),
            node(Kind::Symlink("a".into()), 0o777, 0, 0),
        ),
        ("/mode".to_string(), file("m", 0o600, 1, 2)),
    ]
    .into_iter()
    .collect();
    let mut got = want.clone();
    got.remove("/gone");
    got.insert("/mode".into(), file("m", 0o640, 1, 3));
    got.insert("/extra".into(), node(Kind::Dir, 0o700, 0, 0));
    assert_eq!(tree::diff(&want, &want), Vec::<String>::new());
    assert_eq!(
        tree::diff(&want, &got),
        vec![
            "/gone: missing (want symlink -> a 0777 0:0)".to_string(),
            "/mode: got file sha256:62c66a7a5dd7 size 1 0640 1:3, want file sha256:62c66a7a5dd7 size 1 0600 1:2"
                .to_string(),
            "/extra: unexpected dir 0700 0:0".to_string(),
        ]
    );
}

#[test]
fn config_normalize_ignores_spelling_differences() {
    let buildah = json!({
        "Hostname": "5911a0bde8ca",
        "Env": ["PATH=/bin"],
        "Cmd": [],
        "Entrypoint": null,
        "WorkingDir": "",
        "Labels": {"z": "1", "a": "2", "io.buildah.version": "1.28.2"},
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5000000000u64, "Timeout": 0, "Retries": 0},
    });
    let kiln = json!({
        "Labels": {"a": "2", "z": "1"},
        "Env": ["PATH=/bin"],
        "Healthcheck": {"Interval": 5000000000u64, "Test": ["CMD", "true"]},
    });
    let (b, k) = (config::normalize(&buildah), config::normalize(&kiln));
    assert_eq!(config::diff(&b, &k), Vec::<String>::new());
    assert_eq!(
        serde_json::to_string(&b).unwrap(),
        r#"{"Env":["PATH=/bin"],"Healthcheck":{"Interval":5000000000,"Test":["CMD","true"]},"Labels":{"a":"2","z":"1"}}"#
    );

    let mut overridden = b.clone();
    let overrides = json!({"Env": null, "User": "1000"});
    config::apply_overrides(&mut overridden, overrides.as_object().unwrap());
    assert_eq!(
        config::diff(&overridden, &k),
        vec![
            r#"config Env: got ["PATH=/bin"], want (absent)"#.to_string(),
            r#"config User: got (absent), want "1000""#.to_string(),
        ]
    );
}

/// buildah's trees for three cases, checked path by path against what a
/// person worked out from the Dockerfile.
#[test]
fn buildah_reference_matches_hand_made_trees() {
    let base = super::start_base(false);
    let buildah = Buildah::new();
    let work = tempfile::tempdir().unwrap();
    let build = |name: &str| {
        let c = case::load(&case::corpus_dir().join(name)).unwrap();
        let dir = work.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let p = case::prepare(&c, &dir.join("context"), &base.reference).unwrap();
        let req = BuildRequest {
            context: &p.context,
            dockerfile: &p.buildah_dockerfile,
            build_args: vec![("BASE".into(), base.reference.clone())],
            build_contexts: Vec::new(),
            target: None,
            secrets: Vec::new(),
        };
        let layout = dir.join("oci");
        let docker_config = buildah.build(&req, name, &layout).unwrap();
        let rootfs = tools::umoci_unpack(&layout, &dir.join("bundle")).unwrap();
        let t = tree::scan(&rootfs).unwrap();
        assert_eq!(
            tree::diff(&t, &tree::scan(&rootfs).unwrap()),
            Vec::<String>::new()
        );
        (t, config::normalize(&docker_config))
    };
    let check = |t: &tree::Tree, want: &[(&str, Node)]| {
        for (path, n) in want {
            assert_eq!(t.get(*path), Some(n), "{path}");
        }
    };

    let (t, _) = build("chown-names");
    check(
        &t,
        &[
            ("/own/user-only", file("a\n", 0o644, 1001, 1002)),
            ("/own/user-group", file("a\n", 0o644, 1001, 50)),
            ("/own/user-gid", file("a\n", 0o644, 1001, 1234)),
            ("/own/uid-group", file("a\n", 0o644, 1001, 50)),
            ("/own/dir", node(Kind::Dir, 0o755, 1001, 50)),
            ("/own/dir/in/x.txt", file("x\n", 0o644, 1001, 50)),
            // Missing parents take the --chown owner too (fsutil#49, which
            // BuildKit uses; buildah agrees).
            ("/own", node(Kind::Dir, 0o755, 1001, 1002)),
        ],
    );

    let (t, _) = build("heredoc");
    check(
        &t,
        &[
            ("/h/plain.txt", file("hello world\n", 0o644, 0, 0)),
            ("/h/quoted.txt", file("hello ${NAME}\n", 0o644, 0, 0)),
            ("/h/tabs.txt", file("indented\ntwice\n", 0o644, 0, 0)),
            ("/h/dir/one", file("first\n", 0o644, 0, 0)),
            ("/h/dir/two", file("second\n", 0o644, 0, 0)),
            ("/h/script.sh", file("#!/bin/sh\necho hi\n", 0o755, 0, 0)),
        ],
    );

    let (t, _) = build("add-archives");
    for dir in ["plain", "gzip", "bzip2", "xz", "zstd"] {
        let p = |rel: &str| format!("/x/{dir}/{rel}");
        check(
            &t,
            &[
                (&p("dir"), node(Kind::Dir, 0o755, 1000, 1000)),
                (&p("dir/file.txt"), file("file in dir\n", 0o644, 1000, 1000)),
                (&p("dir/secret"), file("secret\n", 0o600, 0, 0)),
                (&p("dir/nested"), node(Kind::Dir, 0o755, 123, 456)),
                (&p("empty"), node(Kind::Dir, 0o700, 0, 0)),
                (&p("exec.sh"), file("#!/bin/sh\n", 0o755, 0, 0)),
                (
                    &p("link"),
                    node(Kind::Symlink("dir/file.txt".into()), 0o777, 0, 0),
                ),
            ],
        );
        let mut hard = file("file in dir\n", 0o644, 1000, 1000);
        hard.hardlink_of = Some(p("dir/file.txt"));
        assert_eq!(t.get(&p("hardlink")), Some(&hard), "{}", p("hardlink"));
    }
    check(
        &t,
        &[(
            "/x/raw/not-an-archive.tar.gz",
            file("this is not gzip data\n", 0o644, 0, 0),
        )],
    );

    let (_, c) = build("healthcheck");
    assert_eq!(
        serde_json::to_string(&c["Healthcheck"]).unwrap(),
        r#"{"Interval":90000000000,"Test":["CMD-SHELL","wget -q -O- http://localhost/ || exit 1"]}"#
    );
}
