//! ONBUILD: a base image's triggers, run as the first steps of each stage
//! built FROM it. The front end splices them into the Dockerfile's syntax
//! tree, so every backend that plans from the tree runs them the same way.

use crate::{Ast, Error, ErrorKind};

/// Puts each base image's ONBUILD triggers (`triggers`: a FROM line and
/// the triggers of the image it names, from its config) right after that
/// FROM, placed on the FROM line, as BuildKit runs them: first in the
/// stage. A trigger that does not parse, or one that ONBUILD forbids
/// (`ONBUILD`, `FROM`, `MAINTAINER`), is an error on the FROM line.
pub fn splice(mut ast: Ast, triggers: &[(usize, Vec<String>)]) -> Result<Ast, Error> {
    for (line, list) in triggers.iter().rev() {
        let at = ast
            .children
            .iter()
            .position(|n| n.start_line == *line && n.keyword.eq_ignore_ascii_case("from"))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Semantic,
                    format!("ONBUILD triggers for line {line}, which has no FROM"),
                )
            })?;
        let mut nodes = Vec::new();
        for trigger in list {
            let parsed = crate::parse(&ast.file, trigger.as_bytes()).map_err(|e| {
                ast.error_at(
                    Error::new(
                        ErrorKind::Syntax,
                        format!(
                            "the base image's ONBUILD trigger {trigger:?} does not parse: {}",
                            e.message
                        ),
                    ),
                    *line,
                    None,
                )
            })?;
            for mut node in parsed.children {
                let keyword = node.keyword.to_ascii_uppercase();
                if matches!(keyword.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                    let message = match keyword.as_str() {
                        "ONBUILD" => {
                            "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string()
                        }
                        k => format!("{k} isn't allowed as an ONBUILD trigger"),
                    };
                    return Err(ast.error_at(
                        Error::new(ErrorKind::Semantic, message),
                        *line,
                        None,
                    ));
                }
                node.start_line = *line;
                node.end_line = *line;
                nodes.push(node);
            }
        }
        ast.children.splice(at + 1..at + 1, nodes);
    }
    Ok(ast)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ast(text: &str) -> Ast {
        crate::parse("Dockerfile", text.as_bytes()).unwrap()
    }

    #[test]
    fn triggers_run_first_in_their_stage_on_the_from_line() {
        let spliced = splice(
            ast("FROM a\nRUN one\nFROM b AS two\nCOPY x /\n"),
            &[
                (1, vec!["RUN from-a".into()]),
                (3, vec!["ENV K=v".into(), "WORKDIR /w".into()]),
            ],
        )
        .unwrap();
        let steps: Vec<(String, usize)> = spliced
            .children
            .iter()
            .map(|n| (n.original.clone(), n.start_line))
            .collect();
        assert_eq!(
            steps,
            [
                ("FROM a", 1),
                ("RUN from-a", 1),
                ("RUN one", 2),
                ("FROM b AS two", 3),
                ("ENV K=v", 3),
                ("WORKDIR /w", 3),
                ("COPY x /", 4),
            ]
            .map(|(t, l)| (t.to_string(), l))
        );
    }

    #[test]
    fn forbidden_and_broken_triggers_are_errors_on_the_from_line() {
        let e = splice(ast("FROM a\n"), &[(1, vec!["FROM evil".into()])]).unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str()),
            (1, "FROM isn't allowed as an ONBUILD trigger")
        );
        let e = splice(ast("FROM a\n"), &[(1, vec!["ONBUILD RUN x".into()])]).unwrap_err();
        assert!(e.message.contains("chaining ONBUILD"), "{}", e.message);
        let e = splice(ast("FROM a\nRUN x\n"), &[(2, vec!["RUN y".into()])]).unwrap_err();
        assert_eq!(e.message, "ONBUILD triggers for line 2, which has no FROM");
    }
}
