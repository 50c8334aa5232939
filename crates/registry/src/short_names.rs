//! Pulling an image by the name a user wrote: a short name tries each
//! reference `registries.conf` resolves it to ([`Registries::candidates`])
//! in order, as podman and buildah pull it.
//!
//! [`Registries::candidates`]: crate::Registries::candidates

use crate::client::Client;
use crate::errors::{Error, ErrorKind, Result};
use crate::pull::{target, ACTION};
use crate::registries::NameError;
use kiln_oci::reference::Reference;
use std::future::Future;

impl Client {
    /// The references a pull of the image written `name` tries, in order
    /// (see [`Registries::candidates`](crate::Registries::candidates)).
    pub fn candidates(&self, name: &str) -> std::result::Result<Vec<Reference>, NameError> {
        self.opts.registries.candidates(name)
    }
}

/// Runs `pull` on each of `candidates` in order until one succeeds, and
/// says which did. When every one fails the error is the only
/// candidate's own, or one listing what each said.
pub async fn first_that_pulls<T, F, Fut>(
    name: &str,
    candidates: &[Reference],
    mut pull: F,
) -> Result<(Reference, T)>
where
    F: FnMut(Reference) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut failed = Vec::new();
    for candidate in candidates {
        match pull(candidate.clone()).await {
            Ok(done) => return Ok((candidate.clone(), done)),
            Err(e) => {
                tracing::debug!("pulling {name} as {candidate}: {e}");
                failed.push(e);
            }
        }
    }
    if failed.len() == 1 {
        return Err(failed.remove(0));
    }
    let first = candidates.first().expect("at least one candidate");
    Err(Error {
        action: ACTION,
        target: Box::new(target(first)),
        kind: ErrorKind::ShortName(format!(
            "{name} is a short name and none of the registries registries.conf resolves it to \
             has it: {}",
            failed
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )),
    })
}
