//! Multi-stage builds: COPY --from, pruning, concurrency, failures.

mod build_support;

use build_support::*;
use kiln_backend::{BuildEvent, EventSink};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const EPOCH: i64 = 1_700_000_000;

#[test]
fn copy_from_an_earlier_stage() {
    let env = Env::new();
    env.file("src/main.txt", "main\n")
        .file("other.txt", "other\n");
    let mut req = env.request(
        "FROM scratch AS build\nWORKDIR /src\nCOPY src/main.txt ./\n\nFROM scratch\nCOPY --from=build /src/main.txt /app/\nCOPY --from=0 /src /copy\n",
    );
    req.source_date_epoch = Some(EPOCH);
    let built = env.run(&req).unwrap();
    let layers = env.layers(&built);
    assert_eq!(layers.len(), 2, "only the final stage's layers");
    assert_eq!(
        lines(&layers[0]),
        [
            format!("app dir 755 0:0 {EPOCH}"),
            format!("app/main.txt file 644 0:0 {EPOCH}"),
        ]
    );
    assert_eq!(layers[0][1].data, "main\n");
    assert_eq!(
        lines(&layers[1]),
        [
            format!("copy dir 755 0:0 {EPOCH}"),
            format!("copy/main.txt file 644 0:0 {EPOCH}"),
        ]
    );
    assert_eq!(
        history(&env.config(&built)),
        [
            "COPY /src/main.txt /app/ # buildkit",
            "COPY /src /copy # buildkit"
        ]
    );
}

#[test]
fn a_stage_name_given_twice_is_found_as_buildkit_finds_it() {
    let env = Env::new();
    env.file("first", "first\n").file("second", "second\n");
    // FROM a: the last `a` above it; COPY --from=a: the last `a` of all.
    let built = env.build(concat!(
        "FROM scratch AS a\nCOPY first /which\n",
        "FROM a AS b\nCOPY first /b-saw\n",
        "FROM scratch AS a\nCOPY second /which\n",
        "FROM scratch\nCOPY --from=a /which /which\nCOPY --from=b /which /b-which\n",
    ));
    let layers = env.layers(&built);
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0][0].data, "second\n");
    assert_eq!(layers[1][0].data, "first\n");
}

#[test]
fn a_number_names_a_stage_in_copy_from_but_not_in_a_mount() {
    // BuildKit finds mounts' `from` by name only: `from=0` is an image,
    // even where a COPY --from=0 made stage 0 part of the build.
    let env = Env::new();
    let req = with_busybox(env.request(
        "FROM bb\nRUN echo zero > /z\nFROM bb\nCOPY --from=0 /z /z\nRUN --mount=from=0,source=/z,target=/m cat /m\n",
    ));
    let err = env.run(&req).unwrap_err().to_string();
    assert!(err.contains("Dockerfile:5"), "{err}");
    assert!(err.contains("RUN --mount from=0"), "{err}");
}

#[test]
fn copy_history_lists_paths_before_heredocs() {
    // BuildKit's commit message: every source path, then each `<<NAME`.
    let env = Env::new();
    env.file("f", "f\n");
    let mut req = env.request("FROM scratch\nCOPY <<EOT f /dst/\nhello\nEOT\n");
    req.source_date_epoch = Some(EPOCH);
    let built = env.run(&req).unwrap();
    assert_eq!(
        history(&env.config(&built)).last().unwrap(),
        "COPY f <<EOT /dst/ # buildkit"
    );
}

#[test]
fn a_build_context_named_as_a_stage_replaces_the_stage() {
    // BuildKit: `--build-context tools=DIR` stands for the stage `tools`,
    // whose steps then never run; FROM and --from find the context.
    let env = Env::new();
    env.file("f", "from the stage\n");
    let extra = env.path("extra");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(extra.join("g"), "from the context\n").unwrap();
    let mut req = with_busybox(env.request(
        "FROM bb AS tools\nRUN echo stage-ran && touch /ran\nFROM scratch\nCOPY --from=tools / /t/\n",
    ));
    req.build_contexts
        .insert("tools".into(), kiln_backend::NamedContext::Dir(extra));
    let (built, events) = env.build_events(&req);
    let built = built.unwrap();
    let ran = events
        .iter()
        .any(|e| matches!(e, BuildEvent::Output { line, .. } if line == "stage-ran"));
    assert!(!ran, "the replaced stage ran");
    let layers = env.layers(&built);
    let names: Vec<&str> = layers[0]
        .iter()
        .map(|e| e.line.split(' ').next().unwrap())
        .collect();
    assert_eq!(names, ["t", "t/g"]);

    // A FROM of the stage takes the context's image.
    let mut req =
        with_busybox(env.request("FROM scratch AS base\nCOPY f /f\nFROM base\nLABEL x=1\n"));
    req.build_contexts.insert(
        "base".into(),
        kiln_backend::NamedContext::OciLayout {
            path: kiln_testsupport::base_images().busybox.clone(),
            reference: Some("latest".into()),
        },
    );
    let built = env.run(&req).unwrap();
    let layers = env.layers(&built);
    assert_eq!(layers.len(), 1, "busybox's one layer, not the stage's COPY");
    assert!(layers[0]
        .iter()
        .any(|e| e.line.starts_with("./bin/busybox ")));
}

#[test]
fn empty_from_chown_and_chmod_flags_are_no_flags() {
    // BuildKit reads `--from=`, `--chown=` and `--chmod=` with no value as
    // absent, in the copy and in its history.
    let env = Env::new();
    env.file("f", "f\n");
    let mut req =
        env.request("FROM scratch\nARG NOBODY\nCOPY --from= --chown=$NOBODY --chmod= f /f\n");
    req.source_date_epoch = Some(EPOCH);
    let built = env.run(&req).unwrap();
    assert_eq!(
        lines(&env.layers(&built)[0]),
        [format!("f file 644 0:0 {EPOCH}")]
    );
    assert_eq!(
        history(&env.config(&built)).last().unwrap(),
        "COPY f /f # buildkit"
    );
}

#[test]
fn a_stage_built_on_a_stage_keeps_its_layers_config_and_runs_its_onbuild() {
    let env = Env::new();
    env.file("a", "a").file("b", "b");
    let built = env.build(
        "FROM scratch AS base\nENV X=1\nCOPY a /a\nONBUILD COPY b /b\nONBUILD ENV Y=$X\nFROM base\nLABEL l=1\n",
    );
    let config = env.config(&built);
    assert_eq!(
        history(&config),
        [
            "ENV X=1 (empty)",
            "COPY a /a # buildkit",
            "COPY b /b # buildkit",
            "ENV Y=1 (empty)",
            "LABEL l=1 (empty)",
        ]
    );
    // The triggers ran, so the child does not pass them on.
    assert!(config["config"].get("OnBuild").is_none(), "{config}");
    assert_eq!(built.layers, 2);
}

#[test]
fn stages_the_target_does_not_need_are_skipped() {
    let env = Env::new();
    env.file("a", "a");
    let (result, events) = env.build_events(&env.request(
        "FROM scratch AS broken\nCOPY does-not-exist /\nRUN false\nFROM scratch\nCOPY a /a\n",
    ));
    result.unwrap();
    let started: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::StageStarted { index, .. } => Some(*index),
            _ => None,
        })
        .collect();
    assert_eq!(started, [1]);
    assert_eq!(
        events[0],
        BuildEvent::BuildStarted {
            stages: 1,
            instructions: 2
        }
    );
}

#[test]
fn independent_stages_run_concurrently() {
    let env = Env::new();
    env.file("a", "a").file("b", "b");
    let req = env.request(
        "FROM scratch AS one\nCOPY a /a\nFROM scratch AS two\nCOPY b /b\nFROM scratch\nCOPY --from=one /a /a\nCOPY --from=two /b /b\n",
    );
    // Each of the two independent stages waits, on its first step, for
    // the other to start: a build that ran them one after the other would
    // time out here instead of finishing.
    let timed_out = Arc::new(Mutex::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let (t, l) = (timed_out.clone(), log.clone());
    let waiting = Arc::new(Mutex::new(0usize));
    let w = waiting.clone();
    let sink = EventSink::callback(move |e| {
        l.lock().unwrap().push(e.clone());
        if let BuildEvent::InstructionStarted {
            stage, index: 1, ..
        } = e
        {
            if stage < 2 {
                *w.lock().unwrap() += 1;
                let start = std::time::Instant::now();
                while *w.lock().unwrap() < 2 {
                    if start.elapsed() > Duration::from_secs(20) {
                        *t.lock().unwrap() = true;
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    });
    use kiln_backend::BuildBackend;
    env.backend.build(&req, &sink).unwrap();
    assert!(
        !*timed_out.lock().unwrap(),
        "stages one and two did not overlap"
    );
    let log = log.lock().unwrap();
    let pos = |want: &BuildEvent| log.iter().position(|e| e == want).unwrap();
    let done_one = pos(&BuildEvent::StageComplete { index: 0 });
    let done_two = pos(&BuildEvent::StageComplete { index: 1 });
    let start = |i: usize| {
        log.iter()
            .position(|e| matches!(e, BuildEvent::StageStarted { index, .. } if *index == i))
            .unwrap()
    };
    // Both started before either finished; the final stage started after both.
    assert!(start(0) < done_two && start(1) < done_one);
    assert!(start(2) > done_one && start(2) > done_two);
}

fn failing(dockerfile: &str, want: &str) {
    let env = Env::new();
    env.file("a", "a");
    env.build("FROM scratch\nCOPY a /a\n");
    let images = env.images();
    let mut req = env.request(dockerfile);
    req.tags.push("should-not-exist:latest".parse().unwrap());
    let (result, events) = env.build_events(&req);
    let err = result.unwrap_err().to_string();
    assert!(err.starts_with(want), "got:\n{err}\nwant prefix:\n{want}");
    assert!(
        matches!(events.last(), Some(BuildEvent::BuildFailed { error }) if *error == err),
        "{events:?}"
    );
    assert_eq!(env.images(), images, "the store's images changed");
    assert_fsck_clean(env.store());
}

#[test]
fn a_missing_file_fails_with_its_line() {
    failing(
        "FROM scratch\nCOPY a /a\nCOPY missing.txt /\n",
        "Dockerfile:3: ",
    );
}

#[test]
fn copy_from_a_name_that_is_no_stage_fails_with_its_line() {
    failing(
        "FROM scratch AS build\nFROM scratch\nCOPY --from=biuld /x /x\n",
        "Dockerfile:3:13: COPY --from=biuld: no stage or image is named \"biuld\"\n   |\n 3 | COPY --from=biuld /x /x\n   |             ^\n  help: the stages this build can use are: build",
    );
}

#[test]
fn run_security_insecure_is_not_supported() {
    failing(
        "FROM scratch\nCOPY a /a\nRUN --security=insecure echo hi\n",
        "Dockerfile:3:1: RUN --security=insecure is not supported by kiln's native backend\n   |\n 3 | RUN --security=insecure echo hi\n   | ^\n  help: kiln does not run privileged build steps",
    );
}

#[test]
fn a_failing_stage_stops_the_build() {
    let env = Env::new();
    env.file("a", "a");
    let (result, events) = env.build_events(&env.request(
        "FROM scratch AS one\nCOPY missing /x\nFROM scratch AS two\nCOPY a /a\nFROM scratch\nCOPY --from=one /a /1\nCOPY --from=two /a /2\n",
    ));
    let err = result.unwrap_err().to_string();
    assert!(err.starts_with("Dockerfile:2: COPY failed"), "{err}");
    // The final stage needs the failed one, so it never starts.
    assert!(!events
        .iter()
        .any(|e| matches!(e, BuildEvent::StageStarted { index: 2, .. })));
}
