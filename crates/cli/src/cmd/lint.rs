//! BuildKit's Dockerfile checks as the CLI shows them: `kiln build --call
//! check` (buildx's `--check`) in BuildKit's block format, and `kiln check`
//! and builds in one line per finding. For a ZImagefile the checks run on
//! its translation and each finding names the YAML line it came from.

use crate::build_file::BuildFile;
use crate::output::{errln, outln};
use kiln_frontend::lint::{check, CheckDirective, Finding};
use kiln_frontend::{Ast, Error, ErrorKind};

/// A finding placed in the file the user wrote: its name, line and the
/// text of that line.
#[derive(Clone)]
pub(crate) struct Placed {
    pub(crate) finding: Finding,
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) source: Option<String>,
}

/// The findings of `ast` (the file `file` stands for) and whether the
/// file's `# check=error=true` makes them fail a build.
pub(crate) fn findings(file: &BuildFile, ast: &Ast) -> (Vec<Placed>, bool) {
    let error = CheckDirective::of(ast).error;
    let placed = check(ast)
        .into_iter()
        .map(|finding| {
            // Through an error's location, which a ZImagefile moves back to
            // its YAML.
            let at = ast.error_at(
                Error::new(ErrorKind::Semantic, String::new()),
                finding.line,
                None,
            );
            let at = file.locate(at);
            Placed {
                file: at.file.clone(),
                line: at.line,
                source: at.source_line.clone(),
                finding,
            }
        })
        .collect();
    (placed, error)
}

/// `--call check`: every finding in BuildKit's block format on standard
/// output; true when there were none.
pub(crate) fn print_blocks(placed: &[Placed]) -> bool {
    match placed.len() {
        0 => {
            outln!("Check complete, no warnings found.");
            return true;
        }
        1 => outln!("Check complete, 1 warning has been found!"),
        n => outln!("Check complete, {n} warnings have been found!"),
    }
    for p in placed {
        outln!();
        outln!("WARNING: {} - {}", p.finding.rule, p.finding.url());
        outln!("{}", p.finding.message);
        outln!("{}:{}", p.file, p.line);
        outln!("--------------------");
        if let Some(source) = &p.source {
            outln!("{:>4} | >>> {source}", p.line);
        }
        outln!("--------------------");
    }
    false
}

/// One `warning:` line per finding on standard error.
pub(crate) fn print_lines(placed: &[Placed]) {
    for p in placed {
        errln!(
            "warning: {}:{}: {}: {} ({})",
            p.file,
            p.line,
            p.finding.rule,
            p.finding.message,
            p.finding.url()
        );
    }
}
