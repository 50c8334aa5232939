//! (being written)
use crate::{Ast, Error};

/// Parses a Dockerfile. `file` names it in errors.
pub fn parse(file: &str, source: &[u8]) -> Result<Ast, Error> {
    let _ = (file, source);
    unimplemented!()
}
