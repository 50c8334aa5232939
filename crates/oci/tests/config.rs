//! Image config round trips and the config builder's rules.

use kiln_oci::{ConfigBuilder, Digest, Healthcheck, ImageConfig};

/// A config as docker writes it: sorted top level, struct-ordered `config`,
/// Go's `\u0026`-style escapes, nulls, docker-only fields.
const DOCKER_CONFIG: &str = r##"{"architecture":"amd64","config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"ExposedPorts":{"80/tcp":{}},"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","NGINX_VERSION=1.25.3"],"Cmd":["nginx","-g","daemon off;"],"Healthcheck":{"Test":["CMD-SHELL","curl -f http://localhost/ || exit 1"],"Interval":30000000000,"Timeout":5000000000,"Retries":3},"ArgsEscaped":true,"Image":"sha256:5b0d2a5b1e1a0e3e6c7b5a8e4d6c2f1a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e","Volumes":null,"WorkingDir":"","Entrypoint":["/docker-entrypoint.sh"],"OnBuild":["RUN echo child"],"Labels":{"maintainer":"NGINX Docker Maintainers \u003cdocker-maint@nginx.com\u003e"},"StopSignal":"SIGQUIT","StopTimeout":10,"Shell":["/bin/bash","-c"]},"container":"8a3d1c2b","container_config":{"Hostname":"8a3d1c2b","Cmd":["/bin/sh","-c","#(nop) ","CMD [\"nginx\" \"-g\" \"daemon off;\"]"],"Image":"sha256:00","Volumes":null},"created":"2023-11-01T09:05:12.345678901Z","docker_version":"20.10.23","history":[{"created":"2023-10-31T01:02:03.4Z","created_by":"/bin/sh -c #(nop) ADD file:9a8b in / "},{"created":"2023-10-31T01:02:04Z","created_by":"/bin/sh -c apt-get update \u0026\u0026 apt-get install -y curl \u003e /dev/null","comment":"é ünïcode"},{"created":"2023-10-31T01:02:05Z","created_by":"/bin/sh -c #(nop)  CMD [\"nginx\"]","empty_layer":true}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:1111111111111111111111111111111111111111111111111111111111111111","sha256:2222222222222222222222222222222222222222222222222222222222222222"]}}"##;

const UNKNOWN_FIELDS: &str = r#"{"os":"linux","architecture":"arm64","x-vendor":{"b":2,"a":[1,2.5,null]},"config":{"Env":["A=1"],"FutureField":{"nested":true}},"rootfs":{"type":"layers","diff_ids":[]},"variant":"v8","zz":null}"#;

#[test]
fn docker_config_round_trips_byte_for_byte() {
    let c = ImageConfig::from_json(DOCKER_CONFIG.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(c.to_json()).unwrap(), DOCKER_CONFIG);
    assert_eq!(c.digest(), Digest::of(DOCKER_CONFIG.as_bytes()));
    assert_eq!(c.architecture(), Some("amd64"));
    assert_eq!(c.env_var("NGINX_VERSION").as_deref(), Some("1.25.3"));
    assert_eq!(c.entrypoint().unwrap(), ["/docker-entrypoint.sh"]);
    assert_eq!(c.shell().unwrap(), ["/bin/bash", "-c"]);
    assert_eq!(c.on_build(), ["RUN echo child"]);
    assert_eq!(c.stop_signal(), "SIGQUIT");
    assert_eq!(c.healthcheck().unwrap()["Retries"], 3);
    assert_eq!(c.diff_ids().unwrap().len(), 2);
    assert_eq!(c.history().unwrap()[2].empty_layer(), Some(true));
    assert_eq!(c.to_oci().unwrap().os().to_string(), "linux");
}

#[test]
fn unknown_fields_round_trip_and_survive_edits() {
    let c = ImageConfig::from_json(UNKNOWN_FIELDS.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(c.to_json()).unwrap(), UNKNOWN_FIELDS);
    let mut b = ConfigBuilder::new(c);
    b.env(&[("B", "2")]);
    let out = String::from_utf8(b.build(0).to_json()).unwrap();
    assert!(
        out.contains(r#""x-vendor":{"b":2,"a":[1,2.5,null]}"#),
        "{out}"
    );
    assert!(
        out.contains(r#""config":{"Env":["A=1","B=2"],"FutureField":{"nested":true}}"#),
        "{out}"
    );
    assert!(out.ends_with(r#""variant":"v8","zz":null}"#), "{out}");
}

#[test]
fn docker_only_fields_survive_a_build() {
    let base = ImageConfig::from_json(DOCKER_CONFIG.as_bytes()).unwrap();
    let mut b = ConfigBuilder::new(base);
    b.user("nginx");
    let out = b.build(0);
    let cfg = &out.as_json()["config"];
    assert_eq!(cfg["StopTimeout"], 10);
    assert_eq!(cfg["Healthcheck"]["Interval"], 30_000_000_000i64);
    assert_eq!(cfg["Hostname"], "");
    assert_eq!(out.as_json()["docker_version"], "20.10.23");
    assert_eq!(out.user(), "nginx");
}

#[test]
fn malformed_configs_are_refused_with_reasons() {
    assert_eq!(
        ImageConfig::from_json(b"[1]").unwrap_err().to_string(),
        "image config must be a JSON object, found an array"
    );
    let err = ImageConfig::from_json(br#"{"rootfs":{"diff_ids":["md5:00"]}}"#).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("image config field \"rootfs.diff_ids\" is invalid:"),
        "{err}"
    );
}

/// The `created_by` of each history entry the builder writes.
fn created_by(b: ConfigBuilder) -> Vec<String> {
    b.build(0)
        .history()
        .unwrap()
        .iter()
        .map(|h| h.created_by().clone().unwrap())
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn base_with_cmd() -> ImageConfig {
    let mut b = ConfigBuilder::new(ImageConfig::new("linux", "amd64"));
    b.cmd(&strings(&["bash"]), false);
    b.build(0)
}

#[test]
fn entrypoint_clears_inherited_cmd() {
    let mut b = ConfigBuilder::new(base_with_cmd());
    b.entrypoint(&strings(&["/entry"]), false);
    let c = b.build(0);
    assert_eq!(c.cmd(), None);
    assert!(!c.as_json()["config"]
        .as_object()
        .unwrap()
        .contains_key("Cmd"));
    assert_eq!(c.entrypoint().unwrap(), ["/entry"]);
}

#[test]
fn entrypoint_keeps_cmd_set_earlier_in_the_stage() {
    let mut b = ConfigBuilder::new(base_with_cmd());
    b.cmd(&strings(&["--help"]), false);
    b.entrypoint(&strings(&["/entry"]), false);
    assert_eq!(b.config().cmd().unwrap(), ["--help"]);

    let mut b = ConfigBuilder::new(base_with_cmd());
    b.entrypoint(&strings(&["/entry"]), false);
    b.cmd(&strings(&["run"]), false);
    assert_eq!(b.config().cmd().unwrap(), ["run"]);
    assert_eq!(b.config().entrypoint().unwrap(), ["/entry"]);
}

#[test]
fn env_replaces_in_place_and_appends() {
    let mut b = ConfigBuilder::new(ImageConfig::new("linux", "amd64"));
    b.env(&[("PATH", "/bin"), ("A", "1"), ("B", "2")]);
    b.env(&[("A", "x=y"), ("C", "3")]);
    assert_eq!(b.config().env(), ["PATH=/bin", "A=x=y", "B=2", "C=3"]);
}

#[test]
fn history_matches_buildkit_and_uses_source_date_epoch() {
    let mut b = ConfigBuilder::new(ImageConfig::new("linux", "amd64"))
        .with_source_date_epoch(Some(1_700_000_000));
    b.env(&[("A", "1")]);
    let run = b.run_created_by(&strings(&["apt-get update && make"]), true, &[("V", "2")]);
    assert_eq!(run, "RUN |1 V=2 /bin/sh -c apt-get update && make");
    b.add_layer(Digest::of(b"layer"), &run);
    b.workdir("app", None);
    b.cmd(&strings(&["echo", "hi"]), true);
    b.expose(&["80", "53/udp"]).unwrap();
    b.label(&[("b", "2"), ("a", "1")]);
    b.healthcheck(&Healthcheck {
        test: strings(&["CMD-SHELL", "curl -f localhost"]),
        interval_ns: 30_000_000_000,
        retries: 3,
        ..Healthcheck::default()
    });
    b.onbuild("RUN make");
    let c = b.build(42);
    let t = "2023-11-14T22:13:20Z";
    let expected = format!(
        concat!(
            r#"{{"architecture":"amd64","config":{{"ExposedPorts":{{"53/udp":{{}},"80/tcp":{{}}}},"Env":["A=1"],"Cmd":["/bin/sh","-c","echo hi"],"WorkingDir":"/app","Labels":{{"a":"1","b":"2"}},"ArgsEscaped":true,"#,
            r#""Healthcheck":{{"Test":["CMD-SHELL","curl -f localhost"],"Interval":30000000000,"Retries":3}},"OnBuild":["RUN make"]}},"created":"{t}","history":["#,
            r#"{{"created":"{t}","created_by":"ENV A=1","comment":"buildkit.dockerfile.v0","empty_layer":true}},"#,
            r#"{{"created":"{t}","created_by":"RUN |1 V=2 /bin/sh -c apt-get update \u0026\u0026 make # buildkit","comment":"buildkit.dockerfile.v0"}},"#,
            r#"{{"created":"{t}","created_by":"WORKDIR /app","comment":"buildkit.dockerfile.v0","empty_layer":true}},"#,
            r#"{{"created":"{t}","created_by":"CMD [\"/bin/sh\" \"-c\" \"echo hi\"]","comment":"buildkit.dockerfile.v0","empty_layer":true}},"#,
            r#"{{"created":"{t}","created_by":"EXPOSE [80/tcp 53/udp]","comment":"buildkit.dockerfile.v0","empty_layer":true}},"#,
            r#"{{"created":"{t}","created_by":"LABEL b=2 a=1","comment":"buildkit.dockerfile.v0","empty_layer":true}},"#,
            r#"{{"created":"{t}","created_by":"HEALTHCHECK {{Test:[CMD-SHELL curl -f localhost] Interval:30s Timeout:0s StartPeriod:0s StartInterval:0s Retries:3}}","comment":"buildkit.dockerfile.v0","empty_layer":true}}"#,
            r#"],"os":"linux","rootfs":{{"type":"layers","diff_ids":["{d}"]}}}}"#
        ),
        t = t,
        d = Digest::of(b"layer")
    );
    assert_eq!(String::from_utf8(c.to_json()).unwrap(), expected);
}

#[test]
fn healthcheck_history_is_the_struct_with_field_names() {
    // BuildKit's TestDispatchHealthcheckHistory (Dockerfile 1.24 and later).
    let mut b = ConfigBuilder::new(ImageConfig::new("linux", "amd64"));
    b.healthcheck(&Healthcheck {
        test: strings(&["bin", "-c", "exit 0"]),
        interval_ns: 1_000_000_000,
        timeout_ns: 10_000_000_000,
        start_period_ns: 3_000_000_000,
        start_interval_ns: 100_000_000,
        retries: 5,
    });
    b.healthcheck(&Healthcheck {
        test: strings(&["NONE"]),
        ..Healthcheck::default()
    });
    assert_eq!(
        created_by(b),
        [
            "HEALTHCHECK {Test:[bin -c exit 0] Interval:1s Timeout:10s StartPeriod:3s StartInterval:100ms Retries:5}",
            "HEALTHCHECK {Test:[NONE] Interval:0s Timeout:0s StartPeriod:0s StartInterval:0s Retries:0}",
        ]
    );
}

#[test]
fn cmd_and_entrypoint_history_escape_what_go_does_not_print() {
    // `CMD %q`: Go's strconv.Quote escapes format characters, private use
    // and separators other than the ASCII space, not only control ones.
    let mut b = ConfigBuilder::new(ImageConfig::new("linux", "amd64"));
    b.cmd(
        &strings(&["caf\u{e9}", "nb\u{a0}sp", "zw\u{200b}", "\u{e000}\u{f0000}"]),
        false,
    );
    b.entrypoint(&strings(&["\u{85}\u{2028}\u{feff}\u{1f600}"]), false);
    assert_eq!(
        created_by(b),
        [
            r#"CMD ["café" "nb\u00a0sp" "zw\u200b" "\ue000\U000f0000"]"#,
            r#"ENTRYPOINT ["\u0085\u2028\ufeff😀"]"#,
        ]
    );
}

#[test]
fn created_is_now_without_an_epoch() {
    let mut b = ConfigBuilder::new(ImageConfig::new("linux", "amd64"));
    b.user("1000");
    let c = b.build(0);
    assert_eq!(c.created(), Some("1970-01-01T00:00:00Z"));
    assert!(c.history().unwrap()[0].created().is_none());
}

#[test]
fn history_times_follow_buildkits_exporter() {
    let times = |c: &ImageConfig| -> Vec<Option<String>> {
        c.as_json()["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e.get("created")
                    .and_then(|t| t.as_str())
                    .map(str::to_string)
            })
            .collect()
    };
    let day = |d: i64| Some(kiln_oci::config::rfc3339(d * 86_400));
    let mut base = ConfigBuilder::new(ImageConfig::new("linux", "amd64"));
    base.layer_time(86_400);
    base.add_layer(Digest::of(b"base"), "ADD rootfs /");
    base.layer_time(2 * 86_400);
    base.cmd(&strings(&["sh"]), true);
    let base = base.build(3 * 86_400);
    assert_eq!(times(&base), [day(1), day(1)], "CMD takes its layer's time");

    // ENV before any new layer takes the first new layer's time; later
    // entries without layers take the one before them.
    let mut b = ConfigBuilder::new(base.clone());
    b.env(&[("A", "1")]);
    b.layer_time(10 * 86_400);
    b.add_layer(Digest::of(b"run"), "RUN make");
    b.label(&[("a", "1")]);
    b.layer_time(11 * 86_400);
    b.workdir("/app", Some(Digest::of(b"wd")));
    b.cmd(&strings(&["app"]), false);
    let c = b.build(12 * 86_400);
    assert_eq!(
        times(&c),
        [day(1), day(1), day(10), day(10), day(10), day(11), day(11)]
    );
    // `created` is the last history entry's time, as BuildKit's exporter
    // sets it, not the time the build ended.
    assert_eq!(c.as_json()["created"], day(11).unwrap());

    // A build that makes no layer: the base's last time, for history and
    // `created` (it was the build's end, so an image of config-only steps
    // changed with every build).
    let mut b = ConfigBuilder::new(base);
    b.label(&[("a", "1")]);
    let c = b.build(12 * 86_400);
    assert_eq!(times(&c), [day(1), day(1), day(1)]);
    assert_eq!(c.as_json()["created"], day(1).unwrap());

    // Nothing has a time: nothing gets one.
    let mut b = ConfigBuilder::new(ImageConfig::new("linux", "amd64"));
    b.label(&[("a", "1")]);
    assert_eq!(times(&b.build(5)), [None]);
}
