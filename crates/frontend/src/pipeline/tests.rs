use super::*;

fn read(yaml: &str) -> Pipeline {
    parse("ZPipeline.yaml", yaml.as_bytes(), &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"))
}

fn error(yaml: &str) -> Error {
    parse("ZPipeline.yaml", yaml.as_bytes(), &BTreeMap::new()).unwrap_err()
}

/// `line:col: message`.
fn where_what(yaml: &str) -> String {
    let e = error(yaml);
    format!("{}:{}: {}", e.line, e.column, e.message)
}

fn names(p: &Pipeline, waves: Vec<Vec<usize>>) -> Vec<Vec<&str>> {
    waves
        .into_iter()
        .map(|w| w.into_iter().map(|i| p.images[i].name.as_str()).collect())
        .collect()
}

const DIAMOND: &str = "images:
  app:
    depends_on: [lib, tools]
  base: {}
  lib:
    depends_on: base
  tools:
    depends_on: [base]
  docs:
";

#[test]
fn images_build_in_dependency_waves() {
    let p = read(DIAMOND);
    let all = p.select(&[]).unwrap();
    assert_eq!(
        names(&p, p.waves(&all)),
        [vec!["base", "docs"], vec!["lib", "tools"], vec!["app"]]
    );
}

#[test]
fn only_takes_the_dependencies_along() {
    let p = read(DIAMOND);
    let lib = p.select(&["lib".to_string()]).unwrap();
    assert_eq!(names(&p, p.waves(&lib)), [vec!["base"], vec!["lib"]]);
    let e = p.select(&["lbi".to_string()]).unwrap_err();
    assert_eq!(e.message, "--only lbi: no such image in the pipeline");
}

#[test]
fn defaults_and_vars_fill_the_images_and_set_overrides() {
    let yaml = "vars:
  REG: localhost:5000
  TAG: dev
defaults:
  context: ctx
  build_args: {A: '1', B: '2'}
  platforms: [linux/amd64]
images:
  base:
    tags: ['${REG}/base:${TAG}', 'cost-$$5']
    build_args: {B: three, HOME_DIR: $HOME}
  app:
    context: app
    file: app/ZImagefile
    platforms: linux/arm64
";
    let p = read(yaml);
    let base = &p.images[0];
    assert_eq!(base.tags, ["localhost:5000/base:dev", "cost-$5"]);
    assert_eq!(base.context, "ctx");
    assert_eq!(base.file, None);
    assert_eq!(base.platforms, ["linux/amd64"]);
    let args: Vec<(&str, &str)> = base
        .build_args
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(args, [("A", "1"), ("B", "three"), ("HOME_DIR", "$HOME")]);
    let app = &p.images[1];
    assert_eq!(
        (app.context.as_str(), app.file.as_deref()),
        ("app", Some("app/ZImagefile"))
    );
    assert_eq!(app.platforms, ["linux/arm64"]);
    let set: BTreeMap<String, String> = [("TAG".to_string(), "v2".to_string())].into();
    let p = parse("ZPipeline.yaml", yaml.as_bytes(), &set).unwrap();
    assert_eq!(p.images[0].tags[0], "localhost:5000/base:v2");
}

#[test]
fn unknown_variables_point_at_the_variable() {
    let e = error("vars: {A: x}\nimages:\n  a:\n    tags: [\"a:${B}\"]\n");
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (4, 15, "unknown variable ${B}")
    );
    assert_eq!(
        e.help.as_deref(),
        Some("the vars are A; add it under `vars:` or pass --set NAME=VALUE")
    );
    let shown = e.to_string();
    assert!(
        shown.ends_with("4 |     tags: [\"a:${B}\"]\n   |               ^\n  help: the vars are A; add it under `vars:` or pass --set NAME=VALUE"),
        "{shown}"
    );
}

#[test]
fn unknown_dependencies_and_cycles_are_errors_naming_the_images() {
    assert_eq!(
        where_what("images:\n  a:\n    depends_on: [b]\n"),
        "3:18: image \"a\" depends on \"b\", which is not an image of this pipeline"
    );
    assert_eq!(
        where_what("images:\n  a: {depends_on: [a]}\n"),
        "2:20: image \"a\" depends on itself"
    );
    let e = error(
        "images:\n  a:\n    depends_on: [c]\n  b:\n    depends_on: [a]\n  c:\n    depends_on: [b]\n  d: {}\n",
    );
    assert_eq!(
        format!("{}:{}: {}", e.line, e.column, e.message),
        "3:18: images depend on each other in a cycle: a → c → b → a"
    );
    assert_eq!(e.file, "ZPipeline.yaml");
}

#[test]
fn the_file_is_checked_key_by_key() {
    assert_eq!(
        where_what("images:\n  a: {tag: [x]}\n"),
        "2:7: unknown key `tag` in image \"a\""
    );
    assert_eq!(
        error("images:\n  a: {tag: [x]}\n").help.as_deref(),
        Some("did you mean `tags`?")
    );
    assert_eq!(
        where_what("image:\n  a: {}\n"),
        "1:1: unknown key `image` at the top level"
    );
    assert_eq!(where_what("vars: {}\n"), "1:1: missing `images`");
    assert_eq!(where_what("images: {}\n"), "1:9: `images` is empty");
    assert_eq!(
        where_what("images:\n  a b: {}\n"),
        "2:3: image name \"a b\": use letters, digits, `_`, `-` and `.`"
    );
    assert_eq!(
        where_what("images:\n  a: {tags: {x: y}}\n"),
        "2:13: `images.a.tags` must be a list of strings, found a mapping"
    );
    assert_eq!(
        where_what("images:\n  a: {}\n  a: {}\n"),
        "3:3: invalid YAML: duplicated key in mapping"
    );
    assert_eq!(where_what(""), "0:0: empty pipeline file");
}
