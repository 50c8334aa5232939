//! What kiln asks a person at a terminal, and refuses to guess without
//! one: `kiln prune`'s confirmation and `kiln login`'s user name and
//! password (read without echo); and `kiln history`.

mod common {
    pub mod pty;
}

use common::pty::Session;
use kiln_testsupport::{Auth, Registry, RegistryOptions};
use std::path::Path;
use std::process::{Command, Stdio};

fn kiln_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .env("DOCKER_CONFIG", dir.join("docker"))
        .env_remove("REGISTRY_AUTH_FILE");
    cmd
}

fn no_tty(dir: &Path, args: &[&str]) -> std::process::Output {
    kiln_cmd(dir, args).stdin(Stdio::null()).output().unwrap()
}

/// A store with one image and one unused blob.
fn store_with_garbage(dir: &Path) {
    std::fs::create_dir_all(dir.join("ctx")).unwrap();
    std::fs::write(dir.join("ctx/a"), "a\n").unwrap();
    std::fs::write(dir.join("ctx/Dockerfile"), "FROM scratch\nCOPY a /\n").unwrap();
    let out = no_tty(dir, &["build", "-q", "-t", "app:1", "ctx"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.join("ctx/a"), "b\n").unwrap();
    let out = no_tty(dir, &["build", "-q", "-t", "app:1", "ctx"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prune_asks_on_a_terminal_and_refuses_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    store_with_garbage(d);

    let out = no_tty(d, &["prune", "--all"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: kiln prune deletes data and there is no terminal to ask on: pass -f (--force) to prune\n"
    );

    // "n" deletes nothing.
    let mut s = Session::spawn(&mut kiln_cmd(d, &["prune", "--all"]));
    s.wait_for("Are you sure you want to continue? [y/N] ");
    assert!(
        s.screen
            .contains("WARNING! This will remove the whole build cache"),
        "{}",
        s.screen
    );
    s.type_line("n");
    let (code, screen) = s.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("Nothing was deleted."), "{screen}");
    assert!(!screen.contains("reclaimed"), "{screen}");

    // "y" deletes, and says how much it freed.
    let mut s = Session::spawn(&mut kiln_cmd(d, &["prune", "--all"]));
    s.wait_for("[y/N] ");
    s.type_line("y");
    let (code, screen) = s.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("Deleted "), "{screen}");
    let reclaimed: u64 = screen
        .split(" bytes)")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(reclaimed > 0, "{screen}");

    // -f asks nothing.
    let out = no_tty(d, &["prune", "-f"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("reclaimed 0B"), "{stdout}");
}

#[test]
fn login_prompts_for_what_it_is_not_given() {
    let registry = Registry::start_with(RegistryOptions {
        tls: true,
        auth: Auth::Basic {
            user: "kiln".into(),
            password: "hunter2".into(),
        },
        ..RegistryOptions::default()
    });
    let host = registry.host();
    let ca = registry.ca_cert();
    let ca = ca.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let mut s = Session::spawn(&mut kiln_cmd(d, &["login", "--ca-cert", ca, &host]));
    s.wait_for("Username: ");
    s.type_line("kiln");
    s.wait_for("Password: ");
    s.type_line("hunter2");
    let (code, screen) = s.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("Login Succeeded"), "{screen}");
    assert!(
        !screen.contains("hunter2"),
        "the password was echoed:\n{screen}"
    );
    let saved = std::fs::read_to_string(d.join("docker/config.json")).unwrap();
    assert!(saved.contains("a2lsbjpodW50ZXIy"), "{saved}");

    // -u given: only the password is asked.
    let mut s = Session::spawn(&mut kiln_cmd(
        d,
        &["login", "--ca-cert", ca, "-u", "kiln", &host],
    ));
    s.wait_for("Password: ");
    assert!(!s.screen.contains("Username"), "{}", s.screen);
    s.type_line("wrong");
    let (code, screen) = s.finish();
    assert_eq!(code, 1, "{screen}");
    assert!(
        screen.contains("the user name or password is wrong"),
        "{screen}"
    );

    // Ctrl-C at the password prompt: the terminal echoes again.
    let mut s = Session::spawn(&mut kiln_cmd(
        d,
        &["login", "--ca-cert", ca, "-u", "kiln", &host],
    ));
    s.wait_for("Password: ");
    assert!(!s.echoes(), "the password prompt echoes");
    s.interrupt();
    assert_eq!(s.wait(), 130, "{}", s.screen);
    assert!(
        s.echoes(),
        "the echo stayed off after Ctrl-C:\n{}",
        s.screen
    );

    // No terminal: no prompt, an error saying what to pass.
    let out = no_tty(d, &["login", "--ca-cert", ca, "-u", "kiln", &host]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "give a password with --password-stdin or --password (there is no terminal to ask on)"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn history_lists_the_steps_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("ctx")).unwrap();
    std::fs::write(d.join("ctx/a"), "a\n").unwrap();
    std::fs::write(
        d.join("ctx/Dockerfile"),
        "FROM scratch\nCOPY a /a\nENV GREETING=hello\nLABEL a.very.long.label.name.that.goes.on=and-on-and-on\n",
    )
    .unwrap();
    let out = no_tty(d, &["build", "-q", "-t", "hist:1", "ctx"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = no_tty(d, &["history", "hist:1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("IMAGE          CREATED"), "{table}");
    assert!(
        lines[0].contains("CREATED BY") && lines[0].ends_with("COMMENT"),
        "{table}"
    );
    assert_eq!(lines.len(), 4, "{table}");
    let images = no_tty(d, &["images", "-q", "hist"]);
    let id = String::from_utf8(images.stdout).unwrap();
    assert!(lines[1].starts_with(id.trim()), "{table}\n{id}");
    // docker cuts the command at 45 characters.
    assert!(
        lines[1].contains(" LABEL a.very.long.label.name.that.goes.on=an… "),
        "{table}"
    );
    assert!(
        lines[2].starts_with("<missing>") && lines[2].contains("ENV GREETING=hello"),
        "{table}"
    );
    assert!(lines[2].contains("0B"), "{table}");
    assert!(lines[3].contains("COPY a /a"), "{table}");
    assert!(!lines[3].contains(" 0B "), "the COPY made a layer: {table}");

    let out = no_tty(d, &["history", "--no-trunc", "--format", "json", "hist:1"]);
    let steps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(steps.as_array().unwrap().len(), 3);
    assert!(steps[0]["Id"].as_str().unwrap().starts_with("sha256:"));
    assert!(steps[2]["Size"].as_u64().unwrap() > 0);
}
