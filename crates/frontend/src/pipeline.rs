//! ZPipeline files: several images, each built from its own Dockerfile or
//! ZImagefile, in the order their `depends_on` gives, so one image can be
//! the base of another. The file is read here (checked, variables
//! expanded, dependencies ordered); building is the CLI's `kiln pipeline`.
//!
//! ```
//! let yaml = b"vars: {TAG: dev}\nimages:\n  base: {context: base, tags: [\"base:${TAG}\"]}\n  app: {context: app, depends_on: [base]}\n";
//! let pipeline = kiln_frontend::pipeline::parse("ZPipeline.yaml", yaml, &Default::default()).unwrap();
//! assert_eq!(pipeline.images[0].tags, ["base:dev"]);
//! let waves = pipeline.waves(&pipeline.select(&[]).unwrap());
//! assert_eq!(waves, [vec![0], vec![1]]);
//! ```
//!
//! The format is described in `docs/pipelines.md`. Every error names the
//! file, line and column, with the line and a caret under the spot.

use crate::instructions::closest;
use crate::zimagefile::yaml::{load_as, located, Node, Pos, Value};
use crate::{Error, ErrorKind};
use std::collections::BTreeMap;

const TOP_KEYS: [&str; 4] = ["version", "vars", "defaults", "images"];
const DEFAULT_KEYS: [&str; 4] = ["file", "context", "build_args", "platforms"];
const IMAGE_KEYS: [&str; 6] = [
    "file",
    "context",
    "tags",
    "build_args",
    "depends_on",
    "platforms",
];

/// A pipeline file, read and checked: its images in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    /// The images, in the order of the file.
    pub images: Vec<Image>,
}

/// One image of a pipeline, with `defaults` applied and variables expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Its key under `images:`.
    pub name: String,
    /// The Dockerfile or ZImagefile, relative to the pipeline file's
    /// directory; `None` finds it in the context as `kiln build` does.
    pub file: Option<String>,
    /// The build context, relative to the pipeline file's directory
    /// (default `.`).
    pub context: String,
    /// Names for the image.
    pub tags: Vec<String>,
    /// Build arguments (the defaults', then the image's own).
    pub build_args: BTreeMap<String, String>,
    /// Images of the pipeline built before this one, by index.
    pub depends_on: Vec<usize>,
    /// Target platforms; empty for this host's.
    pub platforms: Vec<String>,
}

/// Reads the pipeline `source`, named `file` in errors. `set` overrides
/// (or adds to) its `vars`. Unknown keys, unknown variables, unknown
/// dependencies and dependency cycles are errors.
pub fn parse(file: &str, source: &[u8], set: &BTreeMap<String, String>) -> Result<Pipeline, Error> {
    let text = std::str::from_utf8(source).map_err(|e| {
        Error::new(
            ErrorKind::Syntax,
            format!(
                "a pipeline file must be UTF-8: invalid byte at offset {}",
                e.valid_up_to()
            ),
        )
        .in_file(file)
    })?;
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    let root = load_as(
        "pipeline file",
        "list the images under `images:`",
        file,
        text,
        &lines,
    )?;
    let reader = Reader {
        file,
        lines: &lines,
        vars: BTreeMap::new(),
    };
    reader.pipeline(&root, set)
}

struct Reader<'a> {
    file: &'a str,
    lines: &'a [String],
    vars: BTreeMap<String, String>,
}

type Entries<'n> = &'n [(String, Pos, Node)];

/// What the `defaults:` mapping gives every image.
#[derive(Default)]
struct Defaults {
    file: Option<String>,
    context: Option<String>,
    build_args: BTreeMap<String, String>,
    platforms: Vec<String>,
}

impl Reader<'_> {
    fn error(&self, pos: Pos, message: impl Into<String>) -> Error {
        located(
            self.file,
            self.lines,
            ErrorKind::Semantic,
            message.into(),
            pos,
        )
    }

    fn pipeline(mut self, root: &Node, set: &BTreeMap<String, String>) -> Result<Pipeline, Error> {
        let entries = self.map(root, "the pipeline file")?;
        self.known_keys(entries, &TOP_KEYS, "at the top level")?;
        if let Some((_, node)) = get(entries, "version") {
            let version = self.raw(node, "version")?;
            if version != "1" {
                return Err(self
                    .error(node.pos, format!("unsupported version {version:?}"))
                    .with_help("this kiln reads version \"1\""));
            }
        }
        if let Some((_, node)) = get(entries, "vars") {
            for (name, _, value) in self.map(node, "vars")? {
                let value = self.raw(value, &format!("vars.{name}"))?;
                self.vars.insert(name.clone(), value);
            }
        }
        self.vars
            .extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        let defaults = match get(entries, "defaults") {
            Some((_, node)) => self.defaults(node)?,
            None => Defaults::default(),
        };
        let Some((_, images)) = get(entries, "images") else {
            return Err(self
                .error(root.pos, "missing `images`")
                .with_help("list the images to build under `images:`"));
        };
        let list = self.map(images, "images")?;
        if list.is_empty() {
            return Err(self.error(images.pos, "`images` is empty"));
        }
        let names: Vec<&str> = list.iter().map(|(n, _, _)| n.as_str()).collect();
        let mut out = Vec::new();
        let mut dependency_pos = Vec::new();
        for (name, name_pos, node) in list {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                return Err(self.error(
                    *name_pos,
                    format!("image name {name:?}: use letters, digits, `_`, `-` and `.`"),
                ));
            }
            let (image, positions) = self.image(name, node, &names, &defaults)?;
            out.push(image);
            dependency_pos.push(positions);
        }
        let pipeline = Pipeline { images: out };
        if let Some(cycle) = pipeline.cycle() {
            let first = cycle[0];
            let next = cycle.get(1).copied().unwrap_or(first);
            let at = pipeline.images[first]
                .depends_on
                .iter()
                .position(|d| *d == next)
                .map_or(Pos::default(), |i| dependency_pos[first][i]);
            let mut path: Vec<&str> = cycle
                .iter()
                .map(|i| pipeline.images[*i].name.as_str())
                .collect();
            path.push(&pipeline.images[first].name);
            return Err(self.error(
                at,
                format!(
                    "images depend on each other in a cycle: {}",
                    path.join(" → ")
                ),
            ));
        }
        Ok(pipeline)
    }

    fn defaults(&self, node: &Node) -> Result<Defaults, Error> {
        let entries = self.map(node, "defaults")?;
        self.known_keys(entries, &DEFAULT_KEYS, "in defaults")?;
        Ok(Defaults {
            file: get(entries, "file")
                .map(|(_, n)| self.text(n, "defaults.file"))
                .transpose()?,
            context: get(entries, "context")
                .map(|(_, n)| self.text(n, "defaults.context"))
                .transpose()?,
            build_args: match get(entries, "build_args") {
                Some((_, n)) => self.pairs(n, "defaults.build_args")?,
                None => BTreeMap::new(),
            },
            platforms: match get(entries, "platforms") {
                Some((_, n)) => self.list(n, "defaults.platforms")?.0,
                None => Vec::new(),
            },
        })
    }

    /// One image, and the position of each of its dependencies.
    fn image(
        &self,
        name: &str,
        node: &Node,
        names: &[&str],
        defaults: &Defaults,
    ) -> Result<(Image, Vec<Pos>), Error> {
        let what = format!("images.{name}");
        let empty: Entries = &[];
        let entries = match &node.value {
            Value::Null => empty,
            _ => self.map(node, &what)?,
        };
        self.known_keys(entries, &IMAGE_KEYS, &format!("in image {name:?}"))?;
        let field = |key: &str| get(entries, key).map(|(_, n)| (n, format!("{what}.{key}")));
        let file = match field("file") {
            Some((n, w)) => Some(self.text(n, &w)?),
            None => defaults.file.clone(),
        };
        let context = match field("context") {
            Some((n, w)) => self.text(n, &w)?,
            None => defaults.context.clone().unwrap_or_else(|| ".".to_string()),
        };
        let tags = match field("tags") {
            Some((n, w)) => self.list(n, &w)?.0,
            None => Vec::new(),
        };
        let mut build_args = defaults.build_args.clone();
        if let Some((n, w)) = field("build_args") {
            build_args.extend(self.pairs(n, &w)?);
        }
        let platforms = match field("platforms") {
            Some((n, w)) => self.list(n, &w)?.0,
            None => defaults.platforms.clone(),
        };
        let mut depends_on = Vec::new();
        let mut positions = Vec::new();
        if let Some((n, w)) = field("depends_on") {
            let (deps, pos) = self.list(n, &w)?;
            for (dep, pos) in deps.iter().zip(pos) {
                let Some(index) = names.iter().position(|n| n == dep) else {
                    let mut err = self.error(
                        pos,
                        format!("image {name:?} depends on {dep:?}, which is not an image of this pipeline"),
                    );
                    if let Some(near) = closest(dep, names, true) {
                        err = err.with_help(format!("did you mean `{near}`?"));
                    }
                    return Err(err);
                };
                if dep == name {
                    return Err(self.error(pos, format!("image {name:?} depends on itself")));
                }
                if !depends_on.contains(&index) {
                    depends_on.push(index);
                    positions.push(pos);
                }
            }
        }
        let image = Image {
            name: name.to_string(),
            file,
            context,
            tags,
            build_args,
            depends_on,
            platforms,
        };
        Ok((image, positions))
    }

    fn map<'n>(&self, node: &'n Node, what: &str) -> Result<Entries<'n>, Error> {
        match &node.value {
            Value::Map(entries) => Ok(entries),
            _ => Err(self.error(
                node.pos,
                format!("`{what}` must be a mapping, found {}", node.kind()),
            )),
        }
    }

    /// A string as written, without variable expansion.
    fn raw(&self, node: &Node, what: &str) -> Result<String, Error> {
        match &node.value {
            Value::Text(t) => Ok(t.clone()),
            _ => Err(self.error(
                node.pos,
                format!("`{what}` must be a string, found {}", node.kind()),
            )),
        }
    }

    /// A string with its `${VAR}`s expanded.
    fn text(&self, node: &Node, what: &str) -> Result<String, Error> {
        let raw = self.raw(node, what)?;
        self.expand(&raw).map_err(|(offset, message)| {
            let mut pos = node.pos;
            // A plain scalar starts where its text does; a quoted one
            // after its quote.
            let quoted = self
                .lines
                .get(pos.line.wrapping_sub(1))
                .and_then(|l| l.chars().nth(pos.col - 1))
                .is_some_and(|c| c == '"' || c == '\'');
            if !raw.contains('\n') {
                pos.col += offset + usize::from(quoted);
            }
            let mut err = self.error(pos, message);
            let known: Vec<&str> = self.vars.keys().map(String::as_str).collect();
            err = err.with_help(if known.is_empty() {
                "define it under `vars:` or pass --set NAME=VALUE".to_string()
            } else {
                format!(
                    "the vars are {}; add it under `vars:` or pass --set NAME=VALUE",
                    known.join(", ")
                )
            });
            err
        })
    }

    /// Expands `${NAME}`; `$$` is a literal `$`, and a `$` before anything
    /// else stays as it is (build arguments may hold `$HOME`). On an
    /// unknown or unclosed variable, its character offset and a message.
    fn expand(&self, raw: &str) -> Result<String, (usize, String)> {
        let chars: Vec<char> = raw.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        while i < chars.len() {
            match (chars[i], chars.get(i + 1)) {
                ('$', Some('$')) => {
                    out.push('$');
                    i += 2;
                }
                ('$', Some('{')) => {
                    let Some(len) = chars[i + 2..].iter().position(|c| *c == '}') else {
                        return Err((i, "`${` without its `}`".to_string()));
                    };
                    let name: String = chars[i + 2..i + 2 + len].iter().collect();
                    match self.vars.get(&name) {
                        Some(value) => out.push_str(value),
                        None => return Err((i, format!("unknown variable ${{{name}}}"))),
                    }
                    i += len + 3;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        Ok(out)
    }

    /// A list of strings (or one string), expanded, with their positions.
    fn list(&self, node: &Node, what: &str) -> Result<(Vec<String>, Vec<Pos>), Error> {
        match &node.value {
            Value::Seq(items) => {
                let mut values = Vec::new();
                for item in items {
                    values.push(self.text(item, what)?);
                }
                Ok((values, items.iter().map(|i| i.pos).collect()))
            }
            Value::Text(_) => Ok((vec![self.text(node, what)?], vec![node.pos])),
            _ => Err(self.error(
                node.pos,
                format!("`{what}` must be a list of strings, found {}", node.kind()),
            )),
        }
    }

    /// A mapping of strings, values expanded.
    fn pairs(&self, node: &Node, what: &str) -> Result<BTreeMap<String, String>, Error> {
        let mut out = BTreeMap::new();
        for (key, _, value) in self.map(node, what)? {
            let value = match &value.value {
                Value::Null => String::new(),
                _ => self.text(value, &format!("{what}.{key}"))?,
            };
            out.insert(key.clone(), value);
        }
        Ok(out)
    }

    fn known_keys(&self, entries: Entries, allowed: &[&str], place: &str) -> Result<(), Error> {
        for (key, pos, _) in entries {
            if !allowed.contains(&key.as_str()) {
                let mut err = self.error(*pos, format!("unknown key `{key}` {place}"));
                if let Some(near) = closest(key, allowed, true) {
                    err = err.with_help(format!("did you mean `{near}`?"));
                }
                return Err(err);
            }
        }
        Ok(())
    }
}

fn get<'n>(entries: Entries<'n>, key: &str) -> Option<(Pos, &'n Node)> {
    entries
        .iter()
        .find(|(k, _, _)| k == key)
        .map(|(_, pos, node)| (*pos, node))
}

impl Pipeline {
    /// The images to build for `--only names` (all of them when `names` is
    /// empty): those named and every image they depend on, by index.
    pub fn select(&self, names: &[String]) -> Result<Vec<usize>, Error> {
        if names.is_empty() {
            return Ok((0..self.images.len()).collect());
        }
        let mut chosen = vec![false; self.images.len()];
        let mut stack = Vec::new();
        for name in names {
            let Some(i) = self.images.iter().position(|img| img.name == *name) else {
                let all: Vec<&str> = self.images.iter().map(|i| i.name.as_str()).collect();
                return Err(Error::new(
                    ErrorKind::Semantic,
                    format!("--only {name}: no such image in the pipeline"),
                )
                .with_help(format!("the images are {}", all.join(", "))));
            };
            stack.push(i);
        }
        while let Some(i) = stack.pop() {
            if !chosen[i] {
                chosen[i] = true;
                stack.extend(&self.images[i].depends_on);
            }
        }
        Ok((0..self.images.len()).filter(|i| chosen[*i]).collect())
    }

    /// The images of `selected` in waves: each wave's images depend only on
    /// images of earlier waves, so a wave's images can build at once. An
    /// image is in the first wave after all of its dependencies.
    pub fn waves(&self, selected: &[usize]) -> Vec<Vec<usize>> {
        let mut level: BTreeMap<usize, usize> = BTreeMap::new();
        // Dependencies form no cycle (parse checked), so this ends.
        while level.len() < selected.len() {
            for &i in selected {
                if level.contains_key(&i) {
                    continue;
                }
                let deps = &self.images[i].depends_on;
                if deps.iter().all(|d| level.contains_key(d)) {
                    let l = deps.iter().map(|d| level[d] + 1).max().unwrap_or(0);
                    level.insert(i, l);
                }
            }
        }
        let mut waves: Vec<Vec<usize>> = Vec::new();
        for (i, l) in level {
            if waves.len() <= l {
                waves.resize(l + 1, Vec::new());
            }
            waves[l].push(i);
        }
        waves
    }

    /// A dependency cycle, as the images in it in order, if there is one.
    fn cycle(&self) -> Option<Vec<usize>> {
        // Depth-first search: 0 unvisited, 1 on the path, 2 done.
        fn visit(
            p: &Pipeline,
            i: usize,
            state: &mut [u8],
            path: &mut Vec<usize>,
        ) -> Option<Vec<usize>> {
            state[i] = 1;
            path.push(i);
            for &d in &p.images[i].depends_on {
                if state[d] == 1 {
                    let start = path.iter().position(|x| *x == d).unwrap_or(0);
                    return Some(path[start..].to_vec());
                }
                if state[d] == 0 {
                    if let Some(c) = visit(p, d, state, path) {
                        return Some(c);
                    }
                }
            }
            path.pop();
            state[i] = 2;
            None
        }
        let mut state = vec![0u8; self.images.len()];
        for i in 0..self.images.len() {
            if state[i] == 0 {
                if let Some(c) = visit(self, i, &mut state, &mut Vec::new()) {
                    return Some(c);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
