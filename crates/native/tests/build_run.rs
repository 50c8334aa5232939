//! RUN steps in real containers (runc on overlayfs snapshots) on the
//! busybox base: the layer a step makes, its output, its failure text,
//! the environment and user it runs with, `--mount`s and `--network`.

mod build_support;

use build_support::*;
use kiln_backend::{BuildEvent, BuildRequest, SecretSource};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

const EPOCH: i64 = 1_700_000_000;

/// A request building `dockerfile` FROM `bb`, the busybox base.
fn request(env: &Env, dockerfile: &str) -> BuildRequest {
    let mut req = with_busybox(env.request(dockerfile));
    req.source_date_epoch = Some(EPOCH);
    req
}

/// A RUN layer's entries without the mount points runc makes for /dev,
/// /proc and /sys when the image lacks them (the busybox base does), which
/// BuildKit keeps in the layer too.
fn changed(entries: &[Entry]) -> Vec<String> {
    lines(entries)
        .into_iter()
        .filter(|l| {
            !["dev dir ", "proc dir ", "sys dir "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect()
}

fn output(events: &[BuildEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Output { line, .. } => Some(line.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_run_step_makes_a_layer_of_what_it_changed_and_streams_its_output() {
    let env = Env::new();
    let req = request(
        &env,
        "FROM bb\nARG WHO=world UNSET\nARG ALSO_UNSET\nRUN echo hello $WHO > /hello && echo out && echo err >&2\n",
    );
    let (built, events) = env.build_events(&req);
    let built = built.unwrap();
    let out = output(&events);
    assert!(out.contains(&"out".to_string()), "{out:?}");
    assert!(out.contains(&"err".to_string()), "{out:?}");
    let layers = env.layers(&built);
    assert_eq!(layers.len(), 2);
    // Only the new file and runc's mount points: no /etc/hosts,
    // /etc/resolv.conf or mount stubs, and /etc (where the stubs were) is
    // unchanged.
    assert_eq!(
        lines(&layers[1]),
        [
            format!("dev dir 755 0:0 {EPOCH}"),
            format!("hello file 644 0:0 {EPOCH}"),
            format!("proc dir 755 0:0 {EPOCH}"),
            format!("sys dir 755 0:0 {EPOCH}"),
        ]
    );
    assert_eq!(layers[1][1].data, "hello world\n");
    let config = env.config(&built);
    assert_eq!(
        history(&config).last().unwrap(),
        "RUN |3 WHO=world UNSET= ALSO_UNSET= /bin/sh -c echo hello $WHO > /hello && echo out && echo err >&2 # buildkit"
    );
    // ARGs reach RUN's environment, never the image's.
    assert_eq!(
        config["config"]["Env"],
        json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    );
}

#[test]
fn deletions_become_whiteouts_and_a_recreated_directory_is_opaque() {
    let env = Env::new();
    let req = request(
        &env,
        "FROM bb\nRUN mkdir -p /d/sub && echo a > /d/a && echo b > /d/sub/b\nRUN rm /d/a && rm -r /d/sub && mkdir /d/sub && echo c > /d/sub/c\n",
    );
    let built = env.run(&req).unwrap();
    let layers = env.layers(&built);
    assert_eq!(layers.len(), 3);
    let last = lines(&layers[2]);
    assert!(
        last.iter().any(|l| l.starts_with("d/.wh.a file")),
        "{last:?}"
    );
    assert!(
        last.iter().any(|l| l.starts_with("d/sub/.wh..wh..opq ")),
        "{last:?}"
    );
    assert!(
        last.iter().any(|l| l.starts_with("d/sub/c file 644")),
        "{last:?}"
    );
    assert!(!last.iter().any(|l| l.starts_with("d/sub/b")), "{last:?}");
}

#[test]
fn a_failing_step_names_its_line_exit_code_and_last_output_lines() {
    let env = Env::new();
    let images = env.images();
    let mut req = request(
        &env,
        "FROM bb\nRUN for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line$i; done; exit 3\n",
    );
    req.tags.push("never:1".parse().unwrap());
    let err = env.run(&req).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "Dockerfile:2:1: process \"/bin/sh -c for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line$i; done; exit 3\" did not complete successfully: exit code: 3"
        ),
        "{err}"
    );
    assert!(
        err.contains("  line3\n") && err.contains("  line12"),
        "{err}"
    );
    assert!(!err.contains("line2\n"), "{err}");
    assert_eq!(env.images(), images);
    assert_fsck_clean(env.store());
}

#[test]
fn a_heredoc_starting_with_a_shebang_runs_as_a_file_so_its_interpreter_line_counts() {
    // `#!/bin/sh -e`: the -e stops at `false`, as in BuildKit; given to
    // `/bin/sh -c` the line was a comment and the image was silently wrong.
    let env = Env::new();
    let req = request(
        &env,
        "FROM bb\nRUN <<EOF\n#!/bin/sh -e\nfalse\necho x > /x\nEOF\n",
    );
    let err = env.run(&req).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "Dockerfile:2:1: process \"/bin/sh -c /dev/pipes/EOF\" did not complete successfully: exit code: 1"
        ),
        "{err}"
    );
    // The interpreter and its arguments come from the `#!` line, and the
    // script file is not left in the layer.
    let req = request(
        &env,
        "FROM bb\nRUN <<EOF\n#!/bin/sh -x\necho $0 > /ran\nEOF\n",
    );
    let (built, events) = env.build_events(&req);
    let built = built.unwrap();
    assert!(
        output(&events).iter().any(|l| l.starts_with("+ echo")),
        "{:?}",
        output(&events)
    );
    let layers = env.layers(&built);
    let ran = layers[1]
        .iter()
        .find(|e| e.line.starts_with("ran "))
        .unwrap();
    assert_eq!(ran.data, "/dev/pipes/EOF\n");
    assert!(!changed(&layers[1]).iter().any(|l| l.contains("pipes")));
}

#[test]
fn a_chomped_heredoc_that_is_not_the_whole_command_reaches_the_shell_as_written() {
    // BuildKit strips a `<<-` body's leading tabs only when the heredoc is
    // the whole command; otherwise it hands the line and the bodies to the
    // shell, which strips them itself, so the history keeps the tabs.
    let env = Env::new();
    let req = request(
        &env,
        "FROM bb\nRUN <<-EOT cat > /t\n\ta\tb\n\t\tc\n\tEOT\nRUN <<-EOT\n\techo x > /u\n\tEOT\n",
    );
    let built = env.run(&req).unwrap();
    let history = history(&env.config(&built));
    assert_eq!(
        history[history.len() - 2..],
        [
            "RUN /bin/sh -c <<-EOT cat > /t\n\ta\tb\n\t\tc\nEOT # buildkit",
            "RUN /bin/sh -c echo x > /u\n # buildkit",
        ]
    );
    let layers = env.layers(&built);
    let t = layers[1].iter().find(|e| e.line.starts_with("t ")).unwrap();
    assert_eq!(t.data, "a\tb\nc\n");
}

#[test]
fn a_missing_program_is_named() {
    let env = Env::new();
    let req = request(&env, "FROM bb\nRUN [\"/no/such/program\", \"x\"]\n");
    let err = env.run(&req).unwrap_err().to_string();
    assert!(err.starts_with("Dockerfile:2:"), "{err}");
    assert!(err.contains("/no/such/program"), "{err}");
}

#[test]
fn user_workdir_env_and_hosts_are_what_the_step_sees() {
    let env = Env::new();
    let req = request(
        &env,
        "FROM bb\nENV A=1\nWORKDIR /w\nUSER 1000:1001\nRUN id -u; id -g; pwd; echo A=$A; hostname; cat /etc/hosts\n",
    );
    let (built, events) = env.build_events(&req);
    built.unwrap();
    let out = output(&events);
    assert_eq!(
        out,
        [
            "1000",
            "1001",
            "/w",
            "A=1",
            "buildkitsandbox",
            "127.0.0.1\tlocalhost buildkitsandbox",
            "::1\tlocalhost ip6-localhost ip6-loopback"
        ]
    );
}

#[test]
fn a_step_has_no_inheritable_or_ambient_capabilities_so_a_user_step_has_none() {
    // containerd's default spec under BuildKit: bounding, permitted and
    // effective only. Ambient capabilities gave USER nobody
    // NET_BIND_SERVICE, KILL and AUDIT_WRITE.
    let env = Env::new();
    let req = request(
        &env,
        "FROM bb\nRUN grep Cap /proc/self/status\nUSER 65534:65534\nRUN grep Cap /proc/self/status\n",
    );
    let (built, events) = env.build_events(&req);
    built.unwrap();
    let out = output(&events);
    let docker = "00000000a80425fb";
    let zero = "0000000000000000";
    let want = |inh: &str, prm: &str, eff: &str, bnd: &str, amb: &str| {
        vec![
            format!("CapInh:\t{inh}"),
            format!("CapPrm:\t{prm}"),
            format!("CapEff:\t{eff}"),
            format!("CapBnd:\t{bnd}"),
            format!("CapAmb:\t{amb}"),
        ]
    };
    let mut expected = want(zero, docker, docker, docker, zero);
    expected.extend(want(zero, zero, zero, docker, zero));
    assert_eq!(out, expected);
}

#[test]
fn a_mount_over_the_root_is_refused_naming_the_step() {
    let env = Env::new();
    for file in [
        "FROM bb\nRUN --mount=type=tmpfs,target=/ true\n",
        "FROM bb\nRUN --mount=type=cache true\n",
        "FROM bb\nWORKDIR /w\nRUN --mount=type=bind,target=.. true\n",
    ] {
        let err = env.run(&request(&env, file)).unwrap_err().to_string();
        assert!(err.contains("invalid mount target \"/\""), "{file}: {err}");
        assert!(err.starts_with("Dockerfile:"), "{file}: {err}");
    }
}

#[test]
fn steps_that_make_the_same_layer_twice_leave_later_steps_runnable() {
    let env = Env::new();
    // Both `true`s leave the same (empty) change: one diff_id twice below
    // the last step, which overlayfs refused as a loop (ELOOP).
    let req = request(
        &env,
        "FROM bb\nRUN true\nRUN echo one > /f\nRUN true\nRUN echo one > /f\nRUN cat /f > /g\n",
    );
    let built = env.run(&req).unwrap();
    let layers = env.layers(&built);
    assert_eq!(layers.len(), 6);
    assert!(lines(&layers[5])
        .iter()
        .any(|l| l.starts_with("g file 644")));
}

#[test]
fn a_user_and_group_given_as_root_or_numbers_need_no_passwd_file() {
    let env = Env::new();
    // The busybox base has no /etc/passwd or /etc/group.
    let req = request(
        &env,
        "FROM bb\nRUN test ! -e /etc/passwd && test ! -e /etc/group\nUSER root:root\nRUN id -u; id -g\nUSER 7:root\nRUN id -u; id -g\nUSER root:9\nRUN id -u; id -g\n",
    );
    let (built, events) = env.build_events(&req);
    built.unwrap();
    assert_eq!(output(&events), ["0", "0", "7", "0", "0", "9"]);
    // A name still needs the file, as in BuildKit.
    let err = env
        .run(&request(&env, "FROM bb\nUSER app:root\nRUN true\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unable to find user app"), "{err}");
}

#[test]
fn network_none_has_only_loopback_and_host_sees_the_hosts_interfaces() {
    let env = Env::new();
    let mut req = request(
        &env,
        "FROM bb\nRUN --network=none ls /sys/class/net\nRUN --network=host ls /sys/class/net\n",
    );
    // Without the entitlement, the host's network is refused, as in BuildKit.
    let err = env.run(&req).unwrap_err().to_string();
    assert!(
        err.contains("Dockerfile:3:5: RUN --network=host needs the network.host entitlement, which this build does not grant"),
        "{err}"
    );
    assert!(err.contains("kiln build --allow network.host"), "{err}");
    // A failed build leaves the request's interrupt flag as it found it.
    assert!(!req.interrupt.load(Ordering::SeqCst));
    req.allow_network_host = true;
    // The first step was recorded by the failed build; run it again to
    // see its output.
    req.no_cache = true;
    let (built, events) = env.build_events(&req);
    built.unwrap();
    let out = output(&events);
    let host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(out[0], "lo", "{out:?}");
    let seen: Vec<&str> = out[1..].iter().flat_map(|l| l.split_whitespace()).collect();
    for name in &host {
        assert!(seen.contains(&name.as_str()), "{name} missing from {out:?}");
    }
}

#[test]
fn a_cache_mount_persists_across_builds_and_stays_out_of_the_layer() {
    let env = Env::new();
    let dockerfile = "FROM bb\nRUN --mount=type=cache,target=/cache echo x >> /cache/log && wc -l < /cache/log > /count\n";
    // The second build must not be a cache hit, or the step would not run again.
    for (want, no_cache) in [("1", false), ("2", true)] {
        let mut req = request(&env, dockerfile);
        req.no_cache = no_cache;
        let built = env.run(&req).unwrap();
        let layers = env.layers(&built);
        assert_eq!(changed(&layers[1]), [format!("count file 644 0:0 {EPOCH}")]);
        let count = layers[1]
            .iter()
            .find(|e| e.line.starts_with("count "))
            .unwrap();
        assert_eq!(count.data.trim(), want);
    }
}

#[test]
fn bind_mounts_of_the_context_discard_writes() {
    let env = Env::new();
    env.file("a.txt", "from the context\n");
    let req = request(
        &env,
        "FROM bb\nRUN --mount=type=bind,target=/ctx,rw echo new > /ctx/new && cat /ctx/a.txt > /a\nRUN --mount=target=/ro ! touch /ro/x\n",
    );
    let built = env.run(&req).unwrap();
    let layers = env.layers(&built);
    assert_eq!(changed(&layers[1]), [format!("a file 644 0:0 {EPOCH}")]);
    assert_eq!(layers[1][0].data, "from the context\n");
    assert!(!env.ctx().join("new").exists());
    assert!(!env.ctx().join("x").exists());
}

#[test]
fn secrets_are_mounted_but_never_stored() {
    let env = Env::new();
    std::fs::write(env.path("token"), "s3cr3t-file").unwrap();
    let mut req = request(
        &env,
        "FROM bb\nRUN --mount=type=secret,id=tok cat /run/secrets/tok && touch /ok\nRUN --mount=type=secret,id=tok,target=/t,required test -f /t\n",
    );
    req.secrets
        .insert("tok".into(), SecretSource::File(env.path("token")));
    let (built, events) = env.build_events(&req);
    let built = built.unwrap();
    assert_eq!(output(&events), ["s3cr3t-file"]);
    let layers = env.layers(&built);
    for layer in &layers[1..] {
        assert!(!layer.iter().any(|e| e.data.contains("s3cr3t")));
    }
    assert_eq!(changed(&layers[1]), [format!("ok file 644 0:0 {EPOCH}")]);
    assert!(lines(&layers[2]).is_empty(), "{:?}", lines(&layers[2]));
    let config = serde_json::to_string(&env.config(&built)).unwrap();
    assert!(!config.contains("s3cr3t"), "{config}");

    let mut req = request(
        &env,
        "FROM bb\nRUN --mount=type=secret,id=missing,required true\n",
    );
    req.secrets.clear();
    let err = env.run(&req).unwrap_err().to_string();
    assert!(err.starts_with("Dockerfile:2:"), "{err}");
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn a_tmpfs_mount_leaves_nothing_behind() {
    let env = Env::new();
    let req = request(
        &env,
        "FROM bb\nRUN --mount=type=tmpfs,target=/scratch/deep echo x > /scratch/deep/f && grep -q tmpfs /proc/mounts\n",
    );
    let built = env.run(&req).unwrap();
    let layer = &env.layers(&built)[1];
    assert!(changed(layer).is_empty(), "{:?}", lines(layer));
}

#[test]
fn an_interrupted_build_kills_its_container_and_stores_nothing() {
    let env = Env::new();
    let images = env.images();
    let mut req = request(&env, "FROM bb\nRUN sleep 100\n");
    req.tags.push("never:1".parse().unwrap());
    let interrupt = req.interrupt.clone();
    let setter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        interrupt.store(true, Ordering::SeqCst);
    });
    let err = env.run(&req).unwrap_err().to_string();
    setter.join().unwrap();
    assert_eq!(err, "build interrupted");
    assert_eq!(env.images(), images);
    let active = env.path("store/snapshots/active");
    let left: Vec<_> = std::fs::read_dir(&active)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    assert_fsck_clean(env.store());
}

#[test]
fn a_bind_mount_of_the_context_leaves_out_what_dockerignore_excludes() {
    let env = Env::new();
    env.file(".dockerignore", "secret.txt\n*.log\n!keep.log\nbuild/\n")
        .file("secret.txt", "s")
        .file("debug.log", "d")
        .file("keep.log", "k")
        .file("build/out.o", "o")
        .file("app/main.c", "m");
    for rw in ["", ",rw"] {
        let mut req = request(
            &env,
            &format!(
                "FROM bb\nRUN --mount=type=bind,target=/ctx{rw} cd /ctx && find . | sort > /list\n"
            ),
        );
        req.no_cache = true;
        let built = env.run(&req).unwrap_or_else(|e| panic!("{e}"));
        let layers = env.layers(&built);
        let list = layers[1]
            .iter()
            .find(|e| e.line.starts_with("list "))
            .unwrap();
        assert_eq!(
            list.data, ".\n./.dockerignore\n./app\n./app/main.c\n./keep.log\n",
            "rw={rw:?}"
        );
    }
    // A mount whose source holds nothing excluded sees it all.
    let req = request(
        &env,
        "FROM bb\nRUN --mount=type=bind,source=app,target=/app cat /app/main.c > /m\n",
    );
    let built = env.run(&req).unwrap();
    let layers = env.layers(&built);
    assert_eq!(
        layers[1]
            .iter()
            .find(|e| e.line.starts_with("m "))
            .unwrap()
            .data,
        "m"
    );
}

#[test]
fn a_platform_that_fails_fails_the_build_with_its_own_error() {
    use kiln_frontend::stages::Platform;
    let (host, foreign, foreign_arch, qemu) = if cfg!(target_arch = "aarch64") {
        ("linux/arm64", "linux/amd64", "amd64", "qemu-x86_64")
    } else {
        ("linux/amd64", "linux/arm64", "arm64", "qemu-aarch64")
    };
    if std::path::Path::new("/proc/sys/fs/binfmt_misc")
        .join(qemu)
        .exists()
    {
        eprintln!("skipping: this host emulates {foreign}");
        return;
    }
    let env = Env::new();
    // Each platform's base from a context of its own: busybox for the
    // host, the foreign entry of the platforms index (a foreign binary)
    // for the other.
    let mut req = request(&env, "ARG TARGETARCH\nFROM base-${TARGETARCH}\nRUN true\n");
    let bb = req.build_contexts["bb"].clone();
    let host_arch = host.rsplit('/').next().unwrap();
    req.build_contexts.insert(format!("base-{host_arch}"), bb);
    req.build_contexts.insert(
        format!("base-{foreign_arch}"),
        kiln_backend::NamedContext::OciLayout {
            path: kiln_testsupport::base_images().platforms.clone(),
            reference: Some("latest".into()),
        },
    );
    // No emulator runs the foreign binaries here: that platform's RUN
    // fails, while the host's builds (or is cancelled by the failure).
    req.platforms = vec![
        Platform::parse(host).unwrap(),
        Platform::parse(foreign).unwrap(),
    ];
    let built = env.run(&req);
    let err = built.unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "RUN for linux/{foreign_arch} needs an emulator: no binfmt_misc handler for it is registered on this host"
        )),
        "{err}"
    );
    assert!(!req.interrupt.load(Ordering::SeqCst));
    assert!(env.images().is_empty(), "{:?}", env.images());
}

/// A single-platform base of another architecture than `--platform` asks
/// for is used as it is, with BuildKit's warning, and its programs run as
/// what they are: BuildKit runs them without an emulator when it has none
/// for the platform asked for. kiln refused the RUN, asking for one.
#[test]
fn a_base_for_another_platform_runs_its_own_programs() {
    use kiln_frontend::stages::Platform;
    let env = Env::new();
    let mut req = request(&env, "FROM bb\nRUN echo ran > /ran\n");
    req.platform = Some(Platform::parse("linux/s390x").unwrap());
    let (built, events) = env.build_events(&req);
    let built = built.unwrap_or_else(|e| panic!("{e}"));
    let warned = events.iter().any(|e| {
        matches!(e, BuildEvent::Warning { message, .. }
            if message.starts_with("base image bb is for linux/") && message.contains(", not linux/s390x"))
    });
    assert!(warned, "{events:#?}");
    let layers = env.layers(&built);
    let last = layers.last().unwrap();
    assert_eq!(changed(last), [format!("ran file 644 0:0 {EPOCH}")]);
    assert_eq!(
        last.iter()
            .find(|e| e.line.starts_with("ran "))
            .unwrap()
            .data,
        "ran\n"
    );
}

#[test]
fn cache_mount_options_ids_modes_owners_seeds_and_locked_sharing() {
    let env = Env::new();
    let dockerfile = "FROM bb AS seed\nRUN mkdir -p /seed && echo seeded > /seed/s\n\
        FROM bb\n\
        RUN --mount=type=cache,id=shared,target=/a,mode=0700,uid=1234,gid=2345 stat -c '%a %u %g' /a > /a-stat && echo one > /a/x\n\
        RUN --mount=type=cache,id=shared,target=/b cat /b/x > /b-x\n\
        RUN --mount=type=cache,target=/c,from=seed,source=/seed cat /c/s > /c-s\n";
    let mut req = request(&env, dockerfile);
    req.no_cache = true;
    let built = env.run(&req).unwrap_or_else(|e| panic!("{e}"));
    let layers = env.layers(&built);
    let file = |layer: &[Entry], name: &str| {
        layer
            .iter()
            .find(|e| e.line.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {layer:?}"))
            .data
            .clone()
    };
    // A new cache directory gets mode, uid and gid; the id, not the
    // target, names the cache; from= and source= seed an empty one.
    assert_eq!(file(&layers[1], "a-stat"), "700 1234 2345\n");
    assert_eq!(file(&layers[2], "b-x"), "one\n");
    assert_eq!(file(&layers[3], "c-s"), "seeded\n");

    // Two stages at once on one locked cache take turns.
    let dockerfile = "FROM bb AS one\nRUN --mount=type=cache,id=l,target=/l,sharing=locked echo start >> /l/log && sleep 1 && echo end >> /l/log\n\
        FROM bb AS two\nRUN --mount=type=cache,id=l,target=/l,sharing=locked echo start >> /l/log && sleep 1 && echo end >> /l/log\n\
        FROM bb\nCOPY --from=one /bin/busybox /one\nCOPY --from=two /bin/busybox /two\nRUN --mount=type=cache,id=l,target=/l cp /l/log /log\n";
    let mut req = request(&env, dockerfile);
    req.no_cache = true;
    let built = env.run(&req).unwrap_or_else(|e| panic!("{e}"));
    let layers = env.layers(&built);
    let log = file(layers.last().unwrap(), "log");
    assert_eq!(log, "start\nend\nstart\nend\n");
}

#[test]
fn an_ssh_mount_is_a_socket_for_the_step_user_and_a_missing_agent_is_an_error() {
    let env = Env::new();
    let agent_dir = tempfile::tempdir().unwrap();
    let agent = agent_dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&agent).unwrap();
    let dockerfile = "FROM bb\nRUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /sock \
        && stat -c '%u %a' \"$SSH_AUTH_SOCK\" >> /sock\n\
        RUN --mount=type=ssh,id=deploy,target=/run/deploy.sock,uid=1000,mode=0660 stat -c '%u %a' /run/deploy.sock > /deploy\n";
    let mut req = request(&env, dockerfile);
    req.ssh.insert("default".into(), agent.clone());
    req.ssh.insert("deploy".into(), agent.clone());
    let built = env.run(&req).unwrap_or_else(|e| panic!("{e}"));
    let layers = env.layers(&built);
    let data = |i: usize, name: &str| {
        layers[i]
            .iter()
            .find(|e| e.line.starts_with(&format!("{name} ")))
            .unwrap()
            .data
            .clone()
    };
    assert_eq!(data(1, "sock"), "/run/buildkit/ssh_agent.0\n0 600\n");
    assert_eq!(data(2, "deploy"), "1000 660\n");
    // Nothing of the agent stays in the layers.
    assert!(
        !layers[1]
            .iter()
            .any(|e| e.line.starts_with("run/buildkit/ssh")),
        "{:?}",
        layers[1]
    );
    // required=true without --ssh for that id fails, naming the flag.
    let req = request(
        &env,
        "FROM bb\nRUN --mount=type=ssh,id=other,required=true true\n",
    );
    let err = env.run(&req).unwrap_err().to_string();
    assert!(
        err.contains("ssh agent other is required but was not given; pass it with --ssh other=$SSH_AUTH_SOCK"),
        "{err}"
    );
}

#[test]
fn run_in_a_windows_image_answers_not_supported_saying_where_it_can_run() {
    let env = Env::new();
    let req = env.request("FROM --platform=windows/amd64 scratch\nCOPY a /\nRUN echo hi\n");
    env.file("a", "a");
    let err = env.run(&req).unwrap_err().to_string();
    assert!(
        err.contains("RUN in a windows image needs a windows host"),
        "{err}"
    );
    assert!(
        err.contains("HCS backend") && err.contains("remote kiln daemon"),
        "{err}"
    );
    assert!(err.starts_with("Dockerfile:3"), "{err}");
}
