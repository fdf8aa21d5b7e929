//! Real HTTP servers for the `openai` runtime's tests: llama.cpp's own `llama-server` serving the
//! SmolLM2 test model on 127.0.0.1 (built once per machine by scripts/build-llama-server.sh), and
//! a small HTTP/1.1 server here for the answers llama-server cannot be made to give (HTTP 500 and
//! 429, a stall, a malformed event stream, OpenAI's unknown-model 404).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on right now (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The llama-server binary: ODAI_TEST_LLAMA_SERVER, else the cache build-llama-server.sh fills.
/// `None` (the tests then skip, saying so) unless ODAI_TEST_REQUIRE_LLAMA_SERVER is set, as
/// scripts/test.sh sets it after building the server: then a missing server fails the test.
pub fn llama_server_bin() -> Option<PathBuf> {
    let cache = std::env::var_os("ODAI_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/odai-test")
        });
    let bin = std::env::var_os("ODAI_TEST_LLAMA_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.join("llama-server-0.3.36/llama-server"));
    if bin.is_file() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("ODAI_TEST_REQUIRE_LLAMA_SERVER").is_none(),
        "llama-server not found at {} (scripts/build-llama-server.sh builds it)",
        bin.display()
    );
    eprintln!(
        "skipped: llama-server not found at {} (run scripts/build-llama-server.sh)",
        bin.display()
    );
    None
}

/// llama.cpp's `llama-tokenize`, built beside llama-server by scripts/build-llama-server.sh.
pub fn llama_tokenize_bin() -> Option<PathBuf> {
    let bin = llama_server_bin()?.with_file_name("llama-tokenize");
    if bin.is_file() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("ODAI_TEST_REQUIRE_LLAMA_SERVER").is_none(),
        "llama-tokenize not found at {} (scripts/build-llama-server.sh builds it)",
        bin.display()
    );
    eprintln!("skipped: llama-tokenize not found at {}", bin.display());
    None
}

/// The ids llama.cpp gives `text` with the vocabulary of `model` (no BOS, special tokens not
/// parsed, the text byte for byte: read from stdin, no escapes).
pub fn llama_tokenize(bin: &Path, model: &Path, text: &str) -> Vec<u64> {
    let mut child = Command::new(bin)
        .arg("-m")
        .arg(model)
        .args([
            "--stdin",
            "--ids",
            "--no-bos",
            "--no-escape",
            "--log-disable",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "llama-tokenize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = stdout.trim().trim_start_matches('[').trim_end_matches(']');
    list.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| x.parse().unwrap())
        .collect()
}

/// A running llama-server; killed when dropped.
pub struct LlamaServer {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl LlamaServer {
    /// Starts `bin` on the model with an optional API key and waits until /health answers 200.
    pub fn start(bin: &Path, model: &Path, dir: &Path, api_key: Option<&str>) -> LlamaServer {
        let port = free_port();
        let log = dir.join(format!("llama-server-{port}.log"));
        let mut cmd = Command::new(bin);
        cmd.arg("-m")
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-t", "2", "-c", "4096", "-np", "1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(k) = api_key {
            cmd.args(["--api-key", k]);
        }
        let child = cmd.spawn().expect("llama-server starts");
        let server = LlamaServer { child, port, log };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if get_status(port, "/health") == Some(200) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "llama-server did not become healthy in 60 s: {}",
            std::fs::read_to_string(&server.log).unwrap_or_default()
        );
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// POSTs a JSON body to `path` and returns the JSON answer (llama-server's own endpoints,
    /// e.g. /tokenize: llama.cpp's tokenizer as the reference).
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let body = body.to_string();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
        let (_, json) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {answer}"))
    }

    /// Requests the server has started on (its log says `launch_slot_` once per task).
    pub fn tasks_started(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("launch_slot_")
            .count()
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split(' ').nth(1)?.parse().ok()
}

/// How the fault server answers every request.
#[derive(Clone)]
pub enum Answer {
    /// This status with this JSON body.
    Status(u16, &'static str, String),
    /// Reads the request and never answers.
    Stall,
    /// 200 with this raw event-stream body, then closes.
    Stream(String),
    /// 200, chunked transfer encoding, one chunk per event (a few ms apart), then the last chunk.
    Chunked(Vec<String>),
    /// 200, then content chunks without end (a server that ignores max_tokens).
    Endless,
    /// A status line, then a header line every 200 ms without end (a head that never finishes).
    SlowHead,
    /// 200, then an event-stream comment every 100 ms without end (bytes, never a token).
    Trickle,
    /// 200, then this many bytes without a newline.
    HugeLine(usize),
    /// 401 whose error message repeats the request's Authorization header.
    EchoAuth,
}

/// A real HTTP/1.1 server on 127.0.0.1 answering every request as `answer` says; over TLS with
/// tests/fixtures/tls's certificate when started with `start_tls`.
pub struct FaultServer {
    pub port: u16,
    tls: bool,
}

impl FaultServer {
    pub fn start(answer: Answer) -> FaultServer {
        Self::listen(answer, None)
    }

    pub fn start_tls(answer: Answer) -> FaultServer {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let dir = crate::common::fixture("tls");
        let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(dir.join("cert.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        Self::listen(answer, Some(std::sync::Arc::new(config)))
    }

    fn listen(answer: Answer, tls: Option<std::sync::Arc<rustls::ServerConfig>>) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let is_tls = tls.is_some();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let answer = answer.clone();
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    None => serve(conn, &answer),
                    Some(cfg) => {
                        let server = rustls::ServerConnection::new(cfg).unwrap();
                        serve(rustls::StreamOwned::new(server, conn), &answer);
                    }
                });
            }
        });
        FaultServer { port, tls: is_tls }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/v1", self.port)
    }
}

fn serve<S: Read + Write>(conn: S, answer: &Answer) {
    let mut r = BufReader::new(conn);
    let mut length = 0usize;
    let mut auth = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if line.to_ascii_lowercase().starts_with("authorization:") {
            auth = line[14..].trim().to_owned();
        }
    }
    let mut body = vec![0u8; length];
    let _ = r.read_exact(&mut body);
    let w = r.get_mut();
    const OK_STREAM: &str =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
    match answer {
        // Each writes until odai hangs up (the write fails).
        Answer::Endless => {
            let _ = w.write_all(OK_STREAM.as_bytes());
            let chunk = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n";
            while w.write_all(chunk.as_bytes()).is_ok() {}
        }
        Answer::SlowHead => {
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\n");
            for i in 0.. {
                if write!(w, "X-Slow-{i}: 1\r\n")
                    .and_then(|()| w.flush())
                    .is_err()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Answer::Trickle => {
            let _ = w.write_all(OK_STREAM.as_bytes());
            while w
                .write_all(b": keep-alive\n")
                .and_then(|()| w.flush())
                .is_ok()
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Answer::HugeLine(n) => {
            let _ = w.write_all(OK_STREAM.as_bytes());
            let _ = w.write_all(b"data: ");
            let block = vec![b'a'; 64 << 10];
            let mut left = *n;
            while left > 0 && w.write_all(&block[..left.min(block.len())]).is_ok() {
                left = left.saturating_sub(block.len());
            }
        }
        Answer::EchoAuth => {
            let json = format!(r#"{{"error":{{"message":"Invalid credentials: {auth}"}}}}"#);
            let _ = write!(
                w,
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                json.len()
            );
        }
        Answer::Status(code, reason, json) => {
            let _ = write!(
                w,
                "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                json.len()
            );
        }
        Answer::Stall => std::thread::sleep(Duration::from_secs(3600)),
        Answer::Stream(raw) => {
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n{raw}"
            );
        }
        Answer::Chunked(events) => {
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            for e in events {
                let _ = write!(w, "{:x}\r\n{e}\r\n", e.len());
                let _ = w.flush();
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = write!(w, "0\r\n\r\n");
        }
    }
    let _ = w.flush();
}
