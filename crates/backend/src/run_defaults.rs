//! The build-wide settings of RUN steps (`kiln build --network`,
//! `--add-host`, `--shm-size`, `--ulimit`), which BuildKit keeps in each
//! exec operation and so in its cache key.

use kiln_frontend::instructions::Network;
use kiln_runtime::Rlimit;
use std::net::IpAddr;

/// What every RUN step of a build gets unless it says otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDefaults {
    /// The network of a RUN without `--network` (or with
    /// `--network=default`); [`Network::Host`] needs
    /// `allow_network_host`, as BuildKit's entitlement.
    pub network: Network,
    /// Extra `/etc/hosts` entries, host name and address, after the
    /// standard ones.
    pub add_hosts: Vec<(String, IpAddr)>,
    /// The size of `/dev/shm` in bytes; the runtime's 64 MiB when `None`.
    pub shm_size: Option<u64>,
    /// Resource limits of the step's process.
    pub ulimits: Vec<Rlimit>,
}

impl Default for RunDefaults {
    fn default() -> RunDefaults {
        RunDefaults {
            network: Network::Default,
            add_hosts: Vec::new(),
            shm_size: None,
            ulimits: Vec::new(),
        }
    }
}

impl RunDefaults {
    /// The network a step with `--network=asked` gets.
    pub fn network(&self, asked: Network) -> Network {
        match asked {
            Network::Default => self.network,
            other => other,
        }
    }

    /// What goes into a RUN step's cache key: `None` for the defaults,
    /// so the keys of builds without these flags stay as they were.
    pub fn key(&self) -> Option<String> {
        (*self != RunDefaults::default()).then(|| format!("{self:?}"))
    }
}
