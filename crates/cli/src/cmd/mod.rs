//! One module per group of subcommands.

pub mod build;
pub mod frontend;
pub mod registry;
pub mod store;
