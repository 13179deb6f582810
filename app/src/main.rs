//! A small HTTP service: `/healthz` for the load balancer, `/version` for people.
//!
//! Configuration, all from the environment:
//! - `PORT`: the port to listen on, on every interface (default 8080);
//! - `APP_COMMIT`: the commit the image was built from (set in the Dockerfile);
//! - `APP_IMAGE_TAG`: the tag the image was deployed as (set by the task definition).

mod http;
mod routes;
mod signal;

use std::net::{Ipv4Addr, TcpListener};
use std::process::ExitCode;

/// Worker threads; each serves one connection at a time.
const WORKERS: usize = 8;
const DEFAULT_PORT: u16 = 8080;

#[derive(Debug, PartialEq, Eq)]
struct Config {
    port: u16,
    info: routes::Info,
}

impl Config {
    fn from_env() -> Result<Config, String> {
        Config::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// `lookup` reads a variable; unset and empty are the same.
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let get = |name| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let port = match get("PORT") {
            None => DEFAULT_PORT,
            Some(p) => p.parse().map_err(|_| format!("PORT must be a port number (0 to 65535), not {p:?}"))?,
        };
        let info = routes::Info {
            commit: get("APP_COMMIT"),
            image_tag: get("APP_IMAGE_TAG"),
            version: env!("CARGO_PKG_VERSION"),
        };
        Ok(Config { port, info })
    }
}

fn main() -> ExitCode {
    // First, so that a stop during start-up is orderly too.
    if let Err(e) = signal::install() {
        eprintln!("app: cannot install the SIGTERM handler: {e}");
        return ExitCode::FAILURE;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("app: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, config.port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("app: cannot listen on port {}: {e}", config.port);
            return ExitCode::FAILURE;
        }
    };
    let info = config.info;
    match listener.local_addr() {
        Ok(addr) => println!(
            "app {} listening on {addr} (commit {}, image tag {})",
            info.version,
            info.commit.as_deref().unwrap_or("unknown"),
            info.image_tag.as_deref().unwrap_or("none"),
        ),
        Err(e) => eprintln!("app: listening, but on which address? {e}"),
    }
    let stopped = http::serve(listener, WORKERS, move |request| routes::handle(&info, request));
    eprintln!("app: server stopped: {stopped}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpStream};
    use std::time::Duration;

    #[test]
    fn config_defaults_and_overrides() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.port, 8080);
        assert_eq!((config.info.commit, config.info.image_tag), (None, None));
        assert_eq!(config.info.version, env!("CARGO_PKG_VERSION"));

        let env = |name: &str| match name {
            "PORT" => Some(" 18080 ".to_string()),
            "APP_COMMIT" => Some("abc".to_string()),
            "APP_IMAGE_TAG" => Some(String::new()),
            _ => None,
        };
        let config = Config::from_lookup(env).unwrap();
        assert_eq!(config.port, 18080);
        assert_eq!(config.info.commit.as_deref(), Some("abc"));
        assert_eq!(config.info.image_tag, None);

        for bad in ["http", "65536", "-1"] {
            assert!(Config::from_lookup(|n| (n == "PORT").then(|| bad.to_string())).is_err(), "{bad}");
        }
    }

    /// The server, on an ephemeral loopback port, in this process.
    fn start(info: routes::Info) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || http::serve(listener, 2, move |request| routes::handle(&info, request)));
        addr
    }

    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        }
    }

    /// Sends `raw` as is and reads the answer up to the server's close.
    fn send(addr: SocketAddr, raw: &[u8]) -> Reply {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(raw).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").expect("a complete head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status = status_line[9..12].parse().unwrap();
        let headers = lines.map(|l| l.split_once(": ").unwrap()).map(|(n, v)| (n.to_string(), v.to_string())).collect();
        let reply = Reply { status, headers, body: body.to_string() };
        assert_eq!(reply.header("Connection"), Some("close"));
        reply
    }

    fn get(addr: SocketAddr, method: &str, path: &str) -> Reply {
        send(addr, format!("{method} {path} HTTP/1.1\r\nHost: test\r\nUser-Agent: test\r\n\r\n").as_bytes())
    }

    fn info() -> routes::Info {
        routes::Info {
            commit: Some("a".repeat(40)),
            image_tag: Some("b".repeat(40)),
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    #[test]
    fn serves_over_tcp() {
        let addr = start(info());

        let r = get(addr, "GET", "/healthz");
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        assert_eq!(r.header("Content-Length"), Some("2"));
        assert!(r.header("Date").is_some_and(|d| d.ends_with(" GMT")));

        let r = get(addr, "GET", "/version?pretty");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        let expected = format!(
            r#"{{"commit":"{}","image_tag":"{}","version":"{}"}}"#,
            "a".repeat(40),
            "b".repeat(40),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(r.body, expected);
        assert_eq!(r.header("Content-Length"), Some(expected.len().to_string().as_str()));

        let r = get(addr, "GET", "/");
        assert_eq!(r.status, 200);
        assert!(r.body.contains("hello service"), "{}", r.body);

        let r = get(addr, "HEAD", "/healthz");
        assert_eq!((r.status, r.body.as_str()), (200, ""));
        assert_eq!(r.header("Content-Length"), Some("2"));

        let r = get(addr, "GET", "/nope");
        assert_eq!(r.status, 404);
        assert_eq!(get(addr, "POST", "/nope").status, 404);

        for method in ["POST", "PUT", "DELETE", "OPTIONS", "get"] {
            let r = get(addr, method, "/healthz");
            assert_eq!(r.status, 405, "{method}");
            assert_eq!(r.header("Allow"), Some("GET, HEAD"));
        }
    }

    #[test]
    fn refuses_bad_requests_over_tcp() {
        let addr = start(info());
        assert_eq!(send(addr, b"nonsense\r\n\r\n").status, 400);
        assert_eq!(send(addr, b"GET /healthz HTTP/1.1\r\n\r\n").status, 400, "no Host");
        assert_eq!(send(addr, b"GET /healthz HTTP/3.0\r\nHost: a\r\n\r\n").status, 505);
        let huge = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "y".repeat(http::MAX_HEAD));
        assert_eq!(send(addr, huge.as_bytes()).status, 431);

        // Still sending when the answer comes: the answer must arrive intact.
        let r = send(
            addr,
            format!("POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 20000\r\n\r\n{}", "z".repeat(20_000))
                .as_bytes(),
        );
        assert_eq!(r.status, 405);

        // Connection closed halfway through the head.
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");

        // Empty lines before the request line are skipped; HTTP/1.0 needs no Host.
        let r = send(addr, b"\r\nGET /healthz HTTP/1.0\r\n\r\n");
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    }

    #[test]
    fn answers_requests_that_arrive_in_pieces() {
        let addr = start(info());
        let mut stream = TcpStream::connect(addr).unwrap();
        for piece in ["GET /hea", "lthz HTTP/1.1\r", "\nHost: a\r\n", "\r", "\n"] {
            stream.write_all(piece.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\nok"), "{answer}");
    }

    #[test]
    fn serves_many_clients_at_once() {
        let addr = start(info());
        let clients: Vec<_> =
            (0..32).map(|_| std::thread::spawn(move || get(addr, "GET", "/healthz").status)).collect();
        for client in clients {
            assert_eq!(client.join().unwrap(), 200);
        }
    }
}
