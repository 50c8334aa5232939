//! A real `docker-registry` process.

use crate::{free_port, TokenIssuer};
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How clients must authenticate.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    /// Anyone may pull and push.
    #[default]
    None,
    /// HTTP basic auth against a bcrypt htpasswd file with one user.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// Bearer tokens from a [`TokenIssuer`] that knows one user.
    Token {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

/// How to start a [`Registry`].
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Serve HTTPS with a certificate signed by a CA made for this registry.
    pub tls: bool,
    /// The authentication scheme.
    pub auth: Auth,
    /// Keep docker-registry's own manifest URL validation, which refuses
    /// every manifest with a layer that has `urls`, as a stock registry
    /// does; otherwise URLs on 127.0.0.1 are allowed.
    pub refuse_foreign_urls: bool,
}

/// A running `docker-registry`; killed when dropped. Unless started with
/// [`RegistryOptions::refuse_foreign_urls`], it accepts manifests whose
/// foreign layers have `urls` on 127.0.0.1 (a stock registry allows none).
pub struct Registry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    tls: bool,
    issuer: Option<TokenIssuer>,
}

impl Registry {
    /// Starts an anonymous plain-HTTP registry.
    pub fn start() -> Registry {
        Registry::start_with(RegistryOptions::default())
    }

    /// Starts a registry as `opts` says and waits until it accepts connections.
    pub fn start_with(opts: RegistryOptions) -> Registry {
        let dir = tempfile::tempdir().expect("creating the registry's tempdir");
        let port = free_port();
        let validation = if opts.refuse_foreign_urls {
            ""
        } else {
            "validation:\n  manifests:\n    urls:\n      allow:\n        - '^https?://127\\.0\\.0\\.1[:/]'\n"
        };
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  \
             filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n{validation}\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        );
        if opts.tls {
            let (cert, key) = crate::token::server_cert(dir.path());
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        let mut issuer = None;
        match &opts.auth {
            Auth::None => {}
            Auth::Basic { user, password } => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("running htpasswd (apt-get install apache2-utils)");
                assert!(out.status.success(), "htpasswd failed");
                let path = dir.path().join("htpasswd");
                fs::write(&path, out.stdout).expect("writing htpasswd");
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                    path.display()
                ));
            }
            Auth::Token { user, password } => {
                let started = TokenIssuer::start(dir.path(), user, password);
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    \
                     rootcertbundle: {}\n",
                    started.realm(),
                    crate::token::SERVICE,
                    crate::token::ISSUER,
                    started.root_cert_bundle().display()
                ));
                issuer = Some(started);
            }
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).expect("writing the registry config");
        let log = fs::File::create(dir.path().join("registry.log")).expect("creating the log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry (apt-get install docker-registry)");
        let mut registry = Registry {
            child: Some(child),
            dir,
            port,
            tls: opts.tls,
            issuer,
        };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("docker-registry exited with {status}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("docker-registry did not start listening:\n{}", self.log());
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://…` or `https://…`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// The PEM file of the CA that signed the TLS certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The token issuer, for token-auth registries.
    pub fn issuer(&self) -> Option<&TokenIssuer> {
        self.issuer.as_ref()
    }

    /// The registry's log so far, for assertion messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The registry's tempdir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the registry now (to test what clients do when it goes away).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}
