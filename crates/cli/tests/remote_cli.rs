//! The remote daemon through the built `kiln`: `kiln serve` on 127.0.0.1
//! with mutual TLS (a CA, server and client certificates made here with
//! rcgen) or on a unix socket, and `kiln build --backend remote` against
//! it. The daemon's store holds the busybox base; the client's store gets
//! the image. Covered: the image copied home (its files and config), a
//! second build uploading no file, a client without a certificate (or with
//! one from another CA) refused, two builds at once, a context path
//! escaping its root refused, Ctrl-C on the client stopping the RUN on the
//! daemon, a client killed mid-upload leaving the daemon serving, `--push`
//! done by the daemon (to a local docker-registry), `-o type=oci` written
//! from the client's store, and what cannot travel refused naming its flag.

use kiln_remote::proto::{BuildSpec, ContextEntry, EntryKind, ErrorKind};
use kiln_testsupport::base_images;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

/// The CA, server and client certificates, as PEM files in `dir`.
struct Certs {
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

fn make_certs(dir: &Path) -> Certs {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "kiln remote test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf = |names: Vec<String>, usage, name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    };
    let server = leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
        "server",
    );
    let client = leaf(Vec::new(), ExtendedKeyUsagePurpose::ClientAuth, "client");
    let ca_path = dir.join("ca.crt");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    Certs {
        ca: ca_path,
        server,
        client,
    }
}

/// A running `kiln serve`; killed when dropped.
struct Daemon {
    child: Child,
    /// `tcp://127.0.0.1:PORT` or `unix:///…`.
    address: String,
    log: Arc<Mutex<Vec<String>>>,
    root: PathBuf,
}

impl Daemon {
    /// Starts a daemon whose store is `dir/daemon` (holding busybox as
    /// `localhost/bb`), listening on `listen`, with `tls` args.
    fn start(dir: &Path, listen: &str, tls: &[String]) -> Daemon {
        let root = dir.join("daemon");
        if !root.exists() {
            load_base(&root);
        }
        let mut child = Command::new(KILN)
            .args(["serve", "--listen", listen])
            .args(tls)
            .env("KILN_ROOT", &root)
            .env("HOME", dir)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("kiln serve: listening on ") {
                    let _ = tx.send(addr.to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let address = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the daemon did not listen: {:?}", log.lock().unwrap()));
        Daemon {
            child,
            address,
            log,
            root,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits up to 30 s for a log line containing `needle`.
    fn wait_log(&self, needle: &str) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the daemon never logged {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// busybox into the store at `root`, named `localhost/bb:latest`.
fn load_base(root: &Path) {
    let out = Command::new(KILN)
        .args(["load", "-i"])
        .arg(&base_images().busybox)
        .env("KILN_ROOT", root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Loaded image ID: "))
        .unwrap_or_else(|| panic!("no image id in {stdout}"));
    let out = Command::new(KILN)
        .args(["tag", id.trim(), "localhost/bb:latest"])
        .env("KILN_ROOT", root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tls_args(certs: &Certs) -> Vec<String> {
    vec![
        "--tls-ca".into(),
        certs.ca.display().to_string(),
        "--tls-cert".into(),
        certs.server.0.display().to_string(),
        "--tls-key".into(),
        certs.server.1.display().to_string(),
    ]
}

/// The client's environment for `daemon`, with the client certificate.
fn client_env(daemon: &Daemon, certs: Option<&Certs>) -> Vec<(String, String)> {
    let mut env = vec![
        ("KILN_BACKEND".to_string(), "remote".to_string()),
        ("KILN_REMOTE".to_string(), daemon.address.clone()),
    ];
    if let Some(c) = certs {
        env.push(("KILN_REMOTE_CA".into(), c.ca.display().to_string()));
        env.push(("KILN_REMOTE_CERT".into(), c.client.0.display().to_string()));
        env.push(("KILN_REMOTE_KEY".into(), c.client.1.display().to_string()));
    }
    env
}

fn client(dir: &Path, env: &[(String, String)], args: &[&str]) -> Command {
    let mut cmd = Command::new(KILN);
    cmd.args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("client"))
        .env("HOME", dir)
        .envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

fn run(dir: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    client(dir, env, args).output().unwrap()
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "failed:\n{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// A context `dir/name` with `dockerfile` and a few files.
fn context(dir: &Path, name: &str, dockerfile: &str) -> String {
    let ctx = dir.join(name);
    std::fs::create_dir_all(ctx.join("sub")).unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(ctx.join("a.txt"), "hello from the client\n").unwrap();
    std::fs::write(ctx.join("sub/b.txt"), "b\n").unwrap();
    std::fs::write(ctx.join("ignored.log"), "not sent\n").unwrap();
    std::fs::write(ctx.join(".dockerignore"), "*.log\n").unwrap();
    name.to_string()
}

/// The files of the last layer of `image` in the client's store, read from
/// `kiln save`'s docker-archive.
fn last_layer_files(dir: &Path, image: &str) -> Vec<(String, Vec<u8>)> {
    let tar_path = dir.join("saved.tar");
    ok(&run(
        dir,
        &[],
        &["save", "-o", tar_path.to_str().unwrap(), image],
    ));
    let mut entries = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&tar_path).unwrap());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        entries.insert(path, bytes);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&entries["manifest.json"]).unwrap();
    let layer = manifest[0]["Layers"].as_array().unwrap().last().unwrap();
    let bytes = &entries[layer.as_str().unwrap()];
    let reader: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(&bytes[..]))
    } else {
        Box::new(&bytes[..])
    };
    let mut out = Vec::new();
    for e in tar::Archive::new(reader).entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        out.push((path, bytes));
    }
    out
}

#[test]
fn a_build_over_mutual_tls_comes_home_and_a_second_uploads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let certs = make_certs(d);
    let daemon = Daemon::start(d, "tcp://127.0.0.1:0", &tls_args(&certs));
    let env = client_env(&daemon, Some(&certs));
    let ctx = context(
        d,
        "ctx",
        "FROM localhost/bb\nLABEL built.on=daemon\nCOPY . /app/\nRUN cat /app/a.txt > /copied.txt && ls /app > /listing.txt\n",
    );

    let out = run(d, &env, &["build", "--progress=plain", "-t", "out:1", &ctx]);
    let stderr = ok(&out);
    // Dockerfile, .dockerignore, a.txt, sub/b.txt: the log file stays home.
    assert!(
        stderr.contains("context: 5 entries, 4 of 4 files uploaded"),
        "{stderr}"
    );
    let files = last_layer_files(d, "out:1");
    let file = |name: &str| {
        files
            .iter()
            .find(|(p, _)| p.trim_start_matches("./") == name)
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_else(|| {
                panic!(
                    "{name} not in {:?}",
                    files.iter().map(|f| &f.0).collect::<Vec<_>>()
                )
            })
    };
    assert_eq!(file("copied.txt"), "hello from the client\n");
    assert_eq!(file("listing.txt"), "Dockerfile\na.txt\nsub\n");
    let inspect = run(d, &[], &["inspect", "out:1"]);
    assert!(
        String::from_utf8_lossy(&inspect.stdout).contains("\"built.on\": \"daemon\""),
        "{}",
        String::from_utf8_lossy(&inspect.stdout)
    );

    // The same context again: the daemon has every file.
    let out = run(d, &env, &["build", "--progress=plain", "-t", "out:2", &ctx]);
    let stderr = ok(&out);
    assert!(
        stderr.contains("context: 5 entries, 0 of 4 files uploaded"),
        "{stderr}"
    );
    assert_eq!(
        daemon.log().matches("stored context blob").count(),
        4,
        "{}",
        daemon.log()
    );

    // A Dockerfile that reads one directory sends only it (and its
    // parents): the daemon plans the build and names what it reads, so
    // the big file beside it is neither hashed into the list nor sent.
    let narrow = context(d, "narrow", "FROM localhost/bb\nCOPY sub/ /sub/\n");
    std::fs::write(d.join(&narrow).join("unused.bin"), vec![1u8; 1 << 20]).unwrap();
    let out = run(
        d,
        &env,
        &["build", "--progress=plain", "-t", "out:3", &narrow],
    );
    let stderr = ok(&out);
    assert!(
        stderr.contains("context: 2 entries, 0 of 1 files uploaded"),
        "{stderr}"
    );
    let files = last_layer_files(d, "out:3");
    assert!(
        files
            .iter()
            .any(|(p, b)| p.trim_start_matches("./") == "sub/b.txt" && b == b"b\n"),
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(daemon.log().matches("stored context blob").count(), 4);

    // `kiln backends` sees the daemon.
    let out = run(d, &env, &["backends"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with("remote")).unwrap();
    assert!(
        line.contains(" yes ") && line.contains("building with native"),
        "{stdout}"
    );
}

#[test]
fn a_client_without_a_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let certs = make_certs(d);
    let mut daemon = Daemon::start(d, "tcp://127.0.0.1:0", &tls_args(&certs));
    let ctx = context(d, "ctx", "FROM localhost/bb\nCOPY a.txt /\n");
    let mut env = client_env(&daemon, None);
    env.push(("KILN_REMOTE_CA".into(), certs.ca.display().to_string()));
    let out = run(d, &env, &["build", &ctx]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("CertificateRequired") || stderr.contains("certificate"),
        "{stderr}"
    );
    daemon.wait_log("TLS handshake failed");
    assert!(
        !daemon.log().contains("stored context blob"),
        "{}",
        daemon.log()
    );
    assert!(daemon.alive());

    // A certificate from another CA is refused as well.
    let other_dir = d.join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = make_certs(&other_dir);
    let mut env = client_env(&daemon, None);
    env.push(("KILN_REMOTE_CA".into(), certs.ca.display().to_string()));
    env.push((
        "KILN_REMOTE_CERT".into(),
        other.client.0.display().to_string(),
    ));
    env.push((
        "KILN_REMOTE_KEY".into(),
        other.client.1.display().to_string(),
    ));
    let out = run(d, &env, &["build", &ctx]);
    assert!(!out.status.success());
    let start = Instant::now();
    while daemon.log().matches("TLS handshake failed").count() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !daemon.log().contains("stored context blob"),
        "{}",
        daemon.log()
    );

    // A daemon does not listen on TCP without mutual TLS.
    let out = Command::new(KILN)
        .args(["serve", "--listen", "tcp://127.0.0.1:0"])
        .env("KILN_ROOT", d.join("plain"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("needs mutual TLS"),
        "{stderr}"
    );

    // A TCP daemon address without any TLS settings is refused by the
    // client before it connects.
    let out = run(d, &client_env(&daemon, None), &["build", &ctx]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("needs TLS"),
        "{stderr}"
    );
}

#[test]
fn builds_over_a_unix_socket_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sock = d.join("kiln.sock");
    let daemon = Daemon::start(d, &format!("unix://{}", sock.display()), &[]);
    let env = client_env(&daemon, None);
    let a = context(
        d,
        "ctx-a",
        "FROM localhost/bb\nRUN sleep 2 && echo a > /which\n",
    );
    let b = context(
        d,
        "ctx-b",
        "FROM localhost/bb\nRUN sleep 2 && echo b > /which\n",
    );
    let started = Instant::now();
    let first = client(d, &env, &["build", "--progress=plain", "-t", "a:1", &a])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let second = client(d, &env, &["build", "--progress=plain", "-t", "b:1", &b])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    ok(&first.wait_with_output().unwrap());
    ok(&second.wait_with_output().unwrap());
    let log = daemon.log();
    // Both builds were running before either finished.
    let pos = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("{needle}: {log}"))
    };
    assert!(
        pos("build b1 started").max(pos("build b2 started"))
            < pos("build b1 done").min(pos("build b2 done")),
        "{log}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    for (image, want) in [("a:1", "a\n"), ("b:1", "b\n")] {
        let files = last_layer_files(d, image);
        let which = files.iter().find(|(p, _)| p.ends_with("which")).unwrap();
        assert_eq!(String::from_utf8_lossy(&which.1), want);
    }
}

#[test]
fn a_context_path_escaping_its_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sock = d.join("kiln.sock");
    let mut daemon = Daemon::start(d, &format!("unix://{}", sock.display()), &[]);
    let client = kiln_remote::Client::new(daemon.address.parse().unwrap(), None).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for bad in ["../escaped", "/etc/escaped", "a/../../escaped"] {
        let spec = BuildSpec {
            dockerfile_name: "Dockerfile".into(),
            dockerfile: "RlJPTSBzY3JhdGNoCg==".into(), // FROM scratch
            context: Some(vec![ContextEntry {
                path: bad.into(),
                kind: EntryKind::Dir,
                mode: 0o755,
                mtime: 0,
                size: 0,
                digest: None,
                target: None,
            }]),
            ..BuildSpec::default()
        };
        let err = runtime
            .block_on(async { client.connect().await?.start_build(&spec).await.map(|_| ()) })
            .unwrap_err();
        match err {
            kiln_remote::Error::Remote(body) => {
                assert_eq!(body.kind, ErrorKind::BadRequest);
                assert!(body.message.contains(bad), "{}", body.message);
            }
            other => panic!("{other}"),
        }
    }
    assert!(!d.join("escaped").exists() && !Path::new("/etc/escaped").exists());
    assert!(daemon.alive());
    daemon.wait_log("refused");
}

/// Processes whose command line contains `marker`.
fn processes_running(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(marker)
                })
                .unwrap_or(false)
        })
        .count()
}

#[test]
fn ctrl_c_on_the_client_cancels_the_build_on_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sock = d.join("kiln.sock");
    let mut daemon = Daemon::start(d, &format!("unix://{}", sock.display()), &[]);
    let env = client_env(&daemon, None);
    let marker = format!("sleep 5{}", std::process::id() % 10_000);
    let ctx = context(
        d,
        "ctx",
        &format!("FROM localhost/bb\nRUN echo started && {marker}\n"),
    );
    let mut child = client(d, &env, &["build", "--progress=plain", &ctx])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.ends_with(" started") {
            break;
        }
    }
    assert!(seen.last().unwrap().ends_with(" started"), "{seen:#?}");
    assert_eq!(processes_running(&marker), 1);
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "{:?}",
        lines.map_while(Result::ok).collect::<Vec<_>>()
    );
    daemon.wait_log("the client went away; interrupting");
    daemon.wait_log("build b1 failed: build interrupted");
    let start = Instant::now();
    while processes_running(&marker) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the RUN still runs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(daemon.alive());
    // The daemon builds on.
    let next = context(d, "next", "FROM localhost/bb\nRUN echo after > /after\n");
    ok(&run(d, &env, &["build", "-t", "after:1", &next]));
}

#[test]
fn a_client_killed_mid_upload_leaves_the_daemon_serving() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sock = d.join("kiln.sock");
    let mut daemon = Daemon::start(d, &format!("unix://{}", sock.display()), &[]);
    let env = client_env(&daemon, None);
    let ctx = context(d, "big", "FROM localhost/bb\nCOPY big.bin /\n");
    // Large enough that the upload is still going when it is seen.
    let big = std::fs::File::create(d.join("big/big.bin")).unwrap();
    big.set_len(2 << 30).unwrap();
    drop(big);
    let uploading = daemon.root.join("remote/blobs/uploading");
    let mut child = client(d, &env, &["build", &ctx])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let busy = std::fs::read_dir(&uploading)
            .map(|mut r| r.any(|e| e.is_ok_and(|e| e.metadata().is_ok_and(|m| m.len() > 1 << 20))))
            .unwrap_or(false);
        if busy {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the client ended before its upload was seen:\n{}",
            daemon.log()
        );
        assert!(start.elapsed() < Duration::from_secs(120), "no upload seen");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    daemon.wait_log("abandoned before its end; nothing stored");
    // The partial upload is gone, nothing was stored under its digest.
    let start = Instant::now();
    while std::fs::read_dir(&uploading).unwrap().count() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the partial upload stays"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !daemon.log().contains("(2147483648 bytes)"),
        "{}",
        daemon.log()
    );
    assert!(daemon.alive());
    let small = context(d, "small", "FROM localhost/bb\nCOPY a.txt /\n");
    ok(&run(d, &env, &["build", "-t", "small:1", &small]));
}

#[test]
fn push_is_done_by_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let registry = kiln_testsupport::Registry::start();
    let host = registry.host();
    let sock = d.join("kiln.sock");
    let daemon = Daemon::start(
        d,
        &format!("unix://{}", sock.display()),
        &["--insecure-registry".into(), host.clone()],
    );
    let env = client_env(&daemon, None);
    let ctx = context(d, "ctx", "FROM localhost/bb\nCOPY a.txt /pushed.txt\n");
    let name = format!("{host}/remote/pushed:1");
    let out = run(
        d,
        &env,
        &["build", "--push", "-t", &name, "--iidfile", "iid", &ctx],
    );
    ok(&out);
    let iid = std::fs::read_to_string(d.join("iid")).unwrap();
    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    // The image id is the pushed config's digest, as buildx's.
    assert_eq!(manifest["config"]["digest"].as_str(), Some(iid.trim()));
    assert!(json["Digest"].as_str().is_some_and(|d| d != iid.trim()));
    // Pushed only: the client's store did not get it.
    let images = run(d, &[], &["images"]);
    assert!(
        !String::from_utf8_lossy(&images.stdout).contains("remote/pushed"),
        "{}",
        String::from_utf8_lossy(&images.stdout)
    );
}

#[test]
fn oci_outputs_are_written_home_and_what_cannot_travel_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sock = d.join("kiln.sock");
    let daemon = Daemon::start(d, &format!("unix://{}", sock.display()), &[]);
    let env = client_env(&daemon, None);
    let ctx = context(d, "ctx", "FROM localhost/bb\nCOPY a.txt /\n");
    ok(&run(
        d,
        &env,
        &[
            "build",
            "-o",
            "type=oci,dest=img.tar",
            "--metadata-file",
            "meta.json",
            &ctx,
        ],
    ));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("meta.json")).unwrap()).unwrap();
    let iid = meta["containerimage.digest"].as_str().unwrap();
    let mut archive = tar::Archive::new(std::fs::File::open(d.join("img.tar")).unwrap());
    let index = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some("index.json"))
        .map(|mut e| {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            s
        })
        .expect("index.json in the OCI archive");
    assert!(index.contains(iid.trim()), "{index}");

    for (args, flag) in [
        (
            &["-o", "type=local,dest=out"][..],
            "--output type=local|tar",
        ),
        (&["--ssh", "default=/nonexistent.sock"][..], "--ssh"),
        (
            &["--build-context", "other=/tmp"][..],
            "--build-context other=<local path>",
        ),
    ] {
        let mut all = vec!["build"];
        all.extend_from_slice(args);
        all.push(&ctx);
        let out = run(d, &env, &all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("NotSupported: {flag} with --backend remote")),
            "{args:?}: {stderr}"
        );
    }
}
