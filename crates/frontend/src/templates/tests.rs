use super::*;
use crate::stages::{resolve, ResolveOptions};

/// A project directory holding `files` (name, content).
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    dir
}

fn detected(files: &[(&str, &str)]) -> (String, Hints) {
    let dir = project(files);
    let d = detect(dir.path()).unwrap().expect("a template");
    (d.template.name.to_string(), d.hints)
}

fn version(files: &[(&str, &str)]) -> (String, Option<String>) {
    let (name, hints) = detected(files);
    (name, hints.version)
}

fn v(name: &str, version: &str) -> (String, Option<String>) {
    (name.to_string(), Some(version.to_string()))
}

#[test]
fn node_versions_come_from_nvmrc_then_engines() {
    assert_eq!(version(&[("package.json", "{}")]), ("node".into(), None));
    assert_eq!(
        version(&[("package.json", r#"{"engines": {"node": ">=18.2 <21"}}"#)]),
        v("node", "18")
    );
    assert_eq!(
        version(&[
            ("package.json", r#"{"engines": {"node": "^22"}}"#),
            (".nvmrc", "v20.11.0\n")
        ]),
        v("node", "20")
    );
    // An alias is no version: engines decides.
    assert_eq!(
        version(&[
            ("package.json", r#"{"engines": {"node": "20.x"}}"#),
            (".nvmrc", "lts/hydrogen\n")
        ]),
        v("node", "20")
    );
    let (_, hints) = detected(&[(".nvmrc", "21"), ("package.json", "{}")]);
    assert_eq!(hints.version_source.as_deref(), Some(".nvmrc"));
}

#[test]
fn bun_and_deno_are_node_variants() {
    assert_eq!(
        version(&[("package.json", "{}"), ("bun.lockb", "")]),
        ("bun".into(), None)
    );
    assert_eq!(
        version(&[
            ("package.json", r#"{"packageManager": "bun@1.1.30"}"#),
            ("bunfig.toml", "")
        ]),
        v("bun", "1")
    );
    assert_eq!(
        version(&[("deno.json", "{}"), ("package.json", "{}")]),
        ("deno".into(), None)
    );
}

#[test]
fn rust_versions_come_from_the_toolchain_file() {
    let cargo = (
        "Cargo.toml",
        "[package]\nname = \"hello-srv\"\nversion = \"0.1.0\"\n",
    );
    let (name, hints) = detected(&[cargo]);
    assert_eq!((name.as_str(), hints.version), ("rust", None));
    assert_eq!(hints.app.as_deref(), Some("hello-srv"));
    assert_eq!(
        version(&[
            cargo,
            ("rust-toolchain.toml", "[toolchain]\nchannel = \"1.79.0\"\n")
        ]),
        v("rust", "1.79")
    );
    assert_eq!(
        version(&[cargo, ("rust-toolchain", "1.80\n")]),
        v("rust", "1.80")
    );
    assert_eq!(
        version(&[
            cargo,
            ("rust-toolchain.toml", "[toolchain]\nchannel = \"stable\"\n")
        ]),
        ("rust".into(), None)
    );
}

#[test]
fn python_versions_come_from_python_version_then_requires_python() {
    assert_eq!(
        version(&[("requirements.txt", "flask\n")]),
        ("python".into(), None)
    );
    let pyproject = (
        "pyproject.toml",
        "[project]\nname = \"my-api\"\nrequires-python = \">=3.11\"\n",
    );
    let (name, hints) = detected(&[pyproject]);
    assert_eq!(
        (name.as_str(), hints.version.as_deref()),
        ("python", Some("3.11"))
    );
    assert_eq!(hints.app.as_deref(), Some("my_api"));
    assert_eq!(
        version(&[pyproject, (".python-version", "3.13.1\n")]),
        v("python", "3.13")
    );
}

#[test]
fn go_versions_come_from_the_go_line() {
    assert_eq!(
        version(&[("go.mod", "module example.com/x\n\ngo 1.23.4\n")]),
        v("go", "1.23")
    );
    assert_eq!(
        version(&[("go.mod", "module example.com/x\n")]),
        ("go".into(), None)
    );
}

#[test]
fn windows_projects_are_dotnet_or_nanoserver() {
    let (name, hints) = detected(&[
        ("Web.csproj", "<Project/>"),
        ("global.json", r#"{"sdk": {"version": "9.0.100"}}"#),
    ]);
    assert_eq!(name, "dotnet");
    assert_eq!(hints.version.as_deref(), Some("9.0"));
    assert_eq!(hints.app.as_deref(), Some("Web"));
    assert_eq!(version(&[("All.sln", "")]), ("dotnet".into(), None));
    let (name, hints) = detected(&[("tool.exe", "MZ")]);
    assert_eq!(name, "nanoserver");
    assert_eq!(hints.app.as_deref(), Some("tool"));
}

#[test]
fn nothing_to_detect_is_none_and_broken_files_are_errors() {
    let dir = project(&[("README", "hi")]);
    assert_eq!(detect(dir.path()).unwrap(), None);
    let dir = project(&[("package.json", "{\n  \"engines\": ,\n}")]);
    let e = detect(dir.path()).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("package.json", 2));
    let dir = project(&[("Cargo.toml", "[package\n")]);
    let e = detect(dir.path()).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("Cargo.toml", 1));
    assert!(e.message.starts_with("invalid TOML"), "{}", e.message);
}

#[test]
fn version_hints_pick_the_base_image_tags() {
    let tags = |name: &str, version: Option<&str>| -> Vec<String> {
        find(name)
            .unwrap()
            .images
            .iter()
            .map(|i| i.image(version))
            .collect()
    };
    assert_eq!(tags("node", None), ["node:20-bookworm-slim"]);
    assert_eq!(tags("node", Some("22")), ["node:22-bookworm-slim"]);
    assert_eq!(tags("python", Some("3.11")), ["python:3.11-slim"]);
    assert_eq!(
        tags("rust", Some("1.80")),
        ["rust:1.80-slim", "debian:bookworm-slim"]
    );
    assert_eq!(
        tags("go", Some("1.23")),
        ["golang:1.23", "gcr.io/distroless/static-debian12:nonroot"]
    );
}

#[test]
fn every_template_is_a_multi_stage_build_with_a_non_root_user() {
    for template in all() {
        let dockerfile = template
            .dockerfile(&Hints::default())
            .unwrap_or_else(|e| panic!("{}: {e}", template.name));
        let ast = crate::parse("Dockerfile", dockerfile.as_bytes()).unwrap();
        assert!(
            ast.warnings.is_empty(),
            "{}: {:?}",
            template.name,
            ast.warnings
        );
        resolve(&ast, &ResolveOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}\n{dockerfile}", template.name));
        let last_user = dockerfile
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("USER "))
            .unwrap_or_else(|| panic!("{}: no USER", template.name));
        assert!(!["root", "0"].contains(&last_user), "{}", template.name);
        if template.name != "nanoserver" {
            assert_eq!(dockerfile.matches("\nFROM ").count(), 2, "{dockerfile}");
        }
        if !["deno", "nanoserver"].contains(&template.name) {
            assert!(
                dockerfile.contains("RUN --mount=type=cache,target="),
                "{}: no cache mount",
                template.name
            );
        }
    }
}

#[test]
fn runtime_in_a_zimagefile_is_the_template() {
    for template in all() {
        let yaml = format!("version: \"1\"\nruntime: {}\n", template.name);
        let converted = crate::zimagefile::convert("ZImagefile", yaml.as_bytes()).unwrap();
        assert_eq!(
            converted.dockerfile,
            template.dockerfile(&Hints::default()).unwrap()
        );
    }
}

#[test]
fn a_runtime_zimagefile_overrides_args_and_adds_steps_and_metadata() {
    let yaml = "version: \"1\"\nruntime: go\nargs:\n  GO_IMAGE: local/go:1\n  EXTRA: x\nsteps:\n  - copy: config.toml\n    to: /etc/app/\ncmd: [--serve]\n";
    let converted = crate::zimagefile::convert("ZImagefile", yaml.as_bytes()).unwrap();
    let text = &converted.dockerfile;
    assert!(
        text.starts_with("ARG GO_IMAGE=local/go:1\nARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot\nARG EXTRA=x\n"),
        "{text}"
    );
    assert!(
        text.ends_with("COPY [\"config.toml\", \"/etc/app/\"]\nUSER 65532:65532\nENTRYPOINT [\"/app\"]\nCMD [\"--serve\"]\n"),
        "{text}"
    );
    // A single-valued key replaces the template's; env adds to it.
    let yaml = "version: \"1\"\nruntime: node\ncmd: [node, server.js]\nuser: \"1000\"\nenv: {PORT: \"8080\"}\n";
    let text = crate::zimagefile::convert("ZImagefile", yaml.as_bytes())
        .unwrap()
        .dockerfile;
    assert!(
        text.ends_with(
            "ENV NODE_ENV=production\nENV PORT=8080\nUSER 1000\nCMD [\"node\", \"server.js\"]\n"
        ),
        "{text}"
    );
    // An error in the expansion points at the `runtime:` line.
    let yaml = "version: \"1\"\nruntime: go\nplatform: linux/amd64\n";
    assert!(crate::zimagefile::convert("ZImagefile", yaml.as_bytes()).is_ok());
    let e = crate::zimagefile::convert(
        "Z",
        b"version: \"1\"\nruntime: dotnet\nplatform: linux/amd64\n",
    )
    .unwrap_err();
    assert_eq!(e.line, 3, "{e}");
}

#[test]
fn program_names_fill_the_template() {
    let hints = Hints {
        app: Some("hello-srv".into()),
        ..Hints::default()
    };
    let dockerfile = find("rust").unwrap().dockerfile(&hints).unwrap();
    assert!(dockerfile.contains("CMD [\"hello-srv\"]"), "{dockerfile}");
    let odd = project(&[("Cargo.toml", "[package]\nname = \"a b\"\n")]);
    let d = detect(odd.path()).unwrap().unwrap();
    assert_eq!(d.hints.app, None);
}
