//! One module per group of subcommands.

pub mod backends;
pub mod build;
pub mod frontend;
pub mod init;
pub(crate) mod lint;
pub mod meta;
pub mod pipeline;
pub mod registry;
pub mod serve;
pub mod store;

use anyhow::Context;
use kiln_store::Store;
use std::path::Path;

/// Opens the store at `root` as every subcommand does: opening reclaims
/// the temporary files of kiln processes that were killed (see
/// `Store::open`), and then their RUN containers and snapshots go too, so
/// no leftover outlives the next kiln command, whatever it is.
pub(crate) fn open_store(root: &Path) -> anyhow::Result<Store> {
    Ok(open_store_reclaiming(root)?.0)
}

/// [`open_store`], also saying what it reclaimed beyond the store's own
/// temporary files (`Store::reclaimed` says those).
pub(crate) fn open_store_reclaiming(
    root: &Path,
) -> anyhow::Result<(Store, kiln_native::Reclaimed)> {
    let store = Store::open(root)
        .with_context(|| format!("cannot open the store at {}", root.display()))?;
    let reclaimed = kiln_native::reclaim(store.root());
    Ok((store, reclaimed))
}
