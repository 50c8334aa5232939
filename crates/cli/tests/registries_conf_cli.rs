//! `registries.conf` as podman and buildah read it, against real
//! registries: a prefix moved to another location, a pull mirror, a
//! blocked registry, an `insecure` TLS registry, and a file kiln cannot
//! read.

use kiln_testsupport::{base_images, BaseImages, Registry, RegistryOptions};
use std::path::Path;
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// kiln with `conf` as its only registries.conf.
fn kiln(home: &Path, conf: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("KILN_ROOT", home.join("store"))
        .env("CONTAINERS_REGISTRIES_CONF", conf)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn skopeo_has(reference: &str) -> bool {
    Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn locations_mirrors_and_blocked_registries() {
    let primary = Registry::start();
    let mirror = Registry::start();
    BaseImages::skopeo_push(&base_images().busybox, &mirror.host(), "lib/busybox:1");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let conf = h.join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\n\
             prefix = \"example.test/lib\"\n\
             location = \"{primary}/lib\"\n\
             [[registry.mirror]]\n\
             location = \"{mirror}/lib\"\n\
             [[registry]]\n\
             location = \"blocked.example.test\"\n\
             blocked = true\n",
            primary = primary.host(),
            mirror = mirror.host()
        ),
    )
    .unwrap();

    // Only the mirror has it: the pull comes from there, named as asked.
    let run = kiln(h, &conf, &["pull", "example.test/lib/busybox:1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let images = kiln(h, &conf, &["images"]);
    assert!(
        images.stdout.contains("example.test/lib/busybox"),
        "{}",
        images.stdout
    );

    // A build FROM it, in an empty store, goes the same way.
    let ctx = h.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM example.test/lib/busybox:1\nLABEL via=mirror\n",
    )
    .unwrap();
    let other = tempfile::tempdir().unwrap();
    let run = kiln(
        other.path(),
        &conf,
        &[
            "build",
            "-t",
            "example.test/lib/app:1",
            ctx.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);

    // Pushes go to the location, never to a mirror.
    let run = kiln(other.path(), &conf, &["push", "example.test/lib/app:1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(skopeo_has(&format!("{}/lib/app:1", primary.host())));
    assert!(!skopeo_has(&format!("{}/lib/app:1", mirror.host())));

    // Blocked: refused before any request, naming the file.
    for args in [
        vec!["pull", "blocked.example.test/x:1"],
        vec!["push", "example.test/lib/app:1", "blocked.example.test/x:1"],
    ] {
        let run = kiln(other.path(), &conf, &args);
        assert_ne!(run.code, 0);
        assert!(
            run.stderr.contains("blocked by") && run.stderr.contains(conf.to_str().unwrap()),
            "{args:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn insecure_in_registries_conf_trusts_a_tls_registry_and_bad_files_fail() {
    let tls = Registry::start_with(RegistryOptions {
        tls: true,
        ..RegistryOptions::default()
    });
    let host = tls.host();
    let pushed = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false", "--quiet"])
        .arg(format!("oci:{}:latest", base_images().busybox.display()))
        .arg(format!("docker://{host}/busybox:1"))
        .output()
        .unwrap();
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let empty = h.join("empty.conf");
    std::fs::write(&empty, "").unwrap();
    let reference = format!("{host}/busybox:1");
    let run = kiln(h, &empty, &["pull", &reference]);
    assert_ne!(run.code, 0, "its certificate is not trusted");

    let conf = h.join("registries.conf");
    std::fs::write(
        &conf,
        format!("[[registry]]\nlocation = \"{host}\"\ninsecure = true\n"),
    )
    .unwrap();
    let run = kiln(h, &conf, &["pull", &reference]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // A file kiln cannot read is an error naming it, for every command
    // that talks to registries.
    std::fs::write(&conf, "[[registry]]\nlocation = 5\n").unwrap();
    let run = kiln(h, &conf, &["pull", &reference]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains(conf.to_str().unwrap()),
        "{}",
        run.stderr
    );
}

#[test]
fn short_names_pull_from_aliases_and_search_registries_in_order() {
    let empty = Registry::start();
    let serving = Registry::start();
    BaseImages::skopeo_push(&base_images().busybox, &serving.host(), "tools/busybox:1");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let conf = h.join("registries.conf");
    let write_conf = |extra: &str| {
        std::fs::write(
            &conf,
            format!(
                "unqualified-search-registries = [\"{}\", \"{}\"]\n{extra}",
                empty.host(),
                serving.host()
            ),
        )
        .unwrap()
    };
    write_conf("");

    // The first search registry lacks it; the second serves it, and the
    // image is named after the one that did.
    let run = kiln(h, &conf, &["pull", "tools/busybox:1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let served = format!("{}/tools/busybox:1", serving.host());
    assert!(
        run.stdout.contains(&format!("Pulled {served}")),
        "{}",
        run.stdout
    );

    // A build FROM a short name in an empty store resolves the same way,
    // and so does an alias, with the tag written going on its target.
    write_conf(&format!(
        "[aliases]\n\"bb\" = \"{}/tools/busybox\"\n",
        serving.host()
    ));
    let ctx = h.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    for from in ["tools/busybox:1", "bb:1"] {
        std::fs::write(
            ctx.join("Dockerfile"),
            format!("FROM {from}\nLABEL from={from}\n"),
        )
        .unwrap();
        let fresh = tempfile::tempdir().unwrap();
        let run = kiln(
            fresh.path(),
            &conf,
            &["build", "-t", "app", ctx.to_str().unwrap()],
        );
        assert_eq!(run.code, 0, "FROM {from}: {}", run.stderr);
        let inspect = kiln(fresh.path(), &conf, &["inspect", "app"]);
        assert!(
            inspect.stdout.contains(&format!("\"from\": \"{from}\"")),
            "{}",
            inspect.stdout
        );
        let images = kiln(fresh.path(), &conf, &["images"]);
        assert!(
            images
                .stdout
                .contains(&format!("{}/tools/busybox", serving.host())),
            "{}",
            images.stdout
        );

        // kiln's own short tag (docker's reading, docker.io/library/app)
        // is found in the store first: no search registry has `app`.
        std::fs::write(ctx.join("Dockerfile"), "FROM app\nLABEL next=1\n").unwrap();
        let run = kiln(
            fresh.path(),
            &conf,
            &["build", "-t", "next", ctx.to_str().unwrap()],
        );
        assert_eq!(run.code, 0, "FROM app: {}", run.stderr);
    }

    // Nowhere: the error says what each registry answered.
    let run = kiln(h, &conf, &["pull", "nothere:1"]);
    assert_ne!(run.code, 0);
    for part in [
        "nothere:1 is a short name".to_string(),
        format!("{}/nothere:1", empty.host()),
        format!("{}/nothere:1", serving.host()),
    ] {
        assert!(run.stderr.contains(&part), "{part:?} in {}", run.stderr);
    }

    // Enforcing with two registries and no alias: podman would prompt,
    // kiln fails before asking either registry and says how to choose.
    write_conf("short-name-mode = \"enforcing\"\n");
    let run = kiln(h, &conf, &["pull", "tools/busybox:1"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("short-name-mode = \"enforcing\"")
            && run.stderr.contains(conf.to_str().unwrap()),
        "{}",
        run.stderr
    );
    std::fs::write(ctx.join("Dockerfile"), "FROM tools/busybox:1\n").unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let run = kiln(fresh.path(), &conf, &["build", ctx.to_str().unwrap()]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("kiln does not prompt"),
        "{}",
        run.stderr
    );
}
