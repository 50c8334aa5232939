//! Certificates for TLS and a token issuer for distribution's `auth.token`.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The `service` the registry expects in tokens.
pub(crate) const SERVICE: &str = "kiln-test-registry";
/// The `iss` the registry expects in tokens.
pub(crate) const ISSUER: &str = "kiln-test-issuer";

/// Makes a CA (`ca.crt`) and a server certificate for 127.0.0.1 and
/// localhost signed by it in `dir`; returns the server cert and key paths.
pub(crate) fn server_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().expect("generating the CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "kiln test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("self-signing the CA");
    let key = KeyPair::generate().expect("generating the server key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    let cert = leaf
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("signing the server certificate");
    let (cert_path, key_path) = (dir.join("server.crt"), dir.join("server.key"));
    fs::write(dir.join("ca.crt"), ca_cert.pem()).expect("writing ca.crt");
    fs::write(&cert_path, cert.pem()).expect("writing server.crt");
    fs::write(&key_path, key.serialize_pem()).expect("writing server.key");
    (cert_path, key_path)
}

/// A token server on a free port that knows one user. With the right
/// basic credentials it grants every action asked for; without any it
/// grants nothing (the registry then refuses); with wrong ones it answers 401.
pub struct TokenIssuer {
    port: u16,
    bundle: PathBuf,
    requests: Arc<AtomicUsize>,
    failing: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

struct Signer {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    user: String,
    password: String,
}

impl TokenIssuer {
    pub(crate) fn start(dir: &Path, user: &str, password: &str) -> TokenIssuer {
        let key = KeyPair::generate().expect("generating the token key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("token params");
        params
            .distinguished_name
            .push(DnType::CommonName, "kiln test token issuer");
        let cert = params
            .self_signed(&key)
            .expect("self-signing the token cert");
        let bundle = dir.join("token-root.crt");
        fs::write(&bundle, cert.pem()).expect("writing the root cert bundle");
        let signer = Arc::new(Signer {
            key: EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &key.serialize_der(),
                &SystemRandom::new(),
            )
            .expect("loading the token key"),
            cert_der: cert.der().to_vec(),
            user: user.to_string(),
            password: password.to_string(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the token server");
        let port = listener.local_addr().expect("token server address").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, fails, stopping) = (requests.clone(), failing.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    count.fetch_add(1, Ordering::SeqCst);
                    let fail = fails
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    let signer = signer.clone();
                    std::thread::spawn(move || serve(conn, &signer, fail));
                }
            }
        });
        TokenIssuer {
            port,
            bundle,
            requests,
            failing,
            stop,
        }
    }

    /// The token endpoint: `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The PEM bundle the registry trusts tokens from.
    pub fn root_cert_bundle(&self) -> &Path {
        &self.bundle
    }

    /// How many token requests have been served so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Answers the next `n` token requests with 503 Service Unavailable,
    /// as an overloaded token server does.
    pub fn fail_next(&self, n: usize) {
        self.failing.store(n, Ordering::SeqCst);
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(conn: TcpStream, signer: &Signer, fail: bool) {
    let mut reader = BufReader::new(&conn);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            }
        }
    }
    if fail {
        respond(
            conn,
            "503 Service Unavailable",
            r#"{"details":"overloaded"}"#,
        );
        return;
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let mut scopes = Vec::new();
    let mut account = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "scope" => scopes.push(percent_decode(v)),
            "account" => account = Some(percent_decode(v)),
            _ => {}
        }
    }
    let user = match authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
    {
        None => None,
        Some(b64) => {
            let decoded = STANDARD.decode(b64).unwrap_or_default();
            let expected = format!("{}:{}", signer.user, signer.password);
            if decoded != expected.as_bytes() {
                let body = r#"{"details":"invalid username or password"}"#;
                respond(conn, "401 Unauthorized", body);
                return;
            }
            Some(signer.user.clone())
        }
    };
    let access: Vec<serde_json::Value> = if user.is_some() {
        scopes.iter().filter_map(|s| access_entry(s)).collect()
    } else {
        Vec::new()
    };
    let token = signer.sign(user.or(account).unwrap_or_default(), access);
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300});
    respond(conn, "200 OK", &body.to_string());
}

fn access_entry(scope: &str) -> Option<serde_json::Value> {
    let mut parts = scope.splitn(3, ':');
    let (kind, rest) = (parts.next()?, parts.collect::<Vec<_>>());
    let (name, actions) = match rest.as_slice() {
        [name, actions] => (*name, *actions),
        _ => return None,
    };
    Some(serde_json::json!({
        "type": kind,
        "name": name,
        "actions": actions.split(',').collect::<Vec<_>>(),
    }))
}

impl Signer {
    fn sign(&self, subject: String, access: Vec<serde_json::Value>) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let header = serde_json::json!({
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [STANDARD.encode(&self.cert_der)],
        });
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": format!("kiln-{now}-{}", std::process::id()),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .expect("signing a token");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

fn respond(mut conn: TcpStream, status: &str, body: &str) {
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
