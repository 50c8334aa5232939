//! A real TCP proxy in front of a registry that misbehaves on request.
//!
//! Every request is sent upstream with `Connection: close`, so each client
//! connection carries one request and the proxy sees all of them.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does wrong.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Serve the blob whose path ends with this digest with its last byte changed.
    CorruptBlob(String),
    /// Cut the connection after this many body bytes of the blob or
    /// manifest whose path ends with this digest, the first `times` times
    /// it is fetched.
    DropBlob {
        /// The digest (`sha256:…`) of the blob.
        digest: String,
        /// Body bytes sent before the cut.
        after: usize,
        /// How many fetches are cut.
        times: usize,
    },
    /// Forward requests for the blob whose path ends with this digest
    /// without their `Range` header, as a server that does not support
    /// ranges would: a resumed download gets the whole blob again (200).
    IgnoreRange(String),
    /// Accept the first `times` requests whose path contains `path`, then
    /// never answer (until the client hangs up), as a stuck server does.
    Stall {
        /// A substring of the request path.
        path: String,
        /// How many requests stall.
        times: usize,
    },
    /// Answer GETs of the blob or manifest whose path ends with this digest
    /// with `body` instead of the registry's, honouring `Range` (206, or 416
    /// from its end on), as a registry holding other bytes under that
    /// digest would.
    ServeBlob {
        /// The digest (`sha256:…`) of the blob or manifest.
        digest: String,
        /// What is served.
        body: Vec<u8>,
    },
    /// Set the response header `name` to `value` on requests with `method`
    /// whose path contains `path`, replacing the registry's own.
    SetHeader {
        /// `GET`, `HEAD`, `PUT`…
        method: String,
        /// A substring of the request path.
        path: String,
        /// The header name, as the registry spells it.
        name: String,
        /// Its new value.
        value: String,
    },
    /// Send the response head and the first `after` body bytes to the
    /// first `times` GETs whose path contains `path`, then hold the
    /// connection open in silence until the client hangs up.
    StallBody {
        /// A substring of the request path.
        path: String,
        /// Body bytes sent before the silence.
        after: usize,
        /// How many requests stall.
        times: usize,
    },
    /// Send the body of GETs whose path contains `path` `chunk` bytes at a
    /// time, one piece every `every`: slow, but never stalled.
    Trickle {
        /// A substring of the request path.
        path: String,
        /// Bytes per piece.
        chunk: usize,
        /// The pause before each piece.
        every: Duration,
    },
    /// Read the request body of PUTs and PATCHes whose path contains `path`
    /// `chunk` bytes at a time, one piece every `every`, as a slow uplink
    /// would: the upload is slow, but never stalled.
    TrickleUpload {
        /// A substring of the request path.
        path: String,
        /// Bytes per piece.
        chunk: usize,
        /// The pause before each piece.
        every: Duration,
    },
    /// Answer the first `times` requests whose path contains `path` with
    /// 401 and this `WWW-Authenticate` challenge, as a registry sending
    /// clients to a token server would.
    Challenge {
        /// A substring of the request path.
        path: String,
        /// The header's value: `Bearer realm="…",service="…"`.
        value: String,
        /// How many requests get it.
        times: usize,
    },
    /// Close the connection of the first `times` requests whose path
    /// contains `path` as soon as their head arrived, answering nothing.
    Hangup {
        /// A substring of the request path.
        path: String,
        /// How many requests are hung up on.
        times: usize,
    },
    /// Forward the head and the first `after` body bytes of the first
    /// `times` PUTs or PATCHes whose path contains `path` to the registry,
    /// then close both connections: an upload cut part way, which leaves
    /// the registry holding those bytes in the upload.
    CutUpload {
        /// A substring of the request path.
        path: String,
        /// Body bytes forwarded before the cut.
        after: usize,
        /// How many uploads are cut.
        times: usize,
    },
    /// Answer the first `times` requests whose path contains `path` with
    /// this status (e.g. 503 or 429) instead of forwarding them.
    Status {
        /// A substring of the request path.
        path: String,
        /// The status code.
        code: u16,
        /// How many requests get it.
        times: usize,
    },
}

/// A running proxy; stops accepting when dropped.
pub struct Proxy {
    port: u16,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
}

struct Shared {
    upstream: u16,
    faults: Mutex<Vec<Fault>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    /// Starts a proxy to `127.0.0.1:upstream` with these faults.
    pub fn start(upstream: u16, faults: Vec<Fault>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            upstream,
            faults: Mutex::new(faults),
            log: log.clone(),
        });
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let shared = shared.clone();
                    std::thread::spawn(move || {
                        let _ = handle(conn, &shared);
                    });
                }
            }
        });
        Proxy { port, stop, log }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Request lines seen so far (`GET /v2/… HTTP/1.1`), in order, with
    /// any `Range` header appended.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("proxy log").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

enum Action {
    Forward,
    ForwardWithoutRange,
    Stall,
    Corrupt,
    Drop(usize),
    Status(u16),
    Serve(Vec<u8>),
    SetHeader(String, String),
    StallBody(usize),
    Trickle(usize, Duration),
    TrickleUpload(usize, Duration),
    CutUpload(usize),
    Hangup,
    Challenge(String),
}

fn handle(mut client: TcpStream, shared: &Shared) -> io::Result<()> {
    let (head, rest) = read_head(&mut client)?;
    let head_text = String::from_utf8_lossy(&head).into_owned();
    let request_line = head_text.lines().next().unwrap_or("").to_string();
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let range = head_text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("range:"))
        .map(|l| format!(" [{}]", l.trim()));
    shared
        .log
        .lock()
        .expect("proxy log")
        .push(format!("{request_line}{}", range.unwrap_or_default()));
    let action = choose(shared, &request_line, &path);
    if let Action::Serve(body) = &action {
        return serve(&mut client, &head_text, body);
    }
    if let Action::Challenge(value) = &action {
        let _ = write!(
            client,
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {value}\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        return Ok(());
    }
    if let Action::Hangup = action {
        return client.shutdown(Shutdown::Both);
    }
    if let Action::Stall = action {
        // Hold the connection, reading nothing back, until the client gives up.
        let _ = io::copy(&mut client, &mut io::sink());
        return Ok(());
    }
    if let Action::Status(code) = action {
        let _ = write!(
            client,
            "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\
             Connection: close\r\n\r\n{{}}"
        );
        return Ok(());
    }
    let mut upstream = TcpStream::connect(("127.0.0.1", shared.upstream))?;
    let keep_range = !matches!(action, Action::ForwardWithoutRange);
    upstream.write_all(&rewrite_head(&head_text, keep_range).into_bytes())?;
    upstream.write_all(&rest)?;
    match action {
        Action::TrickleUpload(chunk, every) => {
            let mut left = content_length(&head_text).saturating_sub(rest.len());
            let mut piece = vec![0; chunk.max(1)];
            while left > 0 {
                std::thread::sleep(every);
                let want = left.min(piece.len());
                client.read_exact(&mut piece[..want])?;
                upstream.write_all(&piece[..want])?;
                left -= want;
            }
            let mut response = Vec::new();
            upstream.read_to_end(&mut response)?;
            client.write_all(&response)?;
            client.shutdown(Shutdown::Both)?;
        }
        Action::CutUpload(after) => {
            // Never past the middle of the body, so the cut is a cut.
            let after = after.min(content_length(&head_text) / 2);
            let mut left = after.saturating_sub(rest.len());
            let mut piece = vec![0; 64 << 10];
            while left > 0 {
                let want = left.min(piece.len());
                client.read_exact(&mut piece[..want])?;
                upstream.write_all(&piece[..want])?;
                left -= want;
            }
            // Give the registry the bytes before the cut reaches it.
            std::thread::sleep(Duration::from_millis(200));
            let _ = upstream.shutdown(Shutdown::Both);
            client.shutdown(Shutdown::Both)?;
        }
        Action::Forward | Action::ForwardWithoutRange => {
            let mut up_read = upstream.try_clone()?;
            let mut client_write = client.try_clone()?;
            let downstream = std::thread::spawn(move || {
                let _ = io::copy(&mut up_read, &mut client_write);
                let _ = client_write.shutdown(Shutdown::Both);
            });
            let _ = io::copy(&mut client, &mut upstream);
            let _ = downstream.join();
        }
        Action::Corrupt
        | Action::Drop(_)
        | Action::SetHeader(..)
        | Action::StallBody(_)
        | Action::Trickle(..) => {
            let mut response = Vec::new();
            upstream.read_to_end(&mut response)?;
            let body_at = find(&response, b"\r\n\r\n").map_or(response.len(), |i| i + 4);
            match action {
                Action::Corrupt => {
                    if response.len() > body_at {
                        let last = response.len() - 1;
                        response[last] ^= 0xff;
                    }
                    client.write_all(&response)?;
                }
                Action::Drop(after) => {
                    let end = (body_at + after).min(response.len());
                    client.write_all(&response[..end])?;
                }
                Action::SetHeader(name, value) => {
                    let head = String::from_utf8_lossy(&response[..body_at]);
                    let mut lines: Vec<&str> = head
                        .split("\r\n")
                        .filter(|l| !l.is_empty())
                        .filter(|l| {
                            !l.to_ascii_lowercase()
                                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
                        })
                        .collect();
                    let set = format!("{name}: {value}");
                    lines.push(&set);
                    client.write_all(format!("{}\r\n\r\n", lines.join("\r\n")).as_bytes())?;
                    client.write_all(&response[body_at..])?;
                }
                Action::StallBody(after) => {
                    let end = (body_at + after).min(response.len());
                    client.write_all(&response[..end])?;
                    let _ = io::copy(&mut client, &mut io::sink());
                    return Ok(());
                }
                Action::Trickle(chunk, every) => {
                    client.write_all(&response[..body_at])?;
                    for piece in response[body_at..].chunks(chunk.max(1)) {
                        std::thread::sleep(every);
                        client.write_all(piece)?;
                    }
                }
                _ => {}
            }
            client.shutdown(Shutdown::Both)?;
        }
        Action::Status(_)
        | Action::Stall
        | Action::Serve(_)
        | Action::Hangup
        | Action::Challenge(_) => {}
    }
    Ok(())
}

/// A request head's `Content-Length` (0 when it has none).
fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0)
}

fn choose(shared: &Shared, request_line: &str, path: &str) -> Action {
    let mut faults = shared.faults.lock().expect("proxy faults");
    let is_blob_get = request_line.starts_with("GET ") && path.contains("/blobs/");
    for fault in faults.iter_mut() {
        match fault {
            Fault::CorruptBlob(d) if is_blob_get && path.ends_with(d.as_str()) => {
                return Action::Corrupt
            }
            Fault::DropBlob {
                digest,
                after,
                times,
            } if *times > 0
                && request_line.starts_with("GET ")
                && path.ends_with(digest.as_str()) =>
            {
                *times -= 1;
                return Action::Drop(*after);
            }
            Fault::IgnoreRange(d) if is_blob_get && path.ends_with(d.as_str()) => {
                return Action::ForwardWithoutRange
            }
            Fault::Challenge {
                path: p,
                value,
                times,
            } if *times > 0 && path.contains(p.as_str()) => {
                *times -= 1;
                return Action::Challenge(value.clone());
            }
            Fault::CutUpload {
                path: p,
                after,
                times,
            } if *times > 0
                && (request_line.starts_with("PUT ") || request_line.starts_with("PATCH "))
                && path.contains(p.as_str()) =>
            {
                *times -= 1;
                return Action::CutUpload(*after);
            }
            Fault::Hangup { path: p, times } if *times > 0 && path.contains(p.as_str()) => {
                *times -= 1;
                return Action::Hangup;
            }
            Fault::Stall { path: p, times } if *times > 0 && path.contains(p.as_str()) => {
                *times -= 1;
                return Action::Stall;
            }
            Fault::Status {
                path: p,
                code,
                times,
            } if *times > 0 && path.contains(p.as_str()) => {
                *times -= 1;
                return Action::Status(*code);
            }
            Fault::ServeBlob { digest, body }
                if request_line.starts_with("GET ") && path.ends_with(digest.as_str()) =>
            {
                return Action::Serve(body.clone())
            }
            Fault::SetHeader {
                method,
                path: p,
                name,
                value,
            } if request_line.starts_with(&format!("{method} ")) && path.contains(p.as_str()) => {
                return Action::SetHeader(name.clone(), value.clone())
            }
            Fault::StallBody {
                path: p,
                after,
                times,
            } if *times > 0 && request_line.starts_with("GET ") && path.contains(p.as_str()) => {
                *times -= 1;
                return Action::StallBody(*after);
            }
            Fault::Trickle {
                path: p,
                chunk,
                every,
            } if request_line.starts_with("GET ") && path.contains(p.as_str()) => {
                return Action::Trickle(*chunk, *every)
            }
            Fault::TrickleUpload {
                path: p,
                chunk,
                every,
            } if (request_line.starts_with("PUT ") || request_line.starts_with("PATCH "))
                && path.contains(p.as_str()) =>
            {
                return Action::TrickleUpload(*chunk, *every)
            }
            _ => {}
        }
    }
    Action::Forward
}

/// Answers a GET with `body`, honouring a `Range: bytes=N-` header.
fn serve(client: &mut TcpStream, head: &str, body: &[u8]) -> io::Result<()> {
    let from = head.lines().find_map(|l| {
        let lower = l.to_ascii_lowercase();
        let spec = lower
            .strip_prefix("range:")?
            .trim()
            .strip_prefix("bytes=")?;
        spec.trim_end_matches('-').parse::<usize>().ok()
    });
    let response = match from {
        None => {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(body);
            r
        }
        Some(from) if from >= body.len() => format!(
            "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes(),
        Some(from) => {
            let mut r = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\n\
                 Content-Range: bytes {from}-{}/{}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                body.len() - 1,
                body.len(),
                body.len() - from
            )
            .into_bytes();
            r.extend_from_slice(&body[from..]);
            r
        }
    };
    client.write_all(&response)?;
    client.shutdown(Shutdown::Both)
}

/// Reads up to and including the blank line ending the request head;
/// returns the head and whatever body bytes came with it.
fn read_head(conn: &mut TcpStream) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no request"));
        }
        buf.extend_from_slice(&chunk[..n]);
        // A TLS ClientHello (clients probing for HTTPS) is refused at once,
        // as a plain HTTP server would.
        if !buf[0].is_ascii_uppercase() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not HTTP"));
        }
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok((buf, rest));
        }
    }
}

fn rewrite_head(head: &str, keep_range: bool) -> String {
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if !lower.starts_with("connection:") && (keep_range || !lower.starts_with("range:")) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
