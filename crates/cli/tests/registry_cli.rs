//! `kiln pull/push/copy/login/logout` against a real docker-registry.

use kiln_testsupport::{base_images, Auth, BaseImages, Fault, Proxy, Registry, RegistryOptions};
use std::path::Path;
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs kiln with a clean environment: `home` as HOME and DOCKER_CONFIG's parent.
fn kiln(home: &Path, args: &[&str]) -> Run {
    let path = format!(
        "{}:{}",
        home.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("KILN_ROOT", home.join("store"))
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn busybox_digest() -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(base_images().busybox.join("index.json")).unwrap())
            .unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn pull_push_and_copy() {
    let registry = Registry::start();
    let host = registry.host();
    BaseImages::skopeo_push(&base_images().busybox, &host, "busybox:1");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let digest = busybox_digest();

    let run = kiln(
        h,
        &[
            "pull",
            "--insecure-registry",
            &host,
            &format!("{host}/busybox:1"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!("Pulled {host}/busybox:1\nDigest: {digest}\n")
    );

    let run = kiln(
        h,
        &[
            "push",
            "--insecure-registry",
            &host,
            &format!("{host}/busybox:1"),
            &format!("{host}/copy:2"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!("Pushed {host}/copy:2\nDigest: {digest}\n")
    );

    // oci layout → registry → oci layout, with the insecure host from the environment.
    let run = {
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args([
                "copy",
                &format!("oci:{}", base_images().busybox.display()),
                &format!("docker://{host}/from-oci:3"),
            ])
            .env("KILN_INSECURE_REGISTRIES", &host)
            .env("KILN_ROOT", h.join("store"))
            .env("DOCKER_CONFIG", h.join("docker"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        run,
        format!("Copied to {host}/from-oci:3\nDigest: {digest}\n")
    );
    let out_dir = h.join("exported");
    let run = kiln(
        h,
        &[
            "copy",
            "--tls-verify=false",
            &format!("docker://{host}/from-oci:3"),
            &format!("oci:{}", out_dir.display()),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());

    // registry → registry within one registry mounts rather than uploads.
    let run = kiln(
        h,
        &[
            "copy",
            "--tls-verify=false",
            &format!("docker://{host}/copy:2"),
            &format!("docker://{host}/mounted:4"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = kiln(
        h,
        &["pull", "--tls-verify=false", &format!("{host}/mounted:4")],
    );
    assert_eq!(
        run.stdout,
        format!("Pulled {host}/mounted:4\nDigest: {digest}\n")
    );
}

#[test]
fn login_logout_and_errors_name_the_registry() {
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
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::create_dir_all(h.join("store")).unwrap();

    let run = kiln(
        h,
        &["login", "--ca-cert", ca, "-u", "kiln", "-p", "wrong", &host],
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        format!(
            "error: logging in to registry {host}: the registry asks for credentials (401 Unauthorized: \
             the user name or password is wrong); run `kiln login {host}` or check the credentials in your docker config or auth.json\n"
        )
    );
    assert!(!h.join("docker/config.json").exists());

    let run = kiln(
        h,
        &[
            "login",
            "--ca-cert",
            ca,
            "-u",
            "kiln",
            "-p",
            "hunter2",
            &host,
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let config = h.join("docker/config.json");
    assert_eq!(
        run.stdout,
        format!(
            "Login Succeeded (credentials for {host} saved in {})\n",
            config.display()
        )
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(saved["auths"][&host]["auth"], "a2lsbjpodW50ZXIy");

    // The stored credentials are used; certs.d supplies the CA.
    let certs = h.join(".docker/certs.d").join(&host);
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(registry.ca_cert(), certs.join("ca.crt")).unwrap();
    let oci = format!("oci:{}", base_images().busybox.display());
    let run = kiln(h, &["copy", &oci, &format!("docker://{host}/private:1")]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let run = kiln(h, &["logout", &host]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            0,
            format!("Removed login credentials for {host}\n").as_str()
        )
    );
    let run = kiln(h, &["logout", &host]);
    assert_eq!(
        run.stderr,
        format!(
            "error: not logged in to {host} (no credentials in {})\n",
            config.display()
        )
    );
    let run = kiln(h, &["pull", &format!("{host}/private:1")]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.starts_with(&format!(
            "error: pulling {host}/private:1: the registry asks for credentials (401 Unauthorized: UNAUTHORIZED: authentication required); run `kiln login {host}`"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn credential_helper_is_used_for_login_and_pull() {
    let registry = Registry::start_with(RegistryOptions {
        tls: false,
        auth: Auth::Token {
            user: "kiln".into(),
            password: "hunter2".into(),
        },
        ..RegistryOptions::default()
    });
    let host = registry.host();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::create_dir_all(h.join("bin")).unwrap();
    std::fs::create_dir_all(h.join("docker")).unwrap();
    std::fs::write(h.join("docker/config.json"), r#"{"credsStore":"kilntest"}"#).unwrap();
    // A helper keeping one secret in a file, as docker-credential-* programs do.
    let helper = h.join("bin/docker-credential-kilntest");
    let state = h.join("helper-state");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nset -e\ncase \"$1\" in\n  store) cat > {s} ;;\n  get) read host || true; if [ -f {s} ]; then sed 's/\"ServerURL\":\"[^\"]*\",//' {s}; else echo 'credentials not found in native keychain'; exit 1; fi ;;\n  erase) rm -f {s} ;;\nesac\n",
            s = state.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();

    let oci = format!("oci:{}", base_images().busybox.display());
    let dest = format!("docker://{host}/helped:1");
    let run = kiln(h, &["copy", "--insecure-registry", &host, &oci, &dest]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("401 Unauthorized"), "{}", run.stderr);

    let run = kiln(
        h,
        &[
            "login",
            "--insecure-registry",
            &host,
            "-u",
            "kiln",
            "-p",
            "hunter2",
            &host,
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!("Login Succeeded (credentials for {host} saved in docker-credential-kilntest)\n")
    );
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(
        stored,
        serde_json::json!({"ServerURL": host, "Username": "kiln", "Secret": "hunter2"})
    );

    let run = kiln(h, &["copy", "--insecure-registry", &host, &oci, &dest]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = kiln(
        h,
        &[
            "pull",
            "--insecure-registry",
            &host,
            &format!("{host}/helped:1"),
        ],
    );
    assert_eq!(
        run.stdout,
        format!("Pulled {host}/helped:1\nDigest: {}\n", busybox_digest())
    );
}

#[test]
fn all_platforms_pull_push_and_copy_keep_the_index_digest() {
    let registry = Registry::start();
    let host = registry.host();
    let platforms = &base_images().platforms;
    BaseImages::skopeo_push(platforms, &host, "multi:latest");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(platforms.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let original = std::fs::read(
        platforms
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap()),
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let net = ["--insecure-registry", host.as_str()];

    let run = kiln(
        h,
        &[
            &["pull", "--all-platforms"][..],
            &net,
            &[&format!("{host}/multi:latest")],
        ]
        .concat(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!(
            "Pulled {host}/multi:latest\nPlatforms: linux/amd64, linux/arm64/v8, \
             windows(10.0.17763.1234)/amd64, windows(10.0.20348.2113)/amd64\nDigest: {digest}\n"
        )
    );
    let run = kiln(
        h,
        &[
            &["push"][..],
            &net,
            &[&format!("{host}/multi:latest"), &format!("{host}/pushed:1")],
        ]
        .concat(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!("Pushed {host}/pushed:1\nDigest: {digest}\n")
    );
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{host}/pushed:1"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(raw.stdout, original);

    // registry → oci layout → registry, every platform.
    let layout = h.join("layout");
    let run = kiln(
        h,
        &[
            &["copy", "--all"][..],
            &net,
            &[
                &format!("docker://{host}/pushed:1"),
                &format!("oci:{}", layout.display()),
            ],
        ]
        .concat(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let blobs = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 1 + 4 * 3);
    let run = kiln(
        h,
        &[
            &["copy", "--all"][..],
            &net,
            &[
                &format!("oci:{}", layout.display()),
                &format!("docker://{host}/from-layout:1"),
            ],
        ]
        .concat(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!("Copied to {host}/from-layout:1\nDigest: {digest}\n")
    );
    // Without --all, one platform is chosen from the layout's index.
    let run = kiln(
        h,
        &[
            &["copy", "--platform", "linux/arm64"][..],
            &net,
            &[
                &format!("oci:{}", layout.display()),
                &format!("docker://{host}/arm:1"),
            ],
        ]
        .concat(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let arm = index_entry_digest(&original, "arm64");
    assert_eq!(
        run.stdout,
        format!("Copied to {host}/arm:1\nDigest: {arm}\n")
    );
    let run = kiln(
        h,
        &[
            "copy",
            "--all",
            &format!("oci:{}", layout.display()),
            &format!("docker-archive:{}", h.join("x.tar").display()),
        ],
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "error: a docker-archive holds single-platform images, not an index; drop --all (and pick \
         one with --platform), or copy to oci:DIR\n"
    );
}

/// The digest of the entry for architecture `arch` in an index.
fn index_entry_digest(index: &[u8], arch: &str) -> String {
    let index: serde_json::Value = serde_json::from_slice(index).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == arch)
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn timeout_flag_bounds_a_stalled_registry() {
    let registry = Registry::start();
    let proxy = Proxy::start(
        registry.port(),
        vec![Fault::Stall {
            path: "/manifests/".into(),
            times: 10,
        }],
    );
    let host = proxy.host();
    let home = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let run = kiln(
        home.path(),
        &[
            "pull",
            "--insecure-registry",
            &host,
            "--timeout",
            "0.2",
            "--retry-times",
            "1",
            &format!("{host}/stuck:1"),
        ],
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        format!(
            "error: pulling {host}/stuck:1: the registry did not answer within 200ms (2 attempts); \
             check that it is up and the network, or allow longer with `--timeout SECONDS`\n"
        )
    );
    // Two stalls of 0.2 s and one backoff of 0.5 s.
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    let run = kiln(home.path(), &["pull", "--timeout", "soon", "x"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("invalid value 'soon' for '--timeout <SECONDS>': \"soon\" is not a positive number of seconds"),
        "{}",
        run.stderr
    );
}

/// The busybox layer's digest and size.
fn busybox_layer() -> (String, usize) {
    let layout = &base_images().busybox;
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(manifest.strip_prefix("sha256:").unwrap()),
        )
        .unwrap(),
    )
    .unwrap();
    let layer = &manifest["layers"][0];
    (
        layer["digest"].as_str().unwrap().to_string(),
        layer["size"].as_u64().unwrap() as usize,
    )
}

/// True when a file named `name` is anywhere under `dir`.
fn holds_file(dir: &Path, name: &str) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let path = e.path();
            e.file_name() == name || (path.is_dir() && holds_file(&path, name))
        })
}

#[test]
fn a_wrong_size_blob_fails_the_pull_naming_both_sizes_and_stores_nothing() {
    let registry = Registry::start();
    BaseImages::skopeo_push(&base_images().busybox, &registry.host(), "busybox:1");
    let (layer, size) = busybox_layer();
    let proxy = Proxy::start(
        registry.port(),
        vec![Fault::ServeBlob {
            digest: layer.clone(),
            body: vec![0; 1000],
        }],
    );
    let host = proxy.host();
    let home = tempfile::tempdir().unwrap();
    let run = kiln(
        home.path(),
        &[
            "pull",
            "--insecure-registry",
            &host,
            &format!("{host}/busybox:1"),
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stderr,
        format!(
            "error: pulling {host}/busybox@{layer}: blob {layer} at \
             http://{host}/v2/busybox/blobs/{layer} is 1000 bytes, but the manifest gives its size \
             as {size}; the registry holds other bytes under that digest, or something between it \
             and kiln altered them; nothing was stored\n"
        )
    );
    assert!(!holds_file(
        &home.path().join("store"),
        layer.strip_prefix("sha256:").unwrap()
    ));
    let run = kiln(home.path(), &["images"]);
    assert!(!run.stdout.contains("busybox"), "{}", run.stdout);
}

#[test]
fn timeout_flag_cuts_a_stalled_body_but_not_a_slow_one() {
    let registry = Registry::start();
    BaseImages::skopeo_push(&base_images().busybox, &registry.host(), "busybox:1");
    let (layer, size) = busybox_layer();
    let home = tempfile::tempdir().unwrap();
    let pull = |proxy: &Proxy| {
        let host = proxy.host();
        kiln(
            home.path(),
            &[
                "pull",
                "--insecure-registry",
                &host,
                "--timeout",
                "1",
                "--retry-times",
                "0",
                &format!("{host}/busybox:1"),
            ],
        )
    };
    let stalled = Proxy::start(
        registry.port(),
        vec![Fault::StallBody {
            path: format!("/blobs/{layer}"),
            after: 1000,
            times: 1,
        }],
    );
    let run = pull(&stalled);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let host = stalled.host();
    assert_eq!(
        run.stderr,
        format!(
            "error: pulling {host}/busybox@{layer}: http://{host}/v2/busybox/blobs/{layer} sent \
             nothing for 1s after 1000 bytes (1 attempt); the registry or the network is stuck; \
             check them, or allow longer pauses with `--timeout SECONDS`\n"
        )
    );

    // Eight pauses of 0.3 s: 2.4 s in all, each well under the 1 s timeout.
    let slow = Proxy::start(
        registry.port(),
        vec![Fault::Trickle {
            path: format!("/blobs/{layer}"),
            chunk: size / 8 + 1,
            every: std::time::Duration::from_millis(300),
        }],
    );
    let started = std::time::Instant::now();
    let run = pull(&slow);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(started.elapsed() >= std::time::Duration::from_millis(2400));
    assert!(holds_file(
        &home.path().join("store"),
        layer.strip_prefix("sha256:").unwrap()
    ));
}

/// podman's `--creds` and `--authfile` on copy, pull, push and build, and
/// `login --authfile` writing the file they read.
#[test]
fn creds_and_authfile_reach_every_registry_command() {
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
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::create_dir_all(h.join("store")).unwrap();
    let image = format!("{host}/private:1");
    let oci = format!("oci:{}", base_images().busybox.display());

    let run = kiln(
        h,
        &["copy", "--ca-cert", ca, &oci, &format!("docker://{image}")],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("the registry asks for credentials"),
        "{}",
        run.stderr
    );
    let run = kiln(
        h,
        &[
            "copy",
            "--ca-cert",
            ca,
            "--creds",
            "kiln:hunter2",
            &oci,
            &format!("docker://{image}"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = kiln(
        h,
        &["pull", "--ca-cert", ca, "--creds", "kiln:wrong", &image],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("401 Unauthorized"), "{}", run.stderr);
    let run = kiln(
        h,
        &["pull", "--ca-cert", ca, "--creds", "kiln:hunter2", &image],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = kiln(h, &["pull", "--creds", "kiln", &image]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("--creds: expected USER:PASSWORD"),
        "{}",
        run.stderr
    );

    // login --authfile writes the file, which --authfile then reads; the
    // default files stay untouched.
    let authfile = h.join("auth.json");
    let auth = authfile.to_str().unwrap();
    let run = kiln(
        h,
        &[
            "login",
            "--ca-cert",
            ca,
            "--authfile",
            auth,
            "-u",
            "kiln",
            "-p",
            "hunter2",
            &host,
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(auth), "{}", run.stdout);
    assert!(!h.join("docker/config.json").exists());
    let run = kiln(
        h,
        &[
            "push",
            "--ca-cert",
            ca,
            "--authfile",
            auth,
            &image,
            &format!("{host}/pushed:1"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = kiln(
        h,
        &["push", "--ca-cert", ca, &image, &format!("{host}/pushed:2")],
    );
    assert_eq!(run.code, 1, "no stored credentials without --authfile");

    // A build pulls a private base with either.
    std::fs::create_dir_all(h.join("ctx")).unwrap();
    std::fs::write(h.join("ctx/Dockerfile"), format!("FROM {host}/pushed:1\n")).unwrap();
    let ctx = h.join("ctx");
    let ctx = ctx.to_str().unwrap();
    for flags in [&["--creds", "kiln:hunter2"][..], &["--authfile", auth]] {
        let mut args = vec!["build", "-q", "--pull", "--ca-cert", ca];
        args.extend_from_slice(flags);
        args.push(ctx);
        let run = kiln(h, &args);
        assert_eq!(run.code, 0, "{flags:?}: {}", run.stderr);
    }
    let run = kiln(h, &["build", "-q", "--pull", "--ca-cert", ca, ctx]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("the registry asks for credentials"),
        "{}",
        run.stderr
    );
}

/// `--pull` with buildx's meaning (always ask the registry) and podman's
/// values.
#[test]
fn pull_policies_of_build() {
    let mut registry = Registry::start();
    let host = registry.host();
    BaseImages::skopeo_push(&base_images().busybox, &host, "busybox:1");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::create_dir_all(h.join("ctx")).unwrap();
    std::fs::write(h.join("ctx/Dockerfile"), format!("FROM {host}/busybox:1\n")).unwrap();
    let ctx = h.join("ctx");
    let ctx = ctx.to_str().unwrap();
    let build = |policy: &str| {
        let mut args = vec!["build", "--progress=plain", "--insecure-registry", &host];
        if !policy.is_empty() {
            args.push(policy);
        }
        args.push(ctx);
        kiln(h, &args)
    };

    let run = build("--pull=never");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("not in the store, and --pull=never does not ask the registry"),
        "{}",
        run.stderr
    );
    let run = build("--pull=missing");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("pull {host}/busybox:1")),
        "{}",
        run.stderr
    );
    // The store has it now: missing does not ask again.
    let run = build("");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("pull "), "{}", run.stderr);

    registry.stop();
    for policy in ["--pull", "--pull=always", "--pull=true"] {
        let run = build(policy);
        assert_eq!(run.code, 1, "{policy}");
        assert!(
            run.stderr.contains(&format!("base image {host}/busybox:1")),
            "{policy}: {}",
            run.stderr
        );
    }
    let run = build("--pull=newer");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "warning: --pull=newer: {host}/busybox:1: the registry failed"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("using the store's image"),
        "{}",
        run.stderr
    );
    let run = build("--pull=never");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = build("--pull=sometimes");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("--pull=sometimes: expected always, missing, newer or never"),
        "{}",
        run.stderr
    );
}

/// A refused connection or a name that does not resolve fails at once,
/// on the first attempt (no seconds of retries), naming why; a build
/// whose base is there fails the same way.
#[test]
fn an_unreachable_registry_fails_on_the_first_attempt() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let closed = format!("127.0.0.1:{}", kiln_testsupport::free_port());
    let run = kiln(h, &["pull", &format!("{closed}/app:1")]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.lines().next().unwrap(),
        format!(
            "error: pulling {closed}/app:1: cannot reach the registry at http://{closed}/v2/app/manifests/1: \
             the connection was refused (error sending request: client error (Connect): tcp connect error: \
             Connection refused (os error 111)); check that it is running and the address is right"
        )
    );
    let run = kiln(h, &["--debug", "pull", "no-such-registry.invalid/app:1"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(
            "error: pulling no-such-registry.invalid/app:1: cannot reach the registry at \
             https://no-such-registry.invalid/v2/app/manifests/1: its host name does not resolve (",
        ),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("retrying"),
        "not retried: {}",
        run.stderr
    );

    std::fs::create_dir_all(h.join("ctx")).unwrap();
    std::fs::write(h.join("ctx/Dockerfile"), format!("FROM {closed}/base:1\n")).unwrap();
    let run = kiln(
        h,
        &[
            "build",
            "--debug",
            "--progress=plain",
            h.join("ctx").to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("the connection was refused"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("retrying"),
        "not retried: {}",
        run.stderr
    );
}

/// What is transient is still retried: a 503 answered twice, then the
/// manifest.
#[test]
fn a_server_error_is_still_retried() {
    let registry = Registry::start();
    let host = registry.host();
    BaseImages::skopeo_push(&base_images().busybox, &host, "busybox:1");
    let proxy = Proxy::start(
        registry.port(),
        vec![Fault::Status {
            path: "/manifests/".into(),
            code: 503,
            times: 2,
        }],
    );
    let home = tempfile::tempdir().unwrap();
    let run = kiln(
        home.path(),
        &[
            "--debug",
            "pull",
            "--insecure-registry",
            &proxy.host(),
            &format!("{}/busybox:1", proxy.host()),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stderr
            .matches("retrying after: the registry failed with 503")
            .count(),
        2,
        "{}",
        run.stderr
    );
}
