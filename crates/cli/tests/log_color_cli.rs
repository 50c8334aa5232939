//! `--debug` and `RUST_LOG` (tracing on standard error), and `--color`
//! with `NO_COLOR`, for errors and the progress display.

mod common {
    // Answering questions is prompts_cli's part of it.
    #[allow(dead_code)]
    pub mod pty;
}

use common::pty::Session;
use kiln_testsupport::{base_images, BaseImages, Fault, Proxy, Registry};
use std::path::Path;
use std::process::{Command, Stdio};

fn kiln_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR");
    cmd
}

fn stderr_of(cmd: &mut Command) -> (i32, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The busybox layer's digest.
fn busybox_layer() -> String {
    let layout = &base_images().busybox;
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let index = read(&layout.join("index.json"));
    let manifest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest = read(
        &layout
            .join("blobs/sha256")
            .join(manifest.strip_prefix("sha256:").unwrap()),
    );
    manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A pull whose layer is cut once logs the resume with `--debug` or
/// `RUST_LOG`, and says nothing of it without them.
#[test]
fn debug_and_rust_log_show_the_registry_clients_events() {
    let registry = Registry::start();
    BaseImages::skopeo_push(&base_images().busybox, &registry.host(), "busybox:1");
    let layer = busybox_layer();
    for (flag, env) in [
        (Some("--debug"), None),
        (None, Some("kiln_registry=debug")),
        (None, None),
    ] {
        let proxy = Proxy::start(
            registry.port(),
            vec![Fault::DropBlob {
                digest: layer.clone(),
                after: 1000,
                times: 1,
            }],
        );
        let host = proxy.host();
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = kiln_cmd(dir.path(), &[]);
        cmd.args(flag)
            .args(["pull", "--insecure-registry", &host])
            .arg(format!("{host}/busybox:1"));
        if let Some(directives) = env {
            cmd.env("RUST_LOG", directives);
        }
        let (code, err) = stderr_of(&mut cmd);
        assert_eq!(code, 0, "{err}");
        let logged = err.contains("DEBUG kiln_registry::pull: resuming after");
        assert_eq!(
            logged,
            flag.is_some() || env.is_some(),
            "{flag:?} {env:?}: {err}"
        );
        if !logged {
            assert_eq!(err, "", "no log without --debug or RUST_LOG");
        }
    }
}

#[test]
fn color_always_and_never_decide_for_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, err) = stderr_of(&mut kiln_cmd(d, &["--color=always", "inspect", "nothere"]));
    assert_eq!(code, 1);
    assert!(
        err.starts_with("\x1b[31m\x1b[1merror:\x1b[0m image nothere not found"),
        "{err:?}"
    );
    // --color=always wins over NO_COLOR; auto off a terminal is plain.
    let (_, err) =
        stderr_of(kiln_cmd(d, &["inspect", "--color", "always", "nothere"]).env("NO_COLOR", "1"));
    assert!(err.starts_with("\x1b[31m"), "{err:?}");
    let (_, err) = stderr_of(&mut kiln_cmd(d, &["inspect", "nothere"]));
    assert!(err.starts_with("error: image nothere not found"), "{err:?}");
    let (code, err) = stderr_of(&mut kiln_cmd(d, &["--color=sometimes", "images"]));
    assert_eq!(code, 2);
    assert!(err.contains("invalid value 'sometimes'"), "{err}");
}

/// On a terminal the live view is coloured, and `--color=never` (or
/// `NO_COLOR` with auto) turns that off.
#[test]
fn color_never_and_no_color_turn_the_live_view_plain() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("ctx")).unwrap();
    std::fs::write(d.join("ctx/a"), "a\n").unwrap();
    std::fs::write(d.join("ctx/Dockerfile"), "FROM scratch\nCOPY a /\n").unwrap();
    let screen = |args: &[&str], no_color: bool| {
        let mut cmd = kiln_cmd(d, args);
        cmd.env("TERM", "xterm").env("COLUMNS", "100");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let (code, screen) = Session::spawn(&mut cmd).finish();
        assert_eq!(code, 0, "{screen}");
        screen
    };
    let coloured = screen(&["build", "--no-cache", "ctx"], false);
    assert!(coloured.contains("\x1b[32m"), "{coloured:?}");
    for (args, no_color) in [
        (&["build", "--no-cache", "--color=never", "ctx"][..], false),
        (&["build", "--no-cache", "ctx"], true),
    ] {
        let plain = screen(args, no_color);
        assert!(plain.contains("DONE"), "{plain:?}");
        assert!(
            !plain.contains("\x1b[32m"),
            "{args:?} {no_color}: {plain:?}"
        );
    }
}
