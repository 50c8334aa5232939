//! Where a daemon listens and how the two ends authenticate: a unix
//! socket (file permissions are the access control), or TCP with mutual
//! TLS, where the daemon requires a client certificate signed by its CA
//! during the handshake, before it reads a byte of HTTP.

use crate::Error;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// A daemon's address: `unix:///run/kiln.sock` or `tcp://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket.
    Unix(PathBuf),
    /// A TCP address, `host:port`; always with mutual TLS.
    Tcp {
        /// The host name or IP address (IPv6 without brackets).
        host: String,
        /// The port.
        port: u16,
    },
}

impl FromStr for Endpoint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Endpoint, Error> {
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(Error::Config(format!(
                    "{s:?}: a unix socket address needs an absolute path (unix:///run/kiln.sock)"
                )));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("tcp://") {
            let rest = rest.trim_end_matches('/');
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| Error::Config(format!("{s:?}: expected tcp://HOST:PORT")))?;
            let port = port
                .parse()
                .map_err(|_| Error::Config(format!("{s:?}: {port:?} is not a port number")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(Error::Config(format!("{s:?}: the host is empty")));
            }
            return Ok(Endpoint::Tcp {
                host: host.to_string(),
                port,
            });
        }
        Err(Error::Config(format!(
            "{s:?}: a daemon address is unix:///PATH or tcp://HOST:PORT"
        )))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

/// PEM files for one end of a mutual-TLS connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificates the other end's certificate must chain to.
    pub ca: PathBuf,
    /// This end's certificate chain and its private key; a client may go
    /// without (the daemon then refuses it, which is how that is tested).
    pub identity: Option<(PathBuf, PathBuf)>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Config(format!("reading certificates from {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        Error::Config(format!(
            "reading a private key from {}: {e}",
            path.display()
        ))
    })
}

fn roots(ca: &Path) -> Result<Arc<RootCertStore>, Error> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots
            .add(cert)
            .map_err(|e| Error::Config(format!("the CA in {}: {e}", ca.display())))?;
    }
    Ok(Arc::new(roots))
}

/// The daemon's TLS configuration: its certificate, and client
/// certificates required and checked against the CA (HTTP/2 only).
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, Error> {
    let (cert, key) = files.identity.as_ref().ok_or_else(|| {
        Error::Config("the daemon needs a certificate and key (--tls-cert, --tls-key)".into())
    })?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(&files.ca)?, provider())
        .build()
        .map_err(|e| Error::Config(format!("client verification: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(cert)?, read_key(key)?)
        .map_err(|e| Error::Config(format!("the daemon's certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A client's TLS configuration: the daemon's certificate checked against
/// the CA, and the client's own certificate when it has one.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(e.to_string()))?
        .with_root_certificates(roots(&files.ca)?);
    let mut config = match &files.identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
            .map_err(|e| Error::Config(format!("the client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The name the daemon's certificate must carry for `host`.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(host.to_string())
        .map_err(|e| Error::Config(format!("{host:?} is not a valid server name: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_print() {
        assert_eq!(
            "unix:///run/kiln.sock".parse::<Endpoint>().unwrap(),
            Endpoint::Unix("/run/kiln.sock".into())
        );
        let tcp: Endpoint = "tcp://127.0.0.1:8443".parse().unwrap();
        assert_eq!(tcp.to_string(), "tcp://127.0.0.1:8443");
        assert_eq!(
            "tcp://[::1]:9".parse::<Endpoint>().unwrap().to_string(),
            "tcp://[::1]:9"
        );
        assert!("http://x:1".parse::<Endpoint>().is_err());
        assert!("unix://rel".parse::<Endpoint>().is_err());
        assert!("tcp://host".parse::<Endpoint>().is_err());
    }
}
