//! Where kiln fetches a foreign layer from. Its `urls` come from whoever
//! wrote the manifest, so a hostile image could point them at the build
//! host's own network (a cloud metadata service, an admin page on
//! localhost). As ggcr's `validateForeignURL` does, kiln fetches them over
//! HTTPS from public addresses only, checked again on every redirect and
//! for every address a name resolves to (so DNS cannot smuggle in a private
//! one). A host the user marked insecure by name (`--insecure-registry
//! HOST[:PORT]`, `$KILN_INSECURE_REGISTRIES`) may use plain HTTP and any
//! address; `--tls-verify=false` alone does not open that door, since it
//! is about certificates, not about which networks an image may reach.
//! An HTTP proxy from the environment is reached through the same resolver,
//! so a proxy named by a host name on a private address must be marked
//! insecure too (one given as an address is used as given).

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why kiln will not fetch from a URL. A distinct type so that the HTTP
/// layer, which sees it as a connection or redirect failure, can tell it
/// from a transient one and not retry.
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// True when `insecure` (the user's `host[:port]` list) names `url`'s host,
/// with or without its port.
fn marked_insecure(url: &Url, insecure: &[String]) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let with_port = url.port().map(|p| format!("{host}:{p}"));
    insecure
        .iter()
        .any(|h| h == host || with_port.as_deref() == Some(h.as_str()))
}

/// Checks `url` before kiln connects to it: HTTPS, or HTTP for a host
/// marked insecure; an IP address given literally must be public unless
/// the host is marked insecure. Names are checked as they resolve
/// ([`PublicOnly`]).
pub(crate) fn check_url(url: &Url, insecure: &[String]) -> Result<(), Refused> {
    let trusted = marked_insecure(url, insecure);
    match url.scheme() {
        "https" => {}
        "http" if trusted => {}
        "http" => {
            return Err(Refused(format!(
                "{url} is plain http; kiln fetches foreign layers over https only, unless the \
                 host is marked insecure (--insecure-registry {})",
                host_port(url)
            )))
        }
        other => {
            return Err(Refused(format!(
                "{url} is a {other}: URL; kiln fetches foreign layers over https only"
            )))
        }
    }
    let Some(host) = url.host_str() else {
        return Err(Refused(format!("{url} names no host")));
    };
    let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() else {
        return Ok(());
    };
    if !trusted && !is_public(ip) {
        return Err(Refused(non_public(url.as_str(), ip, &host_port(url))));
    }
    Ok(())
}

fn host_port(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => String::new(),
    }
}

fn non_public(what: &str, ip: IpAddr, host: &str) -> String {
    format!(
        "{what} is at {ip}, a loopback, private or link-local address; kiln fetches foreign \
         layers from public addresses only, unless the host is marked insecure \
         (--insecure-registry {host})"
    )
}

/// True for an address on the public internet: not loopback, private
/// (RFC 1918, unique local fc00::/7), link-local, carrier-grade NAT,
/// unspecified, broadcast or multicast. IPv4-mapped IPv6 addresses are
/// judged as the IPv4 address they carry.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || shared
        || a == 0)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || unique_local || link_local)
}

/// The resolver of the HTTP client that fetches foreign layers: it answers
/// only with public addresses (every address for a host marked insecure),
/// so neither a name nor a redirect can lead kiln to a private one.
pub(crate) struct PublicOnly {
    /// Hosts (without port) the user marked insecure.
    pub(crate) trusted: Vec<String>,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        let trusted = self.trusted.iter().any(|t| t.eq_ignore_ascii_case(&host));
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| trusted || is_public(a.ip()))
                .collect();
            match (usable.is_empty(), all.first()) {
                (false, _) => Ok(Box::new(usable.into_iter()) as Addrs),
                (true, Some(first)) => {
                    Err(Box::new(Refused(non_public(&host, first.ip(), &host))) as _)
                }
                (true, None) => Err(format!("{host} has no address").into()),
            }
        })
    }
}

/// The redirect policy of that client: each hop is checked as the first
/// URL was, and at most 10 are followed.
pub(crate) fn redirect_policy(insecure: Vec<String>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 10 {
            return attempt.error(Refused("more than 10 redirects".into()));
        }
        match check_url(attempt.url(), &insecure) {
            Ok(()) => attempt.follow(),
            Err(Refused(why)) => attempt.error(Refused(format!("redirected: {why}"))),
        }
    })
}

/// The hosts (without port) of the user's insecure list.
pub(crate) fn trusted_hosts(insecure: &[String]) -> Vec<String> {
    insecure
        .iter()
        .filter_map(|h| Url::parse(&format!("http://{h}")).ok())
        .filter_map(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, insecure: &[&str]) -> Result<(), String> {
        let insecure: Vec<String> = insecure.iter().map(|s| s.to_string()).collect();
        check_url(&Url::parse(url).unwrap(), &insecure).map_err(|e| e.0)
    }

    #[test]
    fn https_to_public_hosts_only_by_default() {
        assert_eq!(
            check("https://mcr.microsoft.com/v2/x/blobs/sha256:1", &[]),
            Ok(())
        );
        assert_eq!(check("https://8.8.8.8/l", &[]), Ok(()));
        assert_eq!(check("https://[2001:4860::8888]/l", &[]), Ok(()));
        for refused in [
            "file:///etc/passwd",
            "ftp://example.com/l",
            "http://example.com/l",
            "https://10.1.2.3/l",
            "https://172.16.0.1/l",
            "https://192.168.1.1/l",
            "https://127.0.0.1/l",
            "https://127.9.9.9:8443/l",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/l",
            "https://0.0.0.0/l",
            "https://[::1]/l",
            "https://[fc00::1]/l",
            "https://[fd12:3456::1]/l",
            "https://[fe80::1]/l",
            "https://[::ffff:127.0.0.1]/l",
            "https://[::ffff:10.0.0.1]/l",
        ] {
            assert!(check(refused, &[]).is_err(), "{refused} was allowed");
        }
        let err = check("http://example.com/l", &[]).unwrap_err();
        assert!(err.contains("over https only"), "{err}");
        let err = check("https://169.254.169.254/x", &[]).unwrap_err();
        assert!(err.contains("loopback, private or link-local"), "{err}");
    }

    #[test]
    fn a_host_marked_insecure_may_use_http_and_any_address() {
        assert_eq!(
            check("http://127.0.0.1:8080/l", &["127.0.0.1:8080"]),
            Ok(())
        );
        assert_eq!(check("http://10.0.0.5/l", &["10.0.0.5"]), Ok(()));
        assert_eq!(check("http://[::1]:80/l", &["[::1]"]), Ok(()));
        // Another port of the same host, or another host, is not marked.
        assert!(check("http://127.0.0.1:9090/l", &["127.0.0.1:8080"]).is_err());
        assert!(check("http://10.0.0.6/l", &["10.0.0.5"]).is_err());
        // Never another scheme.
        assert!(check("file:///l", &["127.0.0.1"]).is_err());
        assert_eq!(
            trusted_hosts(&["127.0.0.1:8080".into(), "[::1]:5000".into(), "reg".into()]),
            ["127.0.0.1", "::1", "reg"]
        );
    }

    #[test]
    fn names_resolve_to_public_addresses_only() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let resolve = |trusted: &[&str]| {
            let r = PublicOnly {
                trusted: trusted.iter().map(|s| s.to_string()).collect(),
            };
            rt.block_on(r.resolve("localhost".parse().unwrap()))
                .map(|a| a.count())
        };
        let err = resolve(&[]).err().unwrap().to_string();
        assert!(err.contains("public addresses only"), "{err}");
        assert!(resolve(&["localhost"]).unwrap() > 0);
    }
}
