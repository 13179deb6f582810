//! Just enough HTTP/1.1 over `std::net`: a fixed pool of workers, request-head
//! parsing with a size limit, and responses that always carry `Content-Length`
//! and `Connection: close` (one request per connection; no bodies are read).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest request head (request line and header fields) accepted; larger gets 431.
pub const MAX_HEAD: usize = 8 * 1024;
/// Longest wait for any single read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest time a client gets to send its whole request head (against clients
/// that trickle a byte every few seconds); after that, 408.
const HEAD_DEADLINE: Duration = Duration::from_secs(10);
/// Accepted connections waiting for a free worker; when full, the acceptor waits
/// and further connections queue in the kernel's listen backlog.
const QUEUE: usize = 64;
/// After an answer sent before the request was read in full (a body, an error),
/// unread input is drained for at most this long, so that closing the socket
/// does not reset the connection before the client has read the answer.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 64 * 1024;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent (origin, absolute or asterisk form).
    pub target: String,
    /// The path the target names, without its query: what routes match on.
    pub path: String,
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub version: String,
    /// Header fields in order, names as sent (compare them case-insensitively).
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of a header field, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether a body follows the head (never read: no route takes one).
    fn has_body(&self) -> bool {
        self.header("transfer-encoding").is_some()
            || self.header("content-length").is_some_and(|v| !v.trim_start_matches('0').is_empty())
    }
}

/// Why a request head was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not HTTP/1.x syntax: 400.
    Malformed(&'static str),
    /// Well-formed, but a major version other than 1: 505.
    VersionNotSupported,
    /// Longer than [`MAX_HEAD`]: 431.
    TooLarge,
}

impl ParseError {
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Malformed(_) => 400,
            ParseError::VersionNotSupported => 505,
            ParseError::TooLarge => 431,
        }
    }

    fn response(&self) -> Response {
        let why = match self {
            ParseError::Malformed(why) => why,
            ParseError::VersionNotSupported => "only HTTP/1.0 and HTTP/1.1 are supported",
            ParseError::TooLarge => "request head too large",
        };
        Response::text(self.status(), &format!("{}: {why}\n", reason(self.status())))
    }
}

/// Where the request head ends: the index just past the first empty line (CRLF or,
/// leniently, bare LF line ends). `None` while the head is incomplete.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.iter().enumerate().filter(|&(_, &b)| b == b'\n').find_map(|(i, _)| match buf.get(i + 1..) {
        Some([b'\n', ..]) => Some(i + 2),
        Some([b'\r', b'\n', ..]) => Some(i + 3),
        _ => None,
    })
}

/// Parses a complete request head, as delimited by [`head_end`].
pub fn parse_head(head: &[u8]) -> Result<Request, ParseError> {
    use ParseError::Malformed;
    if head.len() > MAX_HEAD {
        return Err(ParseError::TooLarge);
    }
    let mut lines = head.split(|&b| b == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line));

    let request_line = lines.next().ok_or(Malformed("empty request"))?;
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed("request line is not `METHOD TARGET HTTP/1.1`"));
    };
    if !is_token(method) {
        return Err(Malformed("invalid method"));
    }
    if target.is_empty() || !target.iter().all(|b| b.is_ascii_graphic()) {
        return Err(Malformed("invalid request target"));
    }
    match version {
        b"HTTP/1.1" | b"HTTP/1.0" => {}
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => {
            return Err(ParseError::VersionNotSupported);
        }
        _ => return Err(Malformed("invalid HTTP version")),
    }
    // All three parts were checked to be ASCII above.
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let (method, target, version) = (text(method), text(target), text(version));
    let path = path_of(&target).ok_or(Malformed("invalid request target"))?.to_string();

    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(Malformed("obsolete line folding in header"));
        }
        let colon = line.iter().position(|&b| b == b':').ok_or(Malformed("header line without a colon"))?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if !is_token(name) {
            return Err(Malformed("invalid header name"));
        }
        // Field values may hold visible characters, spaces, tabs and obs-text (>= 0x80).
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(Malformed("control character in header value"));
        }
        headers.push((text(name), text(value)));
    }

    let request = Request { method, target, path, version, headers };
    let hosts = request.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("host")).count();
    if hosts > 1 || (hosts == 0 && request.version == "HTTP/1.1") {
        return Err(Malformed("an HTTP/1.1 request needs exactly one Host header"));
    }
    let mut lengths = request.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    if let Some((_, first)) = lengths.next() {
        if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) || lengths.any(|(_, v)| v != first) {
            return Err(Malformed("invalid Content-Length"));
        }
        if request.header("transfer-encoding").is_some() {
            return Err(Malformed("both Content-Length and Transfer-Encoding"));
        }
    }
    Ok(request)
}

/// `tchar` of RFC 9110: letters, digits and ``!#$%&'*+-.^_`|~``.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The path named by a request target: origin form (`/a?b`), absolute form
/// (`http://host/a?b`) or asterisk form (`*`).
fn path_of(target: &str) -> Option<&str> {
    let before_query = |s: &str| -> usize { s.find(['?', '#']).unwrap_or(s.len()) };
    if target.starts_with('/') {
        return Some(&target[..before_query(target)]);
    }
    if target == "*" {
        return Some(target);
    }
    let scheme_len = ["http://", "https://"]
        .into_iter()
        .find(|scheme| target.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme)))?
        .len();
    let rest = &target[scheme_len..];
    match rest.find(['/', '?', '#']) {
        Some(i) if rest[i..].starts_with('/') => Some(&rest[i..i + before_query(&rest[i..])]),
        _ => Some("/"),
    }
}

/// `value` without leading and trailing spaces and tabs (optional whitespace).
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// A complete response; its body is always sent with `Content-Length`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response { status, headers: vec![("Content-Type", content_type.to_string())], body: body.into() }
    }

    pub fn text(status: u16, body: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    pub fn json(status: u16, body: String) -> Response {
        Response::new(status, "application/json", body)
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The bytes on the wire; the answer to HEAD has the same head but no body.
    pub fn to_bytes(&self, head_only: bool, now: SystemTime) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        out += &format!("Date: {}\r\n", http_date(now));
        for (name, value) in &self.headers {
            out += &format!("{name}: {value}\r\n");
        }
        out += &format!("Content-Length: {}\r\nConnection: close\r\n\r\n", self.body.len());
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// IMF-fixdate, as in `Date: Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Serves connections from `listener` on `workers` threads, one request each.
/// Returns only if the pool is gone (every worker died), with the reason.
pub fn serve<H>(listener: TcpListener, workers: usize, handler: H) -> io::Error
where
    H: Fn(&Request) -> Response + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    let (queue, jobs) = mpsc::sync_channel::<TcpStream>(QUEUE);
    let jobs = Arc::new(Mutex::new(jobs));
    for n in 0..workers.max(1) {
        let (jobs, handler) = (Arc::clone(&jobs), Arc::clone(&handler));
        let spawned = thread::Builder::new().name(format!("worker-{n}")).spawn(move || {
            loop {
                // The lock is held only while waiting for the next connection.
                let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
                let Ok(stream) = next else { return };
                // A panic (a bug) costs that one connection, not the worker; in a
                // release build (`panic = "abort"`) it ends the process instead.
                let _ = panic::catch_unwind(AssertUnwindSafe(|| handle_connection(stream, &*handler)));
            }
        });
        if let Err(e) = spawned {
            return e;
        }
    }
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if queue.send(stream).is_err() {
                    return io::Error::other("every worker has stopped");
                }
            }
            Err(e) => {
                // Such as EMFILE: report it, and do not spin while it lasts.
                eprintln!("accept failed: {e}");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
    io::Error::other("the listener stopped")
}

/// How reading a request head ended, short of a request.
enum ReadFailure {
    /// The client closed the connection before sending anything.
    Closed,
    TimedOut,
    Io(io::Error),
    Invalid(ParseError),
}

/// Reads one request, answers it, logs it, closes the connection.
fn handle_connection<H: Fn(&Request) -> Response>(mut stream: TcpStream, handler: &H) {
    let start = Instant::now();
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let (request, response, unread_input) = match read_request(&mut stream, start + HEAD_DEADLINE) {
        Ok((request, extra)) => {
            let response = handler(&request);
            let unread = extra || request.has_body();
            (Some(request), response, unread)
        }
        Err(ReadFailure::Closed) => return,
        Err(ReadFailure::Io(e)) => {
            eprintln!("read failed: {e}");
            return;
        }
        Err(ReadFailure::TimedOut) => (None, Response::text(408, "Request Timeout\n"), true),
        Err(ReadFailure::Invalid(e)) => (None, e.response(), true),
    };
    let head_only = request.as_ref().is_some_and(|r| r.method == "HEAD");
    let written = stream.write_all(&response.to_bytes(head_only, SystemTime::now()));
    let (method, path) = request.as_ref().map_or(("-", "-"), |r| (r.method.as_str(), r.path.as_str()));
    access_log(method, path, response.status, start.elapsed());
    if let Err(e) = written {
        eprintln!("write failed: {e}");
        return;
    }
    let _ = stream.shutdown(Shutdown::Write);
    if unread_input {
        drain(&mut stream);
    }
}

/// Reads up to the end of the request head and parses it; also says whether bytes
/// beyond the head were received.
fn read_request(stream: &mut TcpStream, deadline: Instant) -> Result<(Request, bool), ReadFailure> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadFailure::TimedOut);
        }
        stream.set_read_timeout(Some(left.min(IO_TIMEOUT))).map_err(ReadFailure::Io)?;
        let n = match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err(ReadFailure::Closed),
            Ok(0) => {
                return Err(ReadFailure::Invalid(ParseError::Malformed("connection closed mid-request")));
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadFailure::Io(e)),
        };
        let searched = buf.len().saturating_sub(2);
        buf.extend_from_slice(&chunk[..n]);
        // Empty lines before the request line are ignored (RFC 9112, section 2.2).
        if buf.iter().all(|&b| b == b'\r' || b == b'\n') {
            buf.clear();
            continue;
        }
        let start = buf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(0);
        if let Some(end) = head_end(&buf[searched.max(start)..]).map(|e| e + searched.max(start)) {
            if end - start > MAX_HEAD {
                return Err(ReadFailure::Invalid(ParseError::TooLarge));
            }
            let request = parse_head(&buf[start..end]).map_err(ReadFailure::Invalid)?;
            return Ok((request, buf.len() > end));
        }
        if buf.len() - start > MAX_HEAD {
            return Err(ReadFailure::Invalid(ParseError::TooLarge));
        }
    }
}

/// Reads and discards what the client still sends (bounded in time and size), so
/// that closing the socket with unread input does not send a reset that could
/// destroy the answer before the client reads it.
fn drain(stream: &mut TcpStream) {
    let until = Instant::now() + LINGER;
    let mut chunk = [0u8; 4096];
    let mut total = 0;
    while total < LINGER_BYTES {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

/// One plain-text line per request on stdout: method, path (no query), status, duration.
fn access_log(method: &str, path: &str, status: u16, took: Duration) {
    // Paths are printable ASCII (checked by the parser); keep lines short all the same.
    let path = &path[..path.len().min(512)];
    let ms = took.as_secs_f64() * 1000.0;
    let line = format!("{method} {path} {status} {ms:.3}ms");
    // Not `println!`, which panics when stdout is closed: a lost log line must not
    // take the server down. Tests use it anyway, because the test harness captures it.
    #[cfg(not(test))]
    let _ = writeln!(io::stdout().lock(), "{line}");
    #[cfg(test)]
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Request, ParseError> {
        let end = head_end(raw.as_bytes()).expect("complete head");
        parse_head(&raw.as_bytes()[..end])
    }

    #[test]
    fn finds_the_end_of_the_head() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\n"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: a\n\n"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r"), None);
        assert_eq!(head_end(b""), None);
    }

    #[test]
    fn parses_a_request() {
        let r = parse("GET /version?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent:  curl/8 \r\nX-Empty:\r\n\r\n")
            .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/version?x=1");
        assert_eq!(r.path, "/version");
        assert_eq!(r.version, "HTTP/1.1");
        assert_eq!(r.header("user-agent"), Some("curl/8"));
        assert_eq!(r.header("HOST"), Some("example.com"));
        assert_eq!(r.header("x-empty"), Some(""));
        assert_eq!(r.header("missing"), None);
        assert!(!r.has_body());
    }

    #[test]
    fn accepts_http_1_0_without_host_and_bare_lf() {
        let r = parse("HEAD / HTTP/1.0\n\n").unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str(), r.version.as_str()), ("HEAD", "/", "HTTP/1.0"));
        assert!(r.headers.is_empty());
    }

    #[test]
    fn request_target_forms() {
        assert_eq!(path_of("/a/b?c=d"), Some("/a/b"));
        assert_eq!(path_of("/a#frag"), Some("/a"));
        assert_eq!(path_of("/"), Some("/"));
        assert_eq!(path_of("http://example.com/healthz?x"), Some("/healthz"));
        assert_eq!(path_of("HTTPS://example.com:8443/v"), Some("/v"));
        assert_eq!(path_of("http://example.com"), Some("/"));
        assert_eq!(path_of("http://example.com?q=/x"), Some("/"));
        assert_eq!(path_of("*"), Some("*"));
        assert_eq!(path_of("example.com:443"), None);
        assert_eq!(path_of("healthz"), None);
    }

    #[test]
    fn rejects_malformed_heads() {
        for raw in [
            "GET /\r\nHost: a\r\n\r\n",                       // no version
            "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",             // double space
            "GET / HTTP/1.1 x\r\nHost: a\r\n\r\n",            // four parts
            "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",              // method is not a token
            "GET healthz HTTP/1.1\r\nHost: a\r\n\r\n",        // not a target form
            "GET / HTTX/1.1\r\nHost: a\r\n\r\n",              // not HTTP
            "GET / http/1.1\r\nHost: a\r\n\r\n",              // the version is case-sensitive
            "GET / HTTP/1.1\r\n\r\n",                         // HTTP/1.1 without Host
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",   // two Hosts
            "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",   // header without colon
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",             // space before the colon
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",   // obs-fold
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", // control character
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",   // bare CR
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let got = parse(raw);
            assert!(matches!(got, Err(ParseError::Malformed(_))), "{raw:?} gave {got:?}");
            assert_eq!(got.unwrap_err().status(), 400);
        }
        assert_eq!(parse_head(b"\x7f\x00"), Err(ParseError::Malformed("request line is not `METHOD TARGET HTTP/1.1`")));
    }

    #[test]
    fn other_http_versions_get_505() {
        assert_eq!(parse("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), Err(ParseError::VersionNotSupported));
        assert_eq!(ParseError::VersionNotSupported.status(), 505);
    }

    #[test]
    fn heads_over_the_limit_get_431() {
        let raw = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "y".repeat(MAX_HEAD));
        assert_eq!(parse(&raw), Err(ParseError::TooLarge));
        assert_eq!(ParseError::TooLarge.status(), 431);
    }

    #[test]
    fn notices_a_body() {
        assert!(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").unwrap().has_body());
        assert!(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap().has_body());
        assert!(!parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 00\r\n\r\n").unwrap().has_body());
    }

    #[test]
    fn writes_responses() {
        let at = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let r = Response::text(200, "ok").with_header("Allow", "GET, HEAD");
        let expected_head = "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/plain; charset=utf-8\r\nAllow: GET, HEAD\r\n\
             Content-Length: 2\r\nConnection: close\r\n\r\n";
        assert_eq!(String::from_utf8(r.to_bytes(false, at)).unwrap(), format!("{expected_head}ok"));
        assert_eq!(String::from_utf8(r.to_bytes(true, at)).unwrap(), expected_head);
    }

    #[test]
    fn formats_http_dates() {
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(1_767_225_599)), "Wed, 31 Dec 2025 23:59:59 GMT");
    }
}
