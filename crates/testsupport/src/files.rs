//! A tiny HTTP server for files that live outside the registry, such as
//! the bytes of foreign layers named by `urls`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Serves fixed files over plain HTTP on 127.0.0.1 (GET only, no
/// `Range`), and records the request lines; stops when dropped.
pub struct FileServer {
    port: u16,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
}

impl FileServer {
    /// Starts serving `files`, each a URL path (`/layer.tar.gz`) and its bytes.
    pub fn start(files: Vec<(String, Vec<u8>)>) -> FileServer {
        FileServer::start_with_redirects(files, Vec::new())
    }

    /// [`FileServer::start`], also answering each path of `redirects` with
    /// a 302 to its URL.
    pub fn start_with_redirects(
        files: Vec<(String, Vec<u8>)>,
        redirects: Vec<(String, String)>,
    ) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the file server");
        let port = listener.local_addr().expect("file server address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let files = Arc::new(files);
        let redirects = Arc::new(redirects);
        let (stopping, requests) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let (files, redirects, requests) =
                        (files.clone(), redirects.clone(), requests.clone());
                    std::thread::spawn(move || serve(conn, &files, &redirects, &requests));
                }
            }
        });
        FileServer { port, stop, log }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Request lines seen so far (`GET /layer.tar.gz HTTP/1.1`), in order.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("file server log").clone()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    mut conn: TcpStream,
    files: &[(String, Vec<u8>)],
    redirects: &[(String, String)],
    log: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(&conn);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
    }
    let request_line = request_line.trim_end().to_string();
    log.lock()
        .expect("file server log")
        .push(request_line.clone());
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    if let Some((_, to)) = redirects.iter().find(|(p, _)| p == path) {
        let _ = write!(
            conn,
            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return;
    }
    let (status, body): (&str, &[u8]) = match files.iter().find(|(p, _)| p == path) {
        Some((_, bytes)) if request_line.starts_with("GET ") => ("200 OK", bytes),
        Some(_) => ("405 Method Not Allowed", b""),
        None => ("404 Not Found", b"not found\n"),
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(body);
}
