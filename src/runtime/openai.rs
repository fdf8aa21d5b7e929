//! The `openai` runtime: any OpenAI-compatible endpoint (llama.cpp's llama-server, ollama, vLLM,
//! LM Studio, a hosted API) measured as the cloud baseline of a hybrid verdict.
//!
//! One repetition is one streaming `POST {url}/chat/completions` (`stream: true`,
//! `stream_options.include_usage`), timed by odai's clock:
//! - connection set-up (DNS, TCP, TLS) apart from TTFT — recorded as the repetition's `load_ms`,
//!   the endpoint's cold-start cost, and in `endpoint.connect_ms`;
//! - TTFT = the request's first byte sent to the first content chunk's arrival;
//! - per-token latency = the gaps between content chunks (one token each on llama-server, vLLM
//!   and OpenAI's API; `chunks` and `usage` say when a server batches);
//! - prompt and completion tokens from `usage`, and the server's `timings` when it sends them.
//!
//! The exchange is HTTP/1.1 written here over std's `TcpStream` and rustls rather than through an
//! HTTP client crate: each phase has to be timed apart (set-up, first byte, every chunk), which
//! ureq and reqwest fold into one request call. Prompt and completion text never reach results:
//! a benchmark drops the text, and shadow mode ([`complete`]) hands it to `odai quality`, which
//! keeps only its verdict.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bench::telemetry::Sampler;
use crate::bench::worker::{self, Timings};
use crate::protocol::{CellSpec, EndpointFigures, EndpointSpec, RepResult, ServerTimings};
use crate::rng::Rng;
use crate::runtime::RuntimeInfo;

/// The longest error body read from a server that answered with an error status.
const ERROR_BODY_LIMIT: usize = 64 << 10;

/// A parsed endpoint URL.
#[derive(Clone, Debug, PartialEq)]
pub struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The path prefix, without a trailing slash (`/v1`).
    pub path: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        let bad =
            |why: &str| format!("--endpoint {s:?}: {why} (example: http://127.0.0.1:8080/v1)");
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("not an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6
                .find(']')
                .ok_or_else(|| bad("an IPv6 host needs its closing ]"))?;
            let port = v6[end + 1..].strip_prefix(':');
            (v6[..end].to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("the port is not a number"))?,
            None if tls => 443,
            None => 80,
        };
        Ok(Url {
            tls,
            host,
            port,
            path: path.to_owned(),
        })
    }
}

/// Either side of a connection: plain TCP or TLS over it.
enum Wire {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

/// Why a read stopped that the socket did not stop (carried inside an `io::Error`).
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// Ctrl-C (or the coordinator stopping the run).
    Interrupted,
    /// The response head did not arrive whole within `--request-timeout`.
    Head(Duration),
    /// The whole request ran past its limit.
    Deadline(Duration),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Interrupted => write!(f, "interrupted"),
            Stop::Head(d) => write!(
                f,
                "the response head did not arrive whole within {} (the limit is --request-timeout)",
                crate::units::duration(*d)
            ),
            Stop::Deadline(d) => write!(
                f,
                "the request ran past its limit of {} (the cell's deadline, or --request-timeout \
                 per token asked)",
                crate::units::duration(*d)
            ),
        }
    }
}

impl std::error::Error for Stop {}

/// How often a blocked read looks at Ctrl-C and the deadline.
const READ_SLICE: Duration = Duration::from_millis(200);

/// A connection whose reads are bounded in time three ways: silence (`stall`, the
/// `--request-timeout`), the request's deadline (`deadline`, shared so that the head's tighter
/// one can be lifted once the head is in), and Ctrl-C — each read blocks at most
/// [`READ_SLICE`] at a time (the socket's own timeout) and looks at all three between slices.
struct Conn {
    wire: Wire,
    /// The socket under `wire`, for its read timeout.
    socket: TcpStream,
    stall: Duration,
    deadline: std::rc::Rc<std::cell::Cell<(Instant, Stop)>>,
    /// When a byte last arrived (or the request was sent).
    last: Instant,
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if crate::interrupt::requested() {
                return Err(std::io::Error::other(Stop::Interrupted));
            }
            let now = Instant::now();
            let (deadline, why) = self.deadline.get();
            // Silence first: a server that sent nothing at all is stalled, whatever else ran out.
            let silent = now - self.last;
            if silent >= self.stall {
                return Err(std::io::Error::from(std::io::ErrorKind::TimedOut));
            }
            if now >= deadline {
                return Err(std::io::Error::other(why));
            }
            let slice = READ_SLICE
                .min(deadline - now)
                .min(self.stall - silent)
                .max(Duration::from_millis(1));
            self.socket.set_read_timeout(Some(slice))?;
            let read = match &mut self.wire {
                Wire::Plain(s) => s.read(buf),
                Wire::Tls(s) => s.read(buf),
            };
            match read {
                Ok(n) => {
                    self.last = Instant::now();
                    return Ok(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.wire {
            Wire::Plain(s) => s.write(buf),
            Wire::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.wire {
            Wire::Plain(s) => s.flush(),
            Wire::Tls(s) => s.flush(),
        }
    }
}

/// Mozilla's roots (webpki-roots, compiled in: phones and boards often have no usable store),
/// plus the PEM certificates in `SSL_CERT_FILE` when set (OpenSSL's variable): a company CA or
/// a self-hosted endpoint's own.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
                let shown = std::path::Path::new(&file).display().to_string();
                let certs = CertificateDer::pem_file_iter(&file)
                    .map_err(|e| format!("SSL_CERT_FILE {shown}: {e}"))?;
                for c in certs {
                    let c = c.map_err(|e| format!("SSL_CERT_FILE {shown}: {e}"))?;
                    roots
                        .add(c)
                        .map_err(|e| format!("SSL_CERT_FILE {shown}: {e}"))?;
                }
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// An I/O error as a user reads it: a timeout is a stalled server.
fn io_reason(e: &std::io::Error, timeout: Duration, what: &str) -> String {
    if let Some(stop) = e.get_ref().and_then(|x| x.downcast_ref::<Stop>()) {
        return stop.to_string();
    }
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => format!(
            "the endpoint sent nothing for {} while {what} (stalled; the limit is --request-timeout)",
            crate::units::duration(timeout)
        ),
        _ => format!("{what}: {e}"),
    }
}

/// DNS, TCP and TLS: a connection ready for the request, and its socket (for read timeouts).
fn connect(url: &Url, timeout: Duration) -> Result<(Wire, TcpStream), String> {
    let target = format!("{}:{}", url.host, url.port);
    let addrs: Vec<_> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
        .collect();
    let mut last = format!("{target} resolves to no address");
    let mut tcp = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = format!("cannot connect to {target}: {e}"),
        }
    }
    let tcp = tcp.ok_or(last)?;
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let socket = tcp.try_clone().map_err(|e| e.to_string())?;
    if !url.tls {
        return Ok((Wire::Plain(tcp), socket));
    }
    let name = rustls::pki_types::ServerName::try_from(url.host.clone())
        .map_err(|e| format!("{}: not a TLS server name: {e}", url.host))?;
    let conn = rustls::ClientConnection::new(tls_config()?, name)
        .map_err(|e| format!("TLS set-up for {target}: {e}"))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // The handshake now, so that it counts as set-up and not as time to first token.
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| io_reason(&e, timeout, &format!("TLS handshake with {target}")))?;
    }
    Ok((Wire::Tls(Box::new(tls)), socket))
}

/// A response body: by Content-Length, chunked (RFC 9112 §7.1), or until the server closes.
struct Body<R> {
    inner: R,
    chunked: bool,
    /// Bytes left in the current chunk, or of the Content-Length.
    left: Option<u64>,
    done: bool,
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.chunked && self.left.is_none_or(|l| l == 0) {
            if self.left == Some(0) {
                // The CRLF that ends the previous chunk's data.
                let mut crlf = String::new();
                read_line_bounded(&mut self.inner, &mut crlf)?;
            }
            let mut line = String::new();
            if read_line_bounded(&mut self.inner, &mut line)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the connection closed inside a chunked body",
                ));
            }
            let size = line.trim().split(';').next().unwrap_or("");
            let size = u64::from_str_radix(size, 16).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("malformed chunk size {:?}", line.trim()),
                )
            })?;
            if size == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = Some(size);
        }
        let want = match self.left {
            Some(l) => buf.len().min(l as usize),
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            if self.left.is_some_and(|l| l > 0) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the connection closed mid-response",
                ));
            }
            self.done = true;
        }
        if let Some(l) = &mut self.left {
            *l -= n as u64;
            if *l == 0 && !self.chunked {
                self.done = true;
            }
        }
        Ok(n)
    }
}

/// The status and the framing of a response, read from its head.
struct Head {
    status: u16,
    reason: String,
    chunked: bool,
    length: Option<u64>,
}

/// The most header lines and bytes odai reads in a response head: far above any real server's
/// (a dozen lines, a kilobyte), and a bound against one that never ends its head.
const MAX_HEADERS: usize = 128;
const MAX_HEAD: usize = 64 << 10;

fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut line = String::new();
    if read_line_bounded(r, &mut line)? == 0 {
        return Ok(None);
    }
    let mut bytes = line.len();
    let mut parts = line.trim_end().splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let Ok(status) = code.parse() else {
        return Ok(None);
    };
    if !version.starts_with("HTTP/") {
        return Ok(None);
    }
    let mut head = Head {
        status,
        reason: parts.next().unwrap_or("").to_owned(),
        chunked: false,
        length: None,
    };
    for n in 0.. {
        line.clear();
        if read_line_bounded(r, &mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        bytes += line.len();
        if n >= MAX_HEADERS || bytes > MAX_HEAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "a response head of more than {MAX_HEADERS} lines or {} KiB",
                    MAX_HEAD >> 10
                ),
            ));
        }
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
            {
                head.chunked = true;
            } else if k.eq_ignore_ascii_case("content-length") {
                head.length = v.parse().ok();
            }
        }
    }
    Ok(Some(head))
}

/// The `message` of an OpenAI-style error body (`{"error": {"message": …}}`, or llama-server's
/// and ollama's variants), else the body's first line.
fn error_message(body: &str) -> String {
    crate::units::printable(&error_text(body)).into_owned()
}

fn error_text(body: &str) -> String {
    let v: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let from_json = v.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("error"))
            .or_else(|| v.get("message"))
            .and_then(|m| m.as_str())
            .map(str::to_owned)
    });
    from_json.unwrap_or_else(|| {
        let first = body.lines().next().unwrap_or("").trim();
        first.chars().take(200).collect()
    })
}

/// Seeded English-like filler: words most BPE vocabularies hold as one token each, so the word
/// count steers the prompt's token count.
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
    "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
    "been", "if", "more", "when", "will", "would", "who", "so", "no", "time", "day", "world",
    "water", "house", "light", "city", "music", "river", "story", "market", "garden",
];

fn prompt_text(words: usize, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut s = String::with_capacity(words * 6);
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s
}

/// Prompt tokens per filler word, as the endpoint's `usage` counted them (chat template
/// included); learned from each response so that later repetitions hit the cell's prompt length.
static TOKENS_PER_WORD: Mutex<Option<(String, f64)>> = Mutex::new(None);

fn words_for(e: &EndpointSpec, tokens: u32) -> usize {
    let key = format!("{} {}", e.url, e.model);
    let per_word = match &*TOKENS_PER_WORD.lock().unwrap_or_else(|p| p.into_inner()) {
        Some((k, r)) if *k == key => *r,
        _ => 1.0,
    };
    ((f64::from(tokens) / per_word).round() as usize).max(1)
}

fn learn(e: &EndpointSpec, words: usize, prompt_tokens: u64) {
    if words > 0 && prompt_tokens > 0 {
        let key = format!("{} {}", e.url, e.model);
        *TOKENS_PER_WORD.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((key, prompt_tokens as f64 / words as f64));
    }
}

/// What the stream gave, before it becomes a repetition.
struct Stream {
    /// Content chunks' arrival times.
    arrivals: Vec<Instant>,
    /// The content, for shadow mode's verdicts ([`complete`]); a benchmark drops it.
    text: String,
    usage_prompt: Option<u64>,
    usage_completion: Option<u64>,
    timings: Option<ServerTimings>,
    server: Option<String>,
}

/// One streaming request as odai sends it.
struct Ask<'a> {
    url: &'a Url,
    route: &'a str,
    key: Option<&'a str>,
    body: &'a [u8],
    /// `--request-timeout`: the longest silence, and the longest wait for the response head.
    timeout: Duration,
    /// The whole request's limit, from the first byte sent to `data: [DONE]`.
    whole: Duration,
    /// `max_tokens`: what bounds the content chunks odai accepts.
    max_tokens: u32,
}

/// The whole-request limit where the caller gives none: `--request-timeout` for the head and for
/// each token asked (a server that keeps sending without finishing stops here).
fn default_whole(timeout: Duration, max_tokens: u32) -> Duration {
    timeout.saturating_mul(max_tokens.saturating_add(2))
}

/// One streaming request; `sent` is when its first byte went out.
fn exchange(wire: Wire, socket: TcpStream, ask: &Ask) -> Result<(Instant, Stream), String> {
    let url = ask.url;
    let mut head = format!(
        "POST {}{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: odai/{}\r\n\
         Content-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        url.path,
        ask.route,
        if url.port == 80 || url.port == 443 {
            url.host.clone()
        } else {
            format!("{}:{}", url.host, url.port)
        },
        env!("CARGO_PKG_VERSION"),
        ask.body.len()
    );
    if let Some(k) = ask.key {
        head.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    head.push_str("\r\n");
    let sent = Instant::now();
    // Until the head is in: the tighter of --request-timeout and the whole limit.
    let head_limit = if ask.timeout < ask.whole {
        (sent + ask.timeout, Stop::Head(ask.timeout))
    } else {
        (sent + ask.whole, Stop::Deadline(ask.whole))
    };
    let deadline = std::rc::Rc::new(std::cell::Cell::new(head_limit));
    let mut conn = Conn {
        wire,
        socket,
        stall: ask.timeout,
        deadline: deadline.clone(),
        last: sent,
    };
    conn.write_all(head.as_bytes())
        .and_then(|()| conn.write_all(ask.body))
        .and_then(|()| conn.flush())
        .map_err(|err| io_reason(&err, ask.timeout, "sending the request"))?;
    let mut lift = || deadline.set((sent + ask.whole, Stop::Deadline(ask.whole)));
    read_response(BufReader::new(conn), ask.timeout, ask.max_tokens, &mut lift).map(|s| (sent, s))
}

/// The longest line odai reads from an endpoint: far above any real event (a chunk is a few
/// hundred bytes), and a bound on memory against a server that never ends a line.
const MAX_LINE: usize = 1 << 20;

/// The most bytes odai reads of one streamed response: a thousand times a long answer's.
const MAX_BODY: usize = 64 << 20;

/// Lines a stream may carry per token asked (data, blank separators, comments, keep-alives).
const MAX_EVENTS_PER_TOKEN: usize = 16;

/// `read_line` that fails, instead of growing without bound, past `MAX_LINE` bytes.
fn read_line_bounded(r: &mut impl BufRead, line: &mut String) -> std::io::Result<usize> {
    let n = r.take(MAX_LINE as u64 + 1).read_line(line)?;
    if n > MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a line longer than {} MiB", MAX_LINE >> 20),
        ));
    }
    Ok(n)
}

/// A streaming chat/completions response, from its status line to `data: [DONE]`: HTTP/1.1
/// head, plain or chunked body, server-sent events. Every byte of it comes from the endpoint, so
/// it is one of the parsers the fuzz targets feed (`fuzz/fuzz_targets/sse.rs`).
///
/// Bounded whatever the server sends: a line at [`MAX_LINE`], the head at [`MAX_HEAD`], the body
/// at [`MAX_BODY`], content chunks at twice `max_tokens` and 16 more (a token is one chunk on every
/// server measured; a character split across two is two), events at [`MAX_EVENTS_PER_TOKEN`] per
/// token asked and 1,024 more. `on_head` is called once the head is in.
fn read_response(
    mut r: impl BufRead,
    timeout: Duration,
    max_tokens: u32,
    on_head: &mut dyn FnMut(),
) -> Result<Stream, String> {
    let h = read_head(&mut r)
        .map_err(|err| io_reason(&err, timeout, "waiting for the response"))?
        .ok_or("the endpoint closed the connection or answered something other than HTTP")?;
    on_head();
    let max_chunks = 2 * max_tokens as usize + 16;
    let max_events = MAX_EVENTS_PER_TOKEN * max_tokens as usize + 1024;
    let (mut bytes, mut events) = (0usize, 0usize);
    let mut body = Body {
        inner: r,
        chunked: h.chunked,
        left: if h.chunked { None } else { h.length },
        done: false,
    };
    if h.status != 200 {
        let mut text = Vec::new();
        let _ = (&mut body)
            .take(ERROR_BODY_LIMIT as u64)
            .read_to_end(&mut text);
        let msg = error_message(&String::from_utf8_lossy(&text));
        let hint = match h.status {
            401 | 403 => " (check the key in --api-key-env)",
            404 => " (check --model and the endpoint's path, e.g. .../v1)",
            429 => " (rate limited)",
            _ => "",
        };
        return Err(format!(
            "HTTP {} {}: {msg}{hint}",
            h.status,
            h.reason.trim()
        ));
    }
    let mut lines = BufReader::new(body);
    let mut stream = Stream {
        arrivals: Vec::new(),
        text: String::new(),
        usage_prompt: None,
        usage_completion: None,
        timings: None,
        server: None,
    };
    let mut line = String::new();
    loop {
        line.clear();
        let closed = || {
            format!(
                "the connection closed mid-stream after {} content chunk(s), before data: [DONE]",
                stream.arrivals.len()
            )
        };
        let n = match read_line_bounded(&mut lines, &mut line) {
            Ok(n) => n,
            // A server killed mid-stream: EOF inside a chunk, or a reset connection.
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                return Err(closed());
            }
            Err(err) => {
                return Err(io_reason(
                    &err,
                    timeout,
                    &format!(
                        "reading the stream after {} chunk(s)",
                        stream.arrivals.len()
                    ),
                ));
            }
        };
        if n == 0 {
            return Err(closed());
        }
        bytes += n;
        events += 1;
        if bytes > MAX_BODY || events > max_events {
            return Err(format!(
                "the endpoint streamed more than {} or {max_events} lines for max_tokens \
                 {max_tokens} without finishing",
                crate::units::bytes(MAX_BODY as u64)
            ));
        }
        let at = Instant::now();
        let l = line.trim_end_matches(['\r', '\n']);
        // Server-sent events (html.spec.whatwg.org, "Server-sent events"): `data:` lines carry
        // the payload; comments (`:`), `event:`, `id:` and blank lines do not.
        let Some(data) = l.strip_prefix("data:") else {
            if l.is_empty()
                || l.starts_with(':')
                || l.starts_with("event:")
                || l.starts_with("id:")
                || l.starts_with("retry:")
            {
                continue;
            }
            return Err(format!(
                "malformed event stream: a line that is not a server-sent event: {:?}",
                l.chars().take(80).collect::<String>()
            ));
        };
        let data = data.trim();
        if data == "[DONE]" {
            break;
        }
        let v: serde_json::Value = serde_json::from_str(data).map_err(|err| {
            format!(
                "malformed event stream: a data line is not JSON ({err}): {:?}",
                data.chars().take(80).collect::<String>()
            )
        })?;
        if v.get("error").is_some() {
            return Err(format!(
                "the endpoint failed mid-stream: {}",
                error_message(data)
            ));
        }
        // Chat completions stream `delta.content`; text completions (`/completions`, shadow
        // mode's raw prompts) stream `text`.
        if let Some(c) = v
            .pointer("/choices/0/delta/content")
            .or_else(|| v.pointer("/choices/0/text"))
            .and_then(|c| c.as_str())
            && !c.is_empty()
        {
            if stream.arrivals.len() == max_chunks {
                return Err(format!(
                    "the endpoint streamed more than {max_chunks} content chunks for max_tokens \
                     {max_tokens}: it does not stop at max_tokens"
                ));
            }
            stream.arrivals.push(at);
            stream.text.push_str(c);
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            stream.usage_prompt = u.get("prompt_tokens").and_then(|x| x.as_u64());
            stream.usage_completion = u.get("completion_tokens").and_then(|x| x.as_u64());
        }
        if let Some(t) = v.get("timings").filter(|t| t.is_object()) {
            let f = |k: &str| t.get(k).and_then(|x| x.as_f64());
            let u = |k: &str| t.get(k).and_then(|x| x.as_u64());
            stream.timings = Some(ServerTimings {
                prompt_n: u("prompt_n"),
                prompt_ms: f("prompt_ms"),
                predicted_n: u("predicted_n"),
                predicted_ms: f("predicted_ms"),
                prompt_per_second: f("prompt_per_second"),
                predicted_per_second: f("predicted_per_second"),
            });
        }
        if stream.server.is_none() {
            stream.server = v
                .get("system_fingerprint")
                .and_then(|x| x.as_str())
                .map(str::to_owned);
        }
    }
    Ok(stream)
}

/// A shadow request's answer (`odai quality --shadow`): its text, which the caller judges and
/// drops (results keep the verdict), and odai's timing of it.
pub struct Completion {
    pub text: String,
    /// The request's first byte sent to the first content chunk.
    pub ttft_ms: f64,
    /// Connection set-up to the last content chunk: the latency a user waits for the answer.
    pub total_ms: f64,
    pub server: Option<String>,
}

/// One greedy completion of `prompt` (temperature 0, at most `max_tokens`), streamed and timed
/// like a benchmark repetition: as a chat message (`/chat/completions`, the server applies its
/// chat template), or with `raw` as plain text (`/completions`, what a local model given the same
/// prompt continues: like with like, on servers that have it).
pub fn complete(
    e: &EndpointSpec,
    prompt: &str,
    max_tokens: u32,
    raw: bool,
) -> Result<Completion, String> {
    let url = Url::parse(&e.url)?;
    let key = api_key(e)?;
    let timeout = Duration::from_secs_f64(e.timeout_s);
    let (route, body) = if raw {
        (
            "/completions",
            serde_json::json!({
                "model": e.model,
                "prompt": prompt,
                "max_tokens": max_tokens,
                "temperature": 0,
                "stream": true,
            }),
        )
    } else {
        (
            "/chat/completions",
            serde_json::json!({
                "model": e.model,
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": max_tokens,
                "temperature": 0,
                "stream": true,
            }),
        )
    };
    let body = serde_json::to_vec(&body).map_err(|err| err.to_string())?;
    let started = Instant::now();
    let ask = Ask {
        url: &url,
        route,
        key: key.as_deref(),
        body: &body,
        timeout,
        whole: whole_limit(e, max_tokens),
        max_tokens,
    };
    let (sent, s) = connect(&url, timeout)
        .and_then(|(wire, socket)| exchange(wire, socket, &ask))
        .map_err(|why| redact(why, key.as_deref()))?;
    let first = s.arrivals.first().copied().unwrap_or(sent);
    let last = s.arrivals.last().copied().unwrap_or_else(Instant::now);
    Ok(Completion {
        text: s.text,
        ttft_ms: (first - sent).as_secs_f64() * 1e3,
        total_ms: (last - started).as_secs_f64() * 1e3,
        server: s.server.map(|v| redact(v, key.as_deref())),
    })
}

/// The whole request's limit: the spec's, else `--request-timeout` per token asked and two more.
fn whole_limit(e: &EndpointSpec, max_tokens: u32) -> Duration {
    match e.deadline_s {
        Some(s) if s > 0.0 => Duration::from_secs_f64(s),
        _ => default_whole(Duration::from_secs_f64(e.timeout_s), max_tokens),
    }
}

/// `text` (from the server, or an error about it) with the API key cut out: a server may echo
/// the request's `Authorization` header in an error body or a field, and odai prints and stores
/// what servers say.
fn redact(text: String, key: Option<&str>) -> String {
    match key {
        Some(k) if !k.is_empty() && text.contains(k) => text.replace(k, "[API key redacted]"),
        _ => text,
    }
}

/// Fuzzing entry: an endpoint's whole response as bytes.
#[doc(hidden)]
pub fn fuzz_response(bytes: &[u8]) -> Result<usize, String> {
    read_response(bytes, Duration::from_secs(1), 64, &mut || {}).map(|s| s.arrivals.len())
}

/// Fuzzing entry: the response read as a request reads it, through the time-sliced connection
/// ([`Conn`]) on a loopback socket: the input's first byte sets the size of the pieces the rest
/// arrives in (1 to 256 bytes, each its own write), so reads end mid-line, mid-chunk-size and
/// mid-character.
#[doc(hidden)]
pub fn fuzz_connection(bytes: &[u8]) -> Result<usize, String> {
    let Some((&piece, body)) = bytes.split_first() else {
        return Err("empty".into());
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let socket = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let (mut server, _) = listener.accept().map_err(|e| e.to_string())?;
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        for part in body.chunks(usize::from(piece) + 1) {
            if server
                .write_all(part)
                .and_then(|()| server.flush())
                .is_err()
            {
                return;
            }
        }
    });
    let now = Instant::now();
    let limit = Duration::from_secs(5);
    let conn = Conn {
        wire: Wire::Plain(socket.try_clone().map_err(|e| e.to_string())?),
        socket,
        stall: limit,
        deadline: std::rc::Rc::new(std::cell::Cell::new((now + limit, Stop::Deadline(limit)))),
        last: now,
    };
    let read = read_response(BufReader::new(conn), limit, 64, &mut || {});
    let _ = writer.join();
    read.map(|s| s.arrivals.len())
}

/// The API key from the environment variable the spec names; never from anywhere else.
fn api_key(e: &EndpointSpec) -> Result<Option<String>, String> {
    match &e.api_key_env {
        None => Ok(None),
        Some(var) => match std::env::var(var) {
            Ok(k) if !k.is_empty() => Ok(Some(k)),
            _ => Err(format!(
                "--api-key-env {var}: the environment variable {var} is not set (export it with the API key)"
            )),
        },
    }
}

/// Requests this process has made: each gets its own prompt.
static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One repetition against the endpoint: a fresh connection, one streaming request.
pub fn run_rep(spec: &CellSpec) -> Result<RepResult, String> {
    let e = spec
        .endpoint
        .as_ref()
        .ok_or("the openai runtime needs an endpoint (--endpoint URL --model NAME)")?;
    let url = Url::parse(&e.url)?;
    let key = api_key(e)?;
    let timeout = Duration::from_secs_f64(e.timeout_s);
    let words = words_for(e, spec.prompt_tokens);
    // A new prompt for every request, across processes too: servers keep prompts they have seen
    // (llama-server's prompt cache in RAM, vLLM's prefix cache, hosted prompt caching), and a
    // repeated prompt would measure the cache, not prefill. The filler's words do not matter to
    // the figures, so the clock and pid pick them, not the cell's seed.
    let request = REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seed = spec.seed
        ^ nanos
        ^ u64::from(std::process::id()).rotate_left(32)
        ^ request.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let body = serde_json::json!({
        "model": e.model,
        "messages": [{"role": "user", "content": prompt_text(words, seed)}],
        "max_tokens": spec.gen_tokens,
        "temperature": 0,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let body = serde_json::to_vec(&body).map_err(|err| err.to_string())?;

    let t0 = Instant::now();
    let sampler = worker::start_sampler(spec, t0)?;
    let started = Instant::now();
    let ask = Ask {
        url: &url,
        route: "/chat/completions",
        key: key.as_deref(),
        body: &body,
        timeout,
        whole: whole_limit(e, spec.gen_tokens),
        max_tokens: spec.gen_tokens,
    };
    let mut connect_ms = 0.0;
    let result = connect(&url, timeout).and_then(|(wire, socket)| {
        connect_ms = started.elapsed().as_secs_f64() * 1e3;
        exchange(wire, socket, &ask)
    });
    let telemetry = sampler.map(Sampler::finish);
    let (sent, mut s) = result.map_err(|why| redact(why, key.as_deref()))?;
    s.server = s.server.map(|v| redact(v, key.as_deref()));
    if let Some(p) = s.usage_prompt {
        learn(e, words, p);
    }
    let Some(&first) = s.arrivals.first() else {
        return Err("the stream ended without any content".into());
    };
    if s.arrivals.len() < 2 {
        return Err(
            "the stream carried one content chunk: too few to time decoding (raise -n)".into(),
        );
    }
    let ttft_ms = (first - sent).as_secs_f64() * 1e3;
    let token_ms: Vec<f64> = s
        .arrivals
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
        .collect();
    let token_times_s = s.arrivals[1..]
        .iter()
        .map(|a| (*a - first).as_secs_f64())
        .collect();
    let decode_s = (*s.arrivals.last().expect("two or more") - first).as_secs_f64();
    let timings = Timings {
        load_ms: connect_ms,
        first_ttft_ms: Some(connect_ms + ttft_ms),
        ttft_ms: Some(ttft_ms),
        prompt_tokens: s.usage_prompt.unwrap_or(u64::from(spec.prompt_tokens)) as usize,
        token_ms,
        token_times_s,
        decode_s,
        resets: 0,
        threads: 0,
        runtime: RuntimeInfo {
            runtime: "openai".into(),
            runtime_version: s.server.clone().unwrap_or_else(|| "unreported".into()),
            backend: if url.tls { "https" } else { "http" }.into(),
        },
        offload: None,
        kv_types: None,
        batching: None,
        peak_rss_bytes: None,
        cpu_times_s: None,
        rss_split: None,
        endpoint: Some(EndpointFigures {
            connect_ms,
            usage_prompt_tokens: s.usage_prompt,
            usage_completion_tokens: s.usage_completion,
            chunks: s.arrivals.len() as u64,
            server_timings: s.timings,
        }),
        warnings: Vec::new(),
    };
    worker::finish(spec, timings, telemetry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_parse_with_default_ports_and_paths() {
        let u = Url::parse("http://127.0.0.1:8080/v1/").unwrap();
        assert_eq!(
            u,
            Url {
                tls: false,
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/v1".into()
            }
        );
        let u = Url::parse("https://api.example.com/v1").unwrap();
        assert_eq!((u.tls, u.port, u.path.as_str()), (true, 443, "/v1"));
        assert_eq!(Url::parse("http://[::1]:9/v1").unwrap().host, "::1");
        assert_eq!(
            Url::parse("ftp://x").unwrap_err(),
            "--endpoint \"ftp://x\": not an http:// or https:// URL (example: http://127.0.0.1:8080/v1)"
        );
        assert!(
            Url::parse("http://h:port/v1")
                .unwrap_err()
                .contains("port is not a number")
        );
    }

    #[test]
    fn error_bodies_give_their_message() {
        assert_eq!(
            error_message(
                r#"{"error":{"message":"Invalid API Key","type":"authentication_error"}}"#
            ),
            "Invalid API Key"
        );
        assert_eq!(
            error_message(r#"{"error":"model not found"}"#),
            "model not found"
        );
        assert_eq!(
            error_message("Internal Server Error\nmore"),
            "Internal Server Error"
        );
    }

    #[test]
    fn chunked_bodies_decode_across_chunks() {
        let raw = b"4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\n\r\n";
        let mut b = Body {
            inner: BufReader::new(&raw[..]),
            chunked: true,
            left: None,
            done: false,
        };
        let mut out = String::new();
        b.read_to_string(&mut out).unwrap();
        assert_eq!(out, "abcdefg");
    }

    #[test]
    fn a_response_read_in_pieces_through_the_connection_reads_as_a_whole() {
        // What the fuzz target feeds the time-sliced connection, checked on a real response:
        // a chunked stream whose pieces end mid-line, mid-size and mid-character.
        let events = [
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hé\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"llo\"}}]}\n\n",
            "data: [DONE]\n\n",
        ];
        let mut raw =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for e in events {
            raw.extend_from_slice(format!("{:x}\r\n{e}\r\n", e.len()).as_bytes());
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(fuzz_response(&raw), Ok(2));
        for piece in [0u8, 1, 6, 255] {
            let input: Vec<u8> = std::iter::once(piece).chain(raw.iter().copied()).collect();
            assert_eq!(
                fuzz_connection(&input),
                Ok(2),
                "pieces of {}",
                piece as usize + 1
            );
        }
        // Cut short: the same error either way.
        let cut = &raw[..raw.len() - 20];
        let input: Vec<u8> = std::iter::once(3).chain(cut.iter().copied()).collect();
        assert_eq!(fuzz_connection(&input), fuzz_response(cut));
        assert!(fuzz_response(cut).is_err());
    }

    #[test]
    fn prompts_are_seeded_and_sized_by_words() {
        assert_eq!(prompt_text(5, 1), prompt_text(5, 1));
        assert_eq!(prompt_text(5, 1).split(' ').count(), 5);
        assert_ne!(prompt_text(5, 1), prompt_text(5, 2));
    }
}
