//! kiln's Dockerfile front end.
//!
//! It reads a Dockerfile exactly as BuildKit's Dockerfile frontend does and
//! turns it into a typed build description that the engine can plan from:
//!
//! * [`parse`] turns source bytes into BuildKit's low-level AST ([`Ast`], a
//!   list of [`Node`]s), including directives, heredocs and line numbers;
//!   [`Ast::dump`] prints BuildKit's dump format byte for byte.
//! * [`shell`] is the shell-word expansion BuildKit applies to instruction
//!   arguments (`$VAR`, `${VAR:-word}`, `${VAR#pat}`, quotes and escapes).
//! * [`instructions`] turns nodes into typed instructions with every flag
//!   BuildKit's frontend accepts, and [`stages`] resolves ARG/ENV scoping
//!   and stage dependencies into the steps a build would run.
//! * [`dockerignore`] implements moby's `.dockerignore` pattern semantics.
//! * [`zimagefile`] reads kiln's YAML image format into the Dockerfile it
//!   stands for.
//! * [`pipeline`] reads ZPipeline files: sets of images built in
//!   dependency order.
//! * [`templates`] are the runtime templates of `kiln init` and a
//!   ZImagefile's `runtime:`.
//!
//! ```
//! let ast = kiln_frontend::parse("Dockerfile", b"FROM busybox\nRUN echo hi\n").unwrap();
//! assert_eq!(ast.dump(), "(from \"busybox\")\n(run \"echo hi\")\n");
//! ```
#![deny(missing_docs)]

mod ast;
pub mod dockerignore;
mod error;
pub mod instructions;
pub mod lint;
pub mod onbuild;
mod parser;
pub mod pipeline;
pub mod shell;
pub mod stages;
pub mod templates;
pub mod zimagefile;

pub use ast::{Args, Ast, Heredoc, Node, Warning};
pub use error::{Error, ErrorKind};
pub use parser::parse;
pub use parser::{
    chomp_heredoc, detect_syntax, go_quote, heredocs_from_line, parse_check, parse_heredoc_word,
    parse_words, syntax_warning, SyntaxDirective,
};
