//! The built binary as a process: configured from the environment, and stopped by
//! SIGTERM or SIGINT with exit status 0.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The app on an ephemeral port (`PORT=0`); returns the process, its port and its stdout.
fn spawn_app() -> (Child, u16, BufReader<ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_app"))
        .env("PORT", "0")
        .env("APP_COMMIT", "c0ffee")
        .env_remove("APP_IMAGE_TAG")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the app starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    // "app 0.1.0 listening on 0.0.0.0:PORT (commit …, image tag …)"
    let port = line
        .split_once(" listening on ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|addr| addr.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (child, port, stdout)
}

fn get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn stop_with(signal: i32) {
    let (mut child, port, mut stdout) = spawn_app();
    let answer = get(port, "/version");
    assert!(
        answer
            .ends_with(&format!(r#"{{"commit":"c0ffee","image_tag":null,"version":"{}"}}"#, env!("CARGO_PKG_VERSION"))),
        "{answer}"
    );
    let mut log = String::new();
    stdout.read_line(&mut log).unwrap();
    assert!(log.starts_with("GET /version 200 ") && log.ends_with("ms\n"), "{log:?}");

    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    // SAFETY: kill(2) with a child's pid; it has not been waited for, so the pid is its.
    assert_eq!(unsafe { kill(child.id() as i32, signal) }, 0);
    let sent = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0), "signal {signal} gave {status}");
            break;
        }
        assert!(sent.elapsed() < Duration::from_secs(5), "still running after signal {signal}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_exits_0() {
    stop_with(15);
}

#[test]
fn sigint_exits_0() {
    stop_with(2);
}

#[test]
fn a_bad_port_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_app")).env("PORT", "eighty").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PORT"));
}
