//! The built binary as a process: configured from the environment, serving HTTP on
//! the port it logs, and stopped by SIGTERM or SIGINT with exit status 0.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The app on an ephemeral port, killed when dropped (if a test fails midway).
struct App {
    child: Child,
    port: u16,
    stdout: BufReader<ChildStdout>,
    /// The first log line, parsed.
    listening: Value,
}

impl App {
    fn start(image_tag: Option<&str>) -> App {
        let mut command = Command::new(env!("CARGO_BIN_EXE_app"));
        command.env("PORT", "0").env("APP_COMMIT", "c0ffee").env_remove("RUST_LOG").stdout(Stdio::piped());
        match image_tag {
            Some(tag) => command.env("APP_IMAGE_TAG", tag),
            None => command.env_remove("APP_IMAGE_TAG"),
        };
        let mut child = command.spawn().expect("the app starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let listening: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert_eq!(listening["message"], "listening", "{line}");
        let addr = listening["addr"].as_str().unwrap_or_else(|| panic!("no addr in {line}"));
        assert!(addr.starts_with("0.0.0.0:"), "{addr}");
        let port = addr.rsplit_once(':').unwrap().1.parse().unwrap();
        App { child, port, stdout, listening }
    }

    /// Sends one request (`Connection: close`) and reads the answer up to the close.
    fn request(&self, method: &str, path: &str) -> Reply {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(stream, "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head in {answer:?}"));
        let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{head}"));
        Reply { status, head: head.to_string(), body: body.to_string() }
    }

    /// Sends `signal` (`TERM`, `INT`), expects exit status 0 within 5 s, and returns
    /// the log lines written after the first.
    fn stop(mut self, signal: &str) -> Vec<Value> {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
        let sent = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(sent.elapsed() < Duration::from_secs(5), "still running after SIG{signal}");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.code(), Some(0), "SIG{signal} gave {status}");
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        rest.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"))).collect()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(": "))
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

#[test]
fn serves_its_routes_and_logs_requests() {
    let app = App::start(None);
    assert_eq!(app.listening["commit"], "c0ffee");
    assert_eq!(app.listening["level"], "INFO");

    let r = app.request("GET", "/healthz");
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    assert_eq!(r.header("Cache-Control"), Some("no-store"));

    let r = app.request("GET", "/version");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let version: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(version, json!({"commit": "c0ffee", "image_tag": null, "version": env!("CARGO_PKG_VERSION")}));

    let r = app.request("GET", "/");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("/healthz"), "{}", r.body);

    let r = app.request("HEAD", "/healthz");
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    assert_eq!(r.header("Content-Length"), Some("2"));

    assert_eq!(app.request("GET", "/nope").status, 404);
    assert_eq!(app.request("POST", "/nope").status, 404);
    for method in ["POST", "PUT", "DELETE"] {
        let r = app.request(method, "/version");
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("Allow"), Some("GET,HEAD"), "{method}");
    }

    let logs = app.stop("TERM");
    let healthz = logs.iter().find(|l| l["message"] == "request" && l["path"] == "/healthz").expect("a request log");
    assert_eq!((&healthz["method"], &healthz["status"]), (&json!("GET"), &json!(200)));
    assert!(healthz["latency_ms"].is_f64(), "{healthz}");
    assert!(logs.iter().any(|l| l["message"] == "request" && l["path"] == "/nope" && l["status"] == 404));
    assert_eq!(logs.last().unwrap()["message"], "shutting down");
}

#[test]
fn reports_the_image_tag() {
    let app = App::start(Some(" main-c0ffee "));
    let version: Value = serde_json::from_str(&app.request("GET", "/version").body).unwrap();
    assert_eq!(version["image_tag"], "main-c0ffee");
}

#[test]
fn sigint_exits_0() {
    let app = App::start(None);
    assert_eq!(app.request("GET", "/healthz").status, 200);
    let logs = app.stop("INT");
    assert!(logs.iter().any(|l| l["message"] == "shutting down"), "{logs:?}");
}

#[test]
fn sigterm_when_idle_exits_0() {
    let logs = App::start(None).stop("TERM");
    assert_eq!(logs.iter().map(|l| l["message"].as_str().unwrap()).collect::<Vec<_>>(), ["shutting down"]);
}

#[test]
fn a_bad_port_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_app")).env("PORT", "eighty").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("app: invalid PORT \"eighty\""), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_busy_port_fails() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_app")).env("PORT", &port).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(log["level"], "ERROR");
    assert!(log["message"].as_str().unwrap().starts_with(&format!("cannot listen on port {port}: ")), "{log}");
}
