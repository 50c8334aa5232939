//! The part of Go's text/template that `docker inspect --format` users
//! type, over JSON values: `{{.Field.Sub}}`, `{{.}}`, `{{json .X}}`,
//! `{{join .X ","}}`, `{{index .X "key"}}`, `{{range .X}}…{{end}}` and
//! `{{if .X}}…{{else}}…{{end}}`. Values print as Go prints docker's:
//! lists as `[a b]`, maps as `map[k:v]` with sorted keys.

use serde_json::Value;

/// A parsed template.
#[derive(Debug)]
pub struct Template(Vec<Node>);

#[derive(Debug)]
enum Node {
    Text(String),
    Print(Expr),
    Range(Expr, Vec<Node>),
    If(Expr, Vec<Node>, Vec<Node>),
}

#[derive(Debug)]
enum Expr {
    /// `.A.B` (empty: `.`).
    Path(Vec<String>),
    /// A quoted string.
    Literal(String),
    /// `json ARG`, `join ARG SEP`, `index ARG KEY…`.
    Call(String, Vec<Expr>),
}

impl Template {
    /// Parses `text`, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut tokens = Vec::new();
        let mut rest = text;
        // `{{- ` and ` -}}` trim the white space before and after them.
        let mut trim_next = false;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("template {text:?}: unclosed {{{{"))?;
            let mut action = &after[..end];
            let mut before = &rest[..start];
            if trim_next {
                before = before.trim_start();
            }
            if let Some(a) = action.strip_prefix("- ") {
                before = before.trim_end();
                action = a;
            }
            trim_next = false;
            if let Some(a) = action.strip_suffix(" -") {
                trim_next = true;
                action = a;
            }
            tokens.push(Token::Text(before.to_string()));
            tokens.push(Token::Action(action.trim().to_string()));
            rest = &after[end + 2..];
        }
        tokens.push(Token::Text(
            if trim_next { rest.trim_start() } else { rest }.to_string(),
        ));
        let mut iter = tokens.into_iter();
        let (nodes, end) = parse_nodes(&mut iter)?;
        match end {
            None => Ok(Template(nodes)),
            Some(word) => Err(format!("template {text:?}: {{{{{word}}}}} without a block")),
        }
    }

    /// The template applied to `data`.
    pub fn render(&self, data: &Value) -> Result<String, String> {
        let mut out = String::new();
        render(&self.0, data, &mut out)?;
        Ok(out)
    }
}

enum Token {
    Text(String),
    Action(String),
}

/// Nodes up to an `{{end}}` or `{{else}}` (returned), or the end.
fn parse_nodes(
    tokens: &mut impl Iterator<Item = Token>,
) -> Result<(Vec<Node>, Option<String>), String> {
    let mut nodes = Vec::new();
    while let Some(token) = tokens.next() {
        let action = match token {
            Token::Text(t) => {
                if !t.is_empty() {
                    nodes.push(Node::Text(t));
                }
                continue;
            }
            Token::Action(a) => a,
        };
        let words = split_words(&action)?;
        match words.first().map(String::as_str) {
            Some("end") | Some("else") => return Ok((nodes, Some(words[0].clone()))),
            Some("range") => {
                let expr = parse_expr(&words[1..])?;
                let (body, end) = parse_nodes(tokens)?;
                if end.as_deref() != Some("end") {
                    return Err("{{range}} needs an {{end}}".into());
                }
                nodes.push(Node::Range(expr, body));
            }
            Some("if") => {
                let expr = parse_expr(&words[1..])?;
                let (then, end) = parse_nodes(tokens)?;
                let otherwise = match end.as_deref() {
                    Some("end") => Vec::new(),
                    Some("else") => match parse_nodes(tokens)? {
                        (nodes, Some(end)) if end == "end" => nodes,
                        _ => return Err("{{else}} needs an {{end}}".into()),
                    },
                    _ => return Err("{{if}} needs an {{end}}".into()),
                };
                nodes.push(Node::If(expr, then, otherwise));
            }
            Some(_) => nodes.push(Node::Print(parse_expr(&words)?)),
            None => return Err("empty {{}} in the template".into()),
        }
    }
    Ok((nodes, None))
}

/// Words of an action, a quoted string (Go's escapes `\"` and `\\`) being
/// one.
fn split_words(action: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = action.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut word = String::from("\"");
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('n') => word.push('\n'),
                        Some('t') => word.push('\t'),
                        Some(other) => word.push(other),
                        None => return Err(format!("unterminated string in {{{{{action}}}}}")),
                    },
                    Some(other) => word.push(other),
                    None => return Err(format!("unterminated string in {{{{{action}}}}}")),
                }
            }
            words.push(word);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
            words.push(word);
        }
    }
    Ok(words)
}

fn parse_expr(words: &[String]) -> Result<Expr, String> {
    let arg = |w: &String| -> Result<Expr, String> {
        if let Some(s) = w.strip_prefix('"') {
            Ok(Expr::Literal(s.to_string()))
        } else if w == "." {
            Ok(Expr::Path(Vec::new()))
        } else if let Some(path) = w.strip_prefix('.') {
            Ok(Expr::Path(path.split('.').map(str::to_string).collect()))
        } else {
            Err(format!(
                "{w:?} in a template: kiln knows .Field, \"text\", json, join and index"
            ))
        }
    };
    match words {
        [] => Err("a template action with nothing in it".into()),
        [one] => arg(one),
        [func, args @ ..] => {
            let (min, max) = match func.as_str() {
                "json" => (1, 1),
                "join" => (2, 2),
                "index" => (2, usize::MAX),
                other => {
                    return Err(format!(
                        "template function {other:?}: kiln knows json, join and index"
                    ))
                }
            };
            if args.len() < min || args.len() > max {
                return Err(format!(
                    "template function {func}: wrong number of arguments"
                ));
            }
            Ok(Expr::Call(
                func.clone(),
                args.iter().map(arg).collect::<Result<_, _>>()?,
            ))
        }
    }
}

/// What an expression gives: `None` for a field that is not there (Go's
/// `<no value>`).
fn eval(expr: &Expr, dot: &Value) -> Result<Option<Value>, String> {
    match expr {
        Expr::Literal(s) => Ok(Some(Value::String(s.clone()))),
        Expr::Path(path) => {
            let mut v = dot;
            for field in path {
                match v.get(field) {
                    Some(next) => v = next,
                    None => return Ok(None),
                }
            }
            Ok(Some(v.clone()))
        }
        Expr::Call(func, args) => {
            let values: Vec<Value> = args
                .iter()
                .map(|a| eval(a, dot).map(|v| v.unwrap_or(Value::Null)))
                .collect::<Result<_, _>>()?;
            match func.as_str() {
                "json" => Ok(Some(Value::String(
                    serde_json::to_string(&values[0]).map_err(|e| e.to_string())?,
                ))),
                "join" => {
                    let sep = values[1].as_str().unwrap_or_default();
                    let items: Vec<String> = match &values[0] {
                        Value::Array(items) => items.iter().map(go_string).collect(),
                        Value::Null => Vec::new(),
                        other => return Err(format!("join of {other}: not a list")),
                    };
                    Ok(Some(Value::String(items.join(sep))))
                }
                _ => {
                    let mut v = values[0].clone();
                    for key in &values[1..] {
                        v = match (&v, key) {
                            (Value::Object(map), Value::String(k)) => {
                                map.get(k).cloned().unwrap_or(Value::Null)
                            }
                            (Value::Array(items), Value::Number(n)) => n
                                .as_u64()
                                .and_then(|i| items.get(i as usize))
                                .cloned()
                                .ok_or_else(|| format!("index {n} out of range"))?,
                            _ => return Err(format!("cannot index {v} with {key}")),
                        };
                    }
                    Ok(Some(v))
                }
            }
        }
    }
}

/// Go's truth: false, 0, null and empty strings, lists and maps are false.
fn truthy(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

fn render(nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Print(e) => match eval(e, dot)? {
                Some(v) => out.push_str(&go_string(&v)),
                None => out.push_str("<no value>"),
            },
            Node::Range(e, body) => match eval(e, dot)? {
                Some(Value::Array(items)) => {
                    for item in &items {
                        render(body, item, out)?;
                    }
                }
                Some(Value::Object(map)) => {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort();
                    for k in keys {
                        render(body, &map[k], out)?;
                    }
                }
                None | Some(Value::Null) => {}
                Some(other) => return Err(format!("range over {other}: not a list or map")),
            },
            Node::If(e, then, otherwise) => {
                let branch = if truthy(&eval(e, dot)?) {
                    then
                } else {
                    otherwise
                };
                render(branch, dot, out)?;
            }
        }
    }
    Ok(())
}

/// A value as Go's `%v` prints the docker type it stands for.
fn go_string(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_string(&map[*k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    #[test]
    fn docker_inspect_formats() {
        let v = json!({
            "Id": "sha256:abc",
            "Os": "linux",
            "Config": {"Env": ["PATH=/bin", "A=1"], "Labels": {"b": "2", "a": "1"}, "Cmd": null},
            "Size": 42,
        });
        assert_eq!(run("{{.Id}}", &v), "sha256:abc");
        assert_eq!(run("{{.Config.Env}}", &v), "[PATH=/bin A=1]");
        assert_eq!(run("{{.Config.Labels}}", &v), "map[a:1 b:2]");
        assert_eq!(run("{{.Config.Cmd}}", &v), "<nil>");
        assert_eq!(run("{{.Nope}}", &v), "<no value>");
        assert_eq!(run("{{json .Config.Env}}", &v), r#"["PATH=/bin","A=1"]"#);
        assert_eq!(run("{{.Os}}/{{.Size}}", &v), "linux/42");
        assert_eq!(
            run("{{range .Config.Env}}{{.}};{{end}}", &v),
            "PATH=/bin;A=1;"
        );
        assert_eq!(run("{{join .Config.Env \",\"}}", &v), "PATH=/bin,A=1");
        assert_eq!(run("{{index .Config.Labels \"b\"}}", &v), "2");
        assert_eq!(run("{{if .Config.Cmd}}cmd{{else}}none{{end}}", &v), "none");
        assert_eq!(run("a {{- .Os -}} b", &v), "alinuxb");
        assert!(Template::parse("{{range .X}}").is_err());
        assert!(Template::parse("{{.X").is_err());
        assert!(Template::parse("{{printf .X}}").is_err());
    }
}
