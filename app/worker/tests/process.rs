//! The built binary as a process: it ticks, reports its ticks over HTTP on the port
//! it logs, answers `worker healthcheck`, and stops on SIGTERM or SIGINT with status 0.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// The worker on an ephemeral port, ticking every second; killed when dropped.
struct Worker {
    child: Child,
    port: u16,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn start() -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_worker"))
            .envs([("PORT", "0"), ("WORK_INTERVAL_SECS", "1"), ("APP_COMMIT", "c0ffee")])
            .env_remove("APP_IMAGE_TAG")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the worker starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let listening: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert_eq!((&listening["message"], &listening["interval_secs"]), (&json!("listening"), &json!(1)), "{line}");
        let addr = listening["addr"].as_str().unwrap_or_else(|| panic!("no addr in {line}"));
        let port = addr.strip_prefix("0.0.0.0:").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{addr}"));
        Worker { child, port, stdout }
    }

    /// `GET path` (`Connection: close`): the status and the body.
    fn get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head in {answer:?}"));
        (head[9..12].parse().unwrap(), body.to_string())
    }

    fn version(&self) -> Value {
        let (status, body) = self.get("/version");
        assert_eq!(status, 200);
        serde_json::from_str(&body).unwrap()
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

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn healthcheck(port: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_worker")).arg("healthcheck").env("PORT", port).output().unwrap()
}

#[test]
fn ticks_and_reports_them() {
    let worker = Worker::start();
    assert_eq!(worker.get("/healthz"), (200, "ok".to_string()));

    let first = worker.version();
    assert_eq!((&first["commit"], &first["image_tag"]), (&json!("c0ffee"), &Value::Null));
    assert_eq!(first["version"], env!("CARGO_PKG_VERSION"));
    let ticks = first["ticks"].as_u64().unwrap();
    assert!(ticks >= 1, "the first tick runs at once: {first}");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(first["last_tick_unix"].as_u64().is_some_and(|t| t.abs_diff(now) <= 2), "{first}");

    let deadline = Instant::now() + Duration::from_secs(10);
    while worker.version()["ticks"].as_u64().unwrap() < ticks + 2 {
        assert!(Instant::now() < deadline, "no more ticks after {first}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let out = healthcheck(&worker.port.to_string());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    let logs = worker.stop("TERM");
    let counts: Vec<u64> =
        logs.iter().filter(|l| l["message"] == "tick").map(|l| l["count"].as_u64().unwrap()).collect();
    assert!(counts.len() >= 2 && counts.windows(2).all(|w| w[1] == w[0] + 1), "{counts:?}");
    assert!(logs.iter().any(|l| l["message"] == "request" && l["path"] == "/healthz" && l["status"] == 200));
    // Not necessarily the last line: a tick may run while the server drains.
    assert!(logs.iter().any(|l| l["message"] == "shutting down"), "{logs:?}");
}

#[test]
fn sigint_exits_0() {
    let logs = Worker::start().stop("INT");
    assert!(logs.iter().any(|l| l["message"] == "shutting down"), "{logs:?}");
}

#[test]
fn healthcheck_fails_on_a_closed_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = healthcheck(&port.to_string());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("worker healthcheck: 127.0.0.1:") && stderr.lines().count() == 1, "{stderr}");
    assert_eq!(healthcheck("http").status.code(), Some(1), "a bad PORT is unhealthy too (2 is reserved)");
}

#[test]
fn bad_settings_exit_2_with_one_line() {
    for (name, value) in [("WORK_INTERVAL_SECS", "0"), ("WORK_INTERVAL_SECS", "soon"), ("PORT", "eighty")] {
        let out = Command::new(env!("CARGO_BIN_EXE_worker")).env(name, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.starts_with(&format!("worker: invalid {name} ")) && stderr.lines().count() == 1, "{stderr}");
        assert!(out.stdout.is_empty());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_worker")).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
