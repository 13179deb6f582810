//! Counts the build requests a client sends to the Docker daemon: a Unix socket
//! that forwards every byte both ways and counts `POST /[vX.Y/]build` request lines
//! on the way in. It runs on a thread of its own, so the bench may block on children.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UnixStream,
};

pub struct BuildCounter {
    socket: PathBuf,
    builds: Arc<AtomicU64>,
}

impl BuildCounter {
    /// Listens on `socket`, forwarding to the daemon `DOCKER_HOST` names (a Unix socket).
    pub fn start(socket: &Path) -> Result<BuildCounter> {
        let upstream = daemon_socket()?;
        if socket.exists() {
            std::fs::remove_file(socket).with_context(|| format!("cannot remove the stale {}", socket.display()))?;
        }
        let listener = std::os::unix::net::UnixListener::bind(socket)
            .with_context(|| format!("cannot listen on {}", socket.display()))?;
        listener.set_nonblocking(true)?;
        let builds = Arc::new(AtomicU64::new(0));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let counted = builds.clone();
        std::thread::Builder::new().name("build-counter".into()).spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::UnixListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(err) => return eprintln!("build counter: {err}"),
                };
                loop {
                    match listener.accept().await {
                        Ok((client, _)) => {
                            let (upstream, counted) = (upstream.clone(), counted.clone());
                            tokio::spawn(async move {
                                if let Err(err) = forward(client, &upstream, &counted).await {
                                    eprintln!("build counter: {err}");
                                }
                            });
                        }
                        Err(err) => return eprintln!("build counter: cannot accept: {err}"),
                    }
                }
            })
        })?;
        Ok(BuildCounter { socket: socket.to_path_buf(), builds })
    }

    /// `DOCKER_HOST` for a client whose build requests are to be counted.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Build requests seen since the last call.
    pub fn take(&self) -> u64 {
        self.builds.swap(0, Ordering::SeqCst)
    }
}

impl Drop for BuildCounter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The daemon's socket: `DOCKER_HOST` when it is `unix://`, else the default one.
fn daemon_socket() -> Result<PathBuf> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => Ok(PathBuf::from(host.trim_start_matches("unix://"))),
        Ok(host) if !host.is_empty() => {
            bail!("DOCKER_HOST is {host}; the build-request counter needs a daemon on a Unix socket (unix://...)")
        }
        _ => Ok(PathBuf::from("/var/run/docker.sock")),
    }
}

async fn forward(client: UnixStream, upstream: &Path, builds: &AtomicU64) -> std::io::Result<()> {
    let daemon = UnixStream::connect(upstream).await?;
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_daemon, mut to_daemon) = daemon.into_split();
    let requests = async {
        let (mut scanner, mut buf) = (Scanner::default(), vec![0u8; 64 * 1024]);
        loop {
            let n = from_client.read(&mut buf).await?;
            if n == 0 {
                return to_daemon.shutdown().await;
            }
            builds.fetch_add(scanner.feed(&buf[..n]), Ordering::SeqCst);
            to_daemon.write_all(&buf[..n]).await?;
        }
    };
    let responses = async {
        tokio::io::copy(&mut from_daemon, &mut to_client).await?;
        to_client.shutdown().await
    };
    tokio::try_join!(requests, responses).map(drop)
}

/// Finds build request lines in a byte stream that arrives in pieces. It looks for
/// them anywhere (not only at message starts), so it may over-count, never under-count.
#[derive(Default)]
struct Scanner {
    /// The last bytes seen, so a request line split between two reads is found.
    tail: Vec<u8>,
}

const METHOD: &[u8] = b"POST /";
/// Longer than any match (`POST /v1.41/build?`).
const TAIL: usize = 32;

impl Scanner {
    fn feed(&mut self, chunk: &[u8]) -> u64 {
        let mut window = std::mem::take(&mut self.tail);
        let seen = window.len();
        window.extend_from_slice(chunk);
        let mut found = 0;
        for start in 0..window.len() {
            if window[start..].starts_with(METHOD)
                && let Some(len) = build_path(&window[start + METHOD.len()..])
                // A match that ended inside the old tail was counted by the previous call.
                && start + METHOD.len() + len > seen
            {
                found += 1;
            }
        }
        self.tail = window[window.len().saturating_sub(TAIL)..].to_vec();
        found
    }
}

/// After `POST /`: `build` or `vX.Y/build`, then `?` or a space. Returns the length.
fn build_path(rest: &[u8]) -> Option<usize> {
    let mut at = 0;
    if rest.first() == Some(&b'v') {
        let digits = rest[1..].iter().take_while(|b| b.is_ascii_digit() || **b == b'.').count();
        if digits > 0 && rest.get(1 + digits) == Some(&b'/') {
            at = digits + 2;
        }
    }
    let path = rest.get(at..)?;
    (path.starts_with(b"build") && matches!(path.get(5), Some(b'?' | b' '))).then_some(at + 6)
}

#[cfg(test)]
mod tests {
    use super::Scanner;

    #[test]
    fn counts_build_requests_split_anywhere() {
        let stream = b"GET /_ping HTTP/1.1\r\n\r\nPOST /v1.41/build?t=x HTTP/1.1\r\n\r\ntar...POST /images/create?x HTTP/1.1\r\nPOST /build HTTP/1.1\r\nPOST /buildx HTTP/1.1\r\n";
        for split in 0..stream.len() {
            let mut scanner = Scanner::default();
            let (a, b) = stream.split_at(split);
            assert_eq!(scanner.feed(a) + scanner.feed(b), 2, "split at {split}");
        }
        let mut scanner = Scanner::default();
        assert_eq!(stream.iter().map(|byte| scanner.feed(&[*byte])).sum::<u64>(), 2);
    }
}
