//! The flags that set what every RUN step gets, as `docker buildx build`
//! spells them: `--network`, `--add-host`, `--shm-size` and `--ulimit`.

use anyhow::{bail, Context};
use kiln_engine::{Rlimit, RunDefaults};
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
        let shm_size = self.shm_size.map(size).transpose()?;
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

/// docker's sizes (`--shm-size`): a number of bytes with an optional
/// binary unit, `b`, `k`, `m`, `g` or `t`, optionally followed by `b` or `ib`
/// (`64m`, `1GB`, `512kib`).
fn size(text: &str) -> anyhow::Result<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits);
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(unit);
    let shift = match unit {
        "" | "b" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => bail!("--shm-size {text:?}: expected a size such as 64m or 1g"),
    };
    let value: f64 = number
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .with_context(|| format!("--shm-size {text:?}: expected a size such as 64m or 1g"))?;
    Ok((value * (1u64 << shift) as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_reads_them() {
        assert_eq!(size("1024").unwrap(), 1024);
        assert_eq!(size("64m").unwrap(), 64 << 20);
        assert_eq!(size("1GB").unwrap(), 1 << 30);
        assert_eq!(size("512kib").unwrap(), 512 << 10);
        assert_eq!(size("1.5g").unwrap(), 3 << 29);
        assert!(size("lots").is_err());
        assert!(size("0").is_err());
    }

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
