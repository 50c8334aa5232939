//! The YAML document as a small tree of strings, sequences and mappings,
//! each node with the line and column it starts at.
//!
//! Scalars stay text: a ZImagefile's values end up in Dockerfile text, and
//! YAML's number and boolean readings would change them (`1.10` is not the
//! float 1.1 in `env: {VERSION: 1.10}`). Only `null` (`~`, empty) is told
//! apart, because "no value" and "empty text" mean different things for
//! `args`.

use crate::{Error, ErrorKind};
use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

/// A position in the YAML source: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A YAML node and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// What a node holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Text(String),
    Seq(Vec<Node>),
    /// Keys in document order, each with its own position.
    Map(Vec<(String, Pos, Node)>),
}

impl Node {
    /// The YAML type in words, for "expected a mapping, found a list".
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing (null)",
            Value::Text(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Reads the one document of a ZImagefile. `lines` are the source lines,
/// used to show the offending line of an error.
pub(crate) fn load(file: &str, text: &str, lines: &[String]) -> Result<Node, Error> {
    load_as(
        "ZImagefile",
        "start with `version: \"1\"` and a `base:` image",
        file,
        text,
        lines,
    )
}

/// Reads the one document of a YAML file of kind `what` (`ZImagefile`,
/// `pipeline`); `empty_help` is the help for an empty file.
pub(crate) fn load_as(
    what: &str,
    empty_help: &str,
    file: &str,
    text: &str,
    lines: &[String],
) -> Result<Node, Error> {
    let docs = MarkedYaml::load_from_str(text).map_err(|e| {
        let mark = e.marker();
        located(
            file,
            lines,
            ErrorKind::Syntax,
            format!("invalid YAML: {}", e.info()),
            Pos {
                line: mark.line(),
                col: mark.col() + 1,
            },
        )
    })?;
    let chars: Vec<char> = text.chars().collect();
    match docs.as_slice() {
        [doc] => convert(doc, &chars)
            .map_err(|(message, pos)| located(file, lines, ErrorKind::Syntax, message, pos)),
        [] => Err(located(
            file,
            lines,
            ErrorKind::Syntax,
            format!("empty {what}"),
            Pos::default(),
        )
        .with_help(empty_help)),
        [_, second, ..] => Err(located(
            file,
            lines,
            ErrorKind::Syntax,
            format!("a {what} holds one YAML document, this is a second one"),
            pos_of(second),
        )),
    }
}

/// An error at `pos` of `file`, with the source line when the line is known.
pub(crate) fn located(
    file: &str,
    lines: &[String],
    kind: ErrorKind,
    message: String,
    pos: Pos,
) -> Error {
    let mut err = Error::new(kind, message)
        .in_file(file)
        .at(pos.line, pos.col);
    if let Some(text) = pos.line.checked_sub(1).and_then(|i| lines.get(i)) {
        err = err.with_source_line(text.clone());
    }
    err
}

fn pos_of(node: &MarkedYaml) -> Pos {
    Pos {
        line: node.span.start.line(),
        col: node.span.start.col() + 1,
    }
}

fn convert(node: &MarkedYaml, chars: &[char]) -> Result<Node, (String, Pos)> {
    let pos = pos_of(node);
    let value = match &node.data {
        YamlData::Value(Scalar::Null) => Value::Null,
        YamlData::Value(Scalar::String(s)) => Value::Text(s.to_string()),
        // Numbers and booleans keep the text as written.
        YamlData::Value(_) => {
            let (start, end) = (node.span.start.index(), node.span.end.index());
            let text: String = chars.get(start..end).unwrap_or_default().iter().collect();
            Value::Text(text.trim().to_string())
        }
        YamlData::Representation(text, _, _) => Value::Text(text.to_string()),
        YamlData::Sequence(items) => Value::Seq(
            items
                .iter()
                .map(|item| convert(item, chars))
                .collect::<Result<_, _>>()?,
        ),
        YamlData::Mapping(map) => {
            let mut entries: Vec<(String, Pos, Node)> = Vec::with_capacity(map.len());
            for (key, value) in map.iter() {
                let key_node = convert(key, chars)?;
                let Value::Text(name) = key_node.value else {
                    return Err((
                        format!("a key must be a string, found {}", key_node.kind()),
                        key_node.pos,
                    ));
                };
                // The loader compares keys by YAML value, so `1` and `'1'`
                // both get through; here both are the text "1".
                if entries.iter().any(|(k, _, _)| *k == name) {
                    return Err((format!("duplicated key {name:?}"), key_node.pos));
                }
                entries.push((name, key_node.pos, convert(value, chars)?));
            }
            Value::Map(entries)
        }
        YamlData::Tagged(tag, _) => {
            return Err((format!("YAML tag {tag} is not used in a ZImagefile"), pos));
        }
        YamlData::Alias(_) | YamlData::BadValue => {
            return Err(("this value cannot be read".to_string(), pos));
        }
    };
    Ok(Node { value, pos })
}
