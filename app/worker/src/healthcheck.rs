//! `worker healthcheck`: GET `/healthz` on this container's port, for a container
//! health check (the runtime image has no curl). Exits 0 on 200, 1 otherwise.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);

/// `GET http://127.0.0.1:{port}/healthz`: Ok on 200, else why not.
pub fn check(port: u16) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let status_line = get_healthz(addr).map_err(|e| format!("{addr}: {e}"))?;
    match status_line.starts_with("HTTP/1.1 200 ") {
        true => Ok(()),
        false => Err(format!("{addr}: {status_line}")),
    }
}

fn get_healthz(addr: SocketAddr) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    Ok(answer.lines().next().unwrap_or("no answer").to_string())
}
