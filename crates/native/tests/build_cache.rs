//! The build cache through whole builds: what a rebuild takes from it, what
//! makes a step miss and the reason it gives, and the false hits and misses
//! other builders shipped (buildah#6106, BuildKit#5680, …).

mod build_support;

use build_support::*;
use kiln_backend::{BuildEvent, BuildRequest, BuiltImage, SecretSource};
use std::path::Path;
use std::time::{Duration, SystemTime};

const EPOCH: i64 = 1_700_000_000;

/// What a build did with each step: `(stage, index)` of the steps taken
/// from the cache, and of those that missed with the reason.
struct Outcome {
    built: BuiltImage,
    cached: Vec<(usize, usize)>,
    missed: Vec<(usize, usize, String)>,
    /// For each miss, whether a display may leave it out (no news).
    expected: Vec<bool>,
    output: Vec<String>,
}

fn build(env: &Env, req: &BuildRequest) -> Outcome {
    let (built, events) = env.build_events(req);
    let built = built.unwrap_or_else(|e| panic!("build failed:\n{e}"));
    let mut out = Outcome {
        built,
        cached: Vec::new(),
        missed: Vec::new(),
        expected: Vec::new(),
        output: Vec::new(),
    };
    for e in events {
        match e {
            BuildEvent::InstructionComplete {
                stage,
                index,
                cached: true,
            } => out.cached.push((stage, index)),
            BuildEvent::CacheMiss {
                stage,
                index,
                reason,
                expected,
            } => {
                out.missed.push((stage, index, reason));
                out.expected.push(expected);
            }
            BuildEvent::Output { line, .. } => out.output.push(line),
            _ => {}
        }
    }
    out
}

fn id(o: &Outcome) -> String {
    o.built.manifest.digest.to_string()
}

/// Sets a file's mtime.
fn set_mtime(path: &Path, secs: u64) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

const APP: &str = "FROM scratch\nCOPY app/ /app/\nENV A=1\nWORKDIR /w\nCOPY top.txt /\nLABEL x=y\n";

fn app_env() -> Env {
    let env = Env::new();
    env.file("app/main.rs", "fn main() {}\n")
        .file("app/lib/util.rs", "pub fn f() {}\n")
        .file("top.txt", "top\n");
    env
}

#[test]
fn a_rebuild_with_nothing_changed_takes_every_step_from_the_cache_and_gives_the_same_image() {
    let env = app_env();
    // No SOURCE_DATE_EPOCH: the same image comes back anyway, since the
    // cached steps keep the time they were first built.
    let req = env.request(APP);
    let first = build(&env, &req);
    assert!(first.cached.is_empty(), "{:?}", first.cached);
    assert_eq!(first.missed.len(), 5, "{:?}", first.missed);
    // A first build's misses are no news.
    assert!(first.expected.iter().all(|e| *e));
    std::thread::sleep(Duration::from_millis(1100));
    let second = build(&env, &req);
    assert_eq!(second.cached, [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)]);
    assert!(second.missed.is_empty(), "{:?}", second.missed);
    assert_eq!(id(&second), id(&first));
    assert_eq!(env.config(&second.built), env.config(&first.built));
}

#[test]
fn a_content_change_with_the_mtime_restored_misses_and_names_the_file() {
    // buildah#6106: same size, same mtime, new content.
    let env = app_env();
    let main = env.ctx().join("app/main.rs");
    set_mtime(&main, 1_600_000_000);
    let mut req = env.request(APP);
    req.source_date_epoch = Some(EPOCH);
    let first = build(&env, &req);
    std::fs::write(&main, "fn main() {1}").unwrap();
    std::fs::write(&main, "fn main() {2}\n").unwrap();
    set_mtime(&main, 1_600_000_000);
    let second = build(&env, &req);
    assert_ne!(id(&second), id(&first));
    assert_eq!(
        second.missed.first(),
        Some(&(0, 1, "COPY app/ /app/: app/main.rs changed".to_string()))
    );
    assert!(!second.expected[0]);
    // The steps after it miss too (their parent changed), the config ones
    // rerun at no cost.
    assert!(
        second.missed.iter().any(|m| m.1 == 4),
        "{:?}",
        second.missed
    );
    let layers = env.layers(&second.built);
    let main = layers[0]
        .iter()
        .find(|e| e.line.starts_with("app/main.rs "))
        .unwrap();
    assert_eq!(main.data, "fn main() {2}\n");
}

#[test]
fn a_mass_touch_keeps_the_cache() {
    // BuildKit#5680: an mtime-only change of every file is no change.
    let env = Env::new();
    for i in 0..300 {
        env.file(&format!("src/d{}/f{i}.txt", i % 7), &format!("file {i}\n"));
    }
    let mut req = env.request("FROM scratch\nCOPY src /src\nCOPY src/d1 /d1\n");
    req.source_date_epoch = Some(EPOCH);
    let first = build(&env, &req);
    for entry in walkdir(&env.ctx().join("src")) {
        if entry.is_file() {
            set_mtime(&entry, 1_650_000_000);
        }
    }
    let second = build(&env, &req);
    assert_eq!(second.cached, [(0, 1), (0, 2)], "{:?}", second.missed);
    // The layers keep the mtimes of the first build: they are its layers.
    assert_eq!(id(&second), id(&first));
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn the_same_files_in_another_context_directory_hit() {
    let env = app_env();
    let mut req = env.request(APP);
    req.source_date_epoch = Some(EPOCH);
    let first = build(&env, &req);
    let moved = env.path("elsewhere/ctx");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    let status = std::process::Command::new("cp")
        .args(["-a", env.ctx().to_str().unwrap(), moved.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_dir_all(env.ctx()).unwrap();
    req.context = Some(moved);
    let second = build(&env, &req);
    assert!(second.missed.is_empty(), "{:?}", second.missed);
    assert_eq!(id(&second), id(&first));
}

#[test]
fn a_mode_only_change_misses() {
    let env = app_env();
    let mut req = env.request(APP);
    req.source_date_epoch = Some(EPOCH);
    let first = build(&env, &req);
    chmod(&env.ctx().join("app/lib/util.rs"), 0o755);
    let second = build(&env, &req);
    assert_eq!(
        second.missed.first(),
        Some(&(0, 1, "COPY app/ /app/: app/lib/util.rs changed".to_string()))
    );
    assert_ne!(id(&second), id(&first));
    let layers = env.layers(&second.built);
    assert!(
        layers[0]
            .iter()
            .any(|e| e.line.starts_with("app/lib/util.rs file 755 ")),
        "{:?}",
        layers[0]
    );
}

#[test]
fn copy_with_an_octal_chmod_does_not_depend_on_the_sources_permissions() {
    let env = app_env();
    let mut req =
        env.request("FROM scratch\nCOPY --chmod=640 app/ /app/\nCOPY --chmod=u+x top.txt /\n");
    req.source_date_epoch = Some(EPOCH);
    let first = build(&env, &req);
    chmod(&env.ctx().join("app/main.rs"), 0o600);
    let second = build(&env, &req);
    // The octal one hits: every bit it keeps is set by --chmod.
    assert_eq!(second.cached, [(0, 1), (0, 2)], "{:?}", second.missed);
    assert_eq!(id(&second), id(&first));
    // A symbolic --chmod starts from the source's bits, so those count.
    chmod(&env.ctx().join("top.txt"), 0o600);
    let third = build(&env, &req);
    assert_eq!(third.cached, [(0, 1)]);
    assert_eq!(
        third.missed,
        [(
            0,
            2,
            "COPY --chmod=u+x top.txt /: top.txt changed".to_string()
        )]
    );
    let layers = env.layers(&third.built);
    assert!(
        layers[1][0].line.starts_with("top.txt file 700 "),
        "{:?}",
        layers[1]
    );
}

#[test]
fn a_build_arg_reaches_only_the_stages_that_declare_it() {
    let env = Env::new();
    env.file("f", "f\n");
    let dockerfile = "FROM scratch AS a\nARG V\nCOPY f /a\n\
                      FROM scratch AS b\nCOPY f /b\n\
                      FROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n";
    let mut req = env.request(dockerfile);
    req.source_date_epoch = Some(EPOCH);
    req.build_args.insert("V".into(), "1".into());
    build(&env, &req);
    req.build_args.insert("V".into(), "2".into());
    let second = build(&env, &req);
    // Stage a's ARG sees V=2, but its COPY does not use V, so it hits, as
    // in BuildKit (an ARG misses "upon its first usage, not its
    // definition"); stage b never declared V; the final stage copies the
    // same files from both.
    let missed: Vec<(usize, usize)> = second.missed.iter().map(|m| (m.0, m.1)).collect();
    assert_eq!(missed, [(0, 1)], "{:?}", second.missed);
    assert!(second.cached.contains(&(0, 2)));
    assert!(second.cached.contains(&(1, 1)));
    assert!(second.cached.contains(&(2, 1)) && second.cached.contains(&(2, 2)));
}

/// Config-only steps (LABEL, ENV, ARG, USER, …) move no layer, so a change
/// to one misses only the steps that read what it changed, as BuildKit's
/// cache does: a RUN reads the environment, USER, WORKDIR and SHELL; a
/// COPY reads none of them but WORKDIR (and the environment for a
/// heredoc). kiln once missed every step after any changed line, so a
/// version LABEL at the top rebuilt the whole image.
#[test]
fn a_changed_config_step_misses_only_the_steps_that_read_it() {
    let env = Env::new();
    env.file("f", "f\n");
    let build_with = |label: &str, user: &str, shell: &str, env_value: &str| {
        let dockerfile = format!(
            "FROM bb\nLABEL version={label}\nENV E={env_value}\nUSER {user}\nSHELL [\"{shell}\", \"-c\"]\n\
             COPY f /f\nCOPY <<EOT /h\n$E\nEOT\nRUN echo ran\n"
        );
        let mut req = with_busybox(env.request(&dockerfile));
        req.source_date_epoch = Some(EPOCH);
        build(&env, &req)
    };
    let first = build_with("1", "0", "/bin/sh", "a");
    assert_eq!(first.output, ["ran"]);
    // Steps: 1 LABEL, 2 ENV, 3 USER, 4 SHELL, 5 COPY f, 6 COPY heredoc, 7 RUN.
    let layer_steps = |o: &Outcome| -> Vec<usize> {
        o.missed
            .iter()
            .map(|m| m.1)
            .filter(|i| [5, 6, 7].contains(i))
            .collect()
    };
    let label = build_with("2", "0", "/bin/sh", "a");
    assert!(layer_steps(&label).is_empty(), "{:?}", label.missed);
    assert!(label.output.is_empty(), "{:?}", label.output);
    let user = build_with("2", "0:0", "/bin/sh", "a");
    assert_eq!(layer_steps(&user), [7], "{:?}", user.missed);
    let shell = build_with("2", "0:0", "sh", "a");
    assert_eq!(layer_steps(&shell), [7], "{:?}", shell.missed);
    let env_change = build_with("2", "0:0", "sh", "b");
    assert_eq!(layer_steps(&env_change), [6, 7], "{:?}", env_change.missed);
    let layers = env.layers(&env_change.built);
    assert_eq!(
        layers[layers.len() - 2]
            .iter()
            .find(|e| e.line.starts_with("h "))
            .unwrap()
            .data,
        "b\n"
    );
}

#[test]
fn no_cache_reruns_every_step_and_no_cache_filter_only_the_stages_it_names() {
    let env = Env::new();
    env.file("f", "f\n");
    let dockerfile = "FROM scratch AS a\nCOPY f /a\n\
                      FROM scratch AS b\nCOPY f /b\n\
                      FROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n";
    let mut req = env.request(dockerfile);
    req.source_date_epoch = Some(EPOCH);
    let first = build(&env, &req);
    req.no_cache = true;
    let all = build(&env, &req);
    assert!(all.cached.is_empty(), "{:?}", all.cached);
    assert_eq!(all.missed.len(), 4);
    assert!(
        all.missed.iter().all(|m| m.2 == "--no-cache"),
        "{:?}",
        all.missed
    );
    assert_eq!(id(&all), id(&first));
    req.no_cache = false;
    req.no_cache_filter = vec!["b".into()];
    let some = build(&env, &req);
    assert_eq!(
        some.missed,
        [(1, 1, "--no-cache-filter names this stage".to_string())]
    );
    assert_eq!(some.cached.len(), 3);
}

#[test]
fn a_record_whose_layer_left_the_store_is_a_miss_and_the_step_runs_again() {
    let env = app_env();
    let mut req = env.request(APP);
    req.source_date_epoch = Some(EPOCH);
    let first = build(&env, &req);
    let manifest = env.manifest(&first.built);
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let digest = layer.parse().unwrap();
    std::fs::remove_file(env.store().blob_path(&digest)).unwrap();
    let second = build(&env, &req);
    assert_eq!(
        second.missed,
        [(0, 1, "its layer is no longer in the store".to_string())]
    );
    assert_eq!(id(&second), id(&first));
    assert!(env.store().has_blob(&digest));
}

#[test]
fn a_changed_instruction_misses_from_that_step_on() {
    let env = app_env();
    let mut req = env.request(APP);
    req.source_date_epoch = Some(EPOCH);
    build(&env, &req);
    let mut req = env.request(&APP.replace("WORKDIR /w", "WORKDIR /v"));
    req.source_date_epoch = Some(EPOCH);
    let second = build(&env, &req);
    assert_eq!(second.cached, [(0, 1), (0, 2)]);
    let missed: Vec<usize> = second.missed.iter().map(|m| m.1).collect();
    assert_eq!(missed, [3, 4, 5]);
}

#[test]
fn run_steps_are_replayed_without_running_and_a_later_edit_reruns_only_later_steps() {
    let env = Env::new();
    env.file("deps/a.txt", "a\n").file("src/main.txt", "v1\n");
    let dockerfile = "FROM bb\nCOPY deps /deps\nRUN echo ran-1 && date +%N > /one\n\
                      COPY src /src\nRUN echo ran-2 && cat /src/main.txt > /two\n";
    let req = with_busybox(env.request(dockerfile));
    let first = build(&env, &req);
    assert!(
        first.output.contains(&"ran-1".to_string()),
        "{:?}",
        first.output
    );
    let second = build(&env, &req);
    assert!(second.output.is_empty(), "{:?}", second.output);
    assert_eq!(second.cached, [(0, 1), (0, 2), (0, 3), (0, 4)]);
    assert_eq!(id(&second), id(&first));
    env.file("src/main.txt", "v2\n");
    let third = build(&env, &req);
    assert_eq!(third.cached, [(0, 1), (0, 2)]);
    assert_eq!(third.output, ["ran-2"]);
    assert_eq!(third.missed[0].2, "COPY src /src: src/main.txt changed");
    let layers = env.layers(&third.built);
    // The first RUN's layer is the first build's (its `date` output kept).
    assert_eq!(layers[2], env.layers(&first.built)[2]);
    assert_eq!(
        layers[4]
            .iter()
            .find(|e| e.line.starts_with("two "))
            .unwrap()
            .data,
        "v2\n"
    );
}

#[test]
fn a_secret_is_keyed_by_its_id_never_its_value() {
    let env = Env::new();
    std::fs::write(env.path("token"), "one").unwrap();
    let mut req = with_busybox(
        env.request("FROM bb\nRUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /n\n"),
    );
    req.secrets
        .insert("tok".into(), SecretSource::File(env.path("token")));
    build(&env, &req);
    std::fs::write(env.path("token"), "three").unwrap();
    let second = build(&env, &req);
    assert_eq!(second.cached, [(0, 1)], "{:?}", second.missed);
    // The cache file holds no secret value.
    let db = std::fs::read(env.path("store/cache/index.db")).unwrap();
    assert!(!db.windows(5).any(|w| w == b"three"));
    // Another id is another step.
    let mut req = with_busybox(
        env.request("FROM bb\nRUN --mount=type=secret,id=other wc -c < /run/secrets/other > /n\n"),
    );
    req.secrets
        .insert("other".into(), SecretSource::File(env.path("token")));
    let third = build(&env, &req);
    assert!(third.cached.is_empty());
}

#[test]
fn a_step_reading_a_bind_mount_misses_when_the_mounted_file_changes() {
    let env = Env::new();
    env.file("script.sh", "echo one > /out\n");
    let req = with_busybox(
        env.request("FROM bb\nRUN --mount=type=bind,source=script.sh,target=/s.sh sh /s.sh\n"),
    );
    build(&env, &req);
    env.file("script.sh", "echo two > /out\n");
    let second = build(&env, &req);
    assert!(second.cached.is_empty(), "{:?}", second.cached);
    let layers = env.layers(&second.built);
    assert_eq!(
        layers[1]
            .iter()
            .find(|e| e.line.starts_with("out "))
            .unwrap()
            .data,
        "two\n"
    );
}

#[test]
fn add_of_a_url_is_cached_only_with_a_checksum() {
    let env = Env::new();
    let server = kiln_testsupport::FileServer::start(vec![("/f.txt".into(), b"payload".to_vec())]);
    let url = server.url("/f.txt");
    let mut req = env.request(&format!("FROM scratch\nADD {url} /f\n"));
    req.source_date_epoch = Some(EPOCH);
    build(&env, &req);
    let second = build(&env, &req);
    assert_eq!(
        second.missed,
        [(
            0,
            1,
            "ADD of a URL without --checksum is never cached".to_string()
        )]
    );
    assert_eq!(server.requests().len(), 2);
    let sum = "sha256:239f59ed55e737c77147cf55ad0c1b030b6d7ee748a7426952f9b852d5a935e5";
    let mut req = env.request(&format!("FROM scratch\nADD --checksum={sum} {url} /f\n"));
    req.source_date_epoch = Some(EPOCH);
    build(&env, &req);
    let fourth = build(&env, &req);
    assert_eq!(fourth.cached, [(0, 1)]);
    // The hit downloads nothing.
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn a_builder_stage_that_runs_again_but_makes_the_same_files_misses_nothing_after_it() {
    // BuildKit keys COPY --from by the content of what it copies (type,
    // mode, owner, size, xattrs, bytes; not mtimes): a builder that
    // reruns (a README changed) and makes the same binary leaves the final
    // stage cached. Keyed by the builder's layer ids, it rebuilt it all.
    let env = Env::new();
    env.file("src/main.txt", "v1\n").file("README", "one\n");
    let dockerfile = "FROM bb AS build\nCOPY . /src\n\
                      RUN echo built && mkdir /out && cat /src/src/main.txt > /out/app && ln /out/app /out/app2\n\
                      FROM bb\nCOPY --from=build /out /app\nRUN echo final && cat /app/app > /copied\n";
    let req = with_busybox(env.request(dockerfile));
    let first = build(&env, &req);
    assert!(
        first.output.contains(&"final".to_string()),
        "{:?}",
        first.output
    );

    env.file("README", "two\n");
    let second = build(&env, &req);
    // The builder ran again (new mtimes on /out/app), the final stage did not.
    assert_eq!(second.output, ["built"], "{:?}", second.missed);
    assert!(second.cached.contains(&(1, 1)) && second.cached.contains(&(1, 2)));
    let (last, first_layers) = (env.layers(&second.built), env.layers(&first.built));
    assert_eq!(
        last[last.len() - 2..],
        first_layers[first_layers.len() - 2..]
    );

    // A rebuild that changes nothing hits by the builder's layers.
    let third = build(&env, &req);
    assert!(third.output.is_empty(), "{:?}", third.output);

    // What is copied changed: the COPY and everything after it miss.
    env.file("src/main.txt", "v2\n");
    let fourth = build(&env, &req);
    assert_eq!(fourth.output, ["built", "final"]);
    let layers = env.layers(&fourth.built);
    let copied = layers
        .last()
        .unwrap()
        .iter()
        .find(|e| e.line.starts_with("copied "))
        .unwrap();
    assert_eq!(copied.data, "v2\n");

    // So does a change of mode alone, or of the link structure.
    let req = with_busybox(
        env.request(&dockerfile.replace("ln /out/app /out/app2", "cp /out/app /out/app2")),
    );
    let fifth = build(&env, &req);
    assert!(
        fifth.output.contains(&"final".to_string()),
        "{:?}",
        fifth.output
    );
    let req = with_busybox(env.request(&dockerfile.replace(
        "ln /out/app /out/app2",
        "cp /out/app /out/app2 && chmod 600 /out/app2",
    )));
    let sixth = build(&env, &req);
    assert!(
        sixth.output.contains(&"final".to_string()),
        "{:?}",
        sixth.output
    );
}

#[test]
fn a_copy_from_with_a_wildcard_is_keyed_by_the_files_it_matches() {
    // Only what the pattern matches counts: a builder that reruns and
    // changes a file the pattern leaves out misses nothing after it.
    let env = Env::new();
    env.file("v", "1\n").file("README", "one\n");
    let dockerfile = "FROM bb AS build\nCOPY . /src\n\
                      RUN mkdir /out && echo app > /out/app.bin && cp /src/README /out/notes.txt\n\
                      FROM bb\nCOPY --from=build /out/*.bin /app/\nRUN echo final\n";
    let req = with_busybox(env.request(dockerfile));
    let first = build(&env, &req);
    assert!(
        first.output.contains(&"final".to_string()),
        "{:?}",
        first.output
    );
    env.file("README", "two\n");
    let second = build(&env, &req);
    assert!(second.output.is_empty(), "{:?}", second.missed);
    assert!(second.cached.contains(&(1, 1)) && second.cached.contains(&(1, 2)));
}
