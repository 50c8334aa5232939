//! The flags that set what every RUN step gets, as `docker buildx build`
//! spells them: `--network`, `--add-host`, `--shm-size` and `--ulimit`.

use anyhow::{bail, Context};
use kiln_backend::{Rlimit, RunDefaults};
use kiln_frontend::instructions::Network;
use std::net::IpAddr;

/// The flags' values as given.
pub(super) struct RunFlags<'a> {
    pub(super) network: Option<&'a str>,
    pub(super) add_hosts: &'a [String],
    pub(super) shm_size: Option<&'a str>,
    pub(super) ulimits: &'a [String],
    /// `--allow network.host` was given.
    pub(super) allow_network_host: bool,
}

impl RunFlags<'_> {
    /// The RUN defaults they ask for, or why they cannot be had.
    pub(super) fn parse(&self) -> anyhow::Result<RunDefaults> {
        let network = match self.network.unwrap_or("default") {
            "default" => Network::Default,
            "none" => Network::None,
            "host" if self.allow_network_host => Network::Host,
            "host" => bail!(
                "--network=host needs the network.host entitlement, as in BuildKit: add --allow network.host"
            ),
            other => bail!("--network={other}: kiln knows default, none and host"),
        };
        let mut add_hosts = Vec::new();
        for entry in self.add_hosts {
            add_hosts.push(add_host(entry)?);
        }
        let shm_size = match self.shm_size {
            None => None,
            Some(text) => match crate::cmd::store::parse_size(text) {
                Ok(0) => bail!("--shm-size {text}: /dev/shm cannot be empty"),
                Ok(bytes) => Some(bytes),
                Err(e) => bail!("--shm-size: {e}"),
            },
        };
        let mut ulimits = Vec::new();
        for spec in self.ulimits {
            let limit: Rlimit = spec.parse().map_err(|e: String| anyhow::anyhow!("--{e}"))?;
            ulimits.retain(|l: &Rlimit| l.kind != limit.kind);
            ulimits.push(limit);
        }
        Ok(RunDefaults {
            network,
            add_hosts,
            shm_size,
            ulimits,
        })
    }
}

/// docker's `HOST:IP` (the address may be IPv6, so the name ends at the
/// first colon) or `HOST=IP`.
fn add_host(entry: &str) -> anyhow::Result<(String, IpAddr)> {
    let (host, ip) = entry
        .split_once('=')
        .or_else(|| entry.split_once(':'))
        .with_context(|| format!("--add-host {entry:?}: expected HOST:IP"))?;
    if ip == "host-gateway" {
        bail!("--add-host {entry}: NotSupported: host-gateway needs a daemon's gateway address; give the address");
    }
    let ip = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .with_context(|| format!("--add-host {entry:?}: {ip:?} is not an IP address"))?;
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        bail!("--add-host {entry:?}: {host:?} is not a host name");
    }
    Ok((host.to_string(), ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_host_entries() {
        assert_eq!(
            add_host("db:10.0.0.5").unwrap(),
            ("db".into(), "10.0.0.5".parse().unwrap())
        );
        assert_eq!(
            add_host("v6:fd00::1").unwrap(),
            ("v6".into(), "fd00::1".parse().unwrap())
        );
        assert_eq!(
            add_host("eq=1.2.3.4").unwrap(),
            ("eq".into(), "1.2.3.4".parse().unwrap())
        );
        assert!(add_host("nohost").is_err());
        assert!(add_host("x:notanip").is_err());
        assert!(add_host("x:host-gateway")
            .unwrap_err()
            .to_string()
            .contains("NotSupported"));
    }
}
