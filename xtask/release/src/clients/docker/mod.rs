//! The Docker Engine API through bollard: connect and negotiate.

use anyhow::{Context, Result, bail};
use bollard::Docker;

/// The oldest Engine API this tool speaks (Docker 20.10).
const MIN_API: (usize, usize) = (1, 41);

/// Connects to the daemon `DOCKER_HOST` names (the default socket otherwise) and
/// negotiates the API version.
pub async fn connect() -> Result<Docker> {
    let host = docker_host();
    match exposure(&host, tls_verify()) {
        Exposure::Private => {}
        Exposure::Clear(warning) => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| eprintln!("warning: {warning}"));
        }
        Exposure::Public(refusal) => bail!("{refusal}"),
    }
    let no_daemon =
        || format!("no Docker daemon answers at {host}; start dockerd, or point DOCKER_HOST at a running daemon");
    let docker = match host.starts_with("ssh://") {
        // bollard is built without its ssh client: requests go through `ssh` as the docker CLI's do.
        true => {
            let endpoint = endpoint::Endpoint::from_env()?;
            Docker::connect_with_custom_transport(
                endpoint.transport(),
                Some("http://docker"),
                120,
                bollard::API_DEFAULT_VERSION,
            )
            .with_context(no_daemon)?
        }
        false => Docker::connect_with_defaults().with_context(no_daemon)?,
    };
    // Bounds the connection's opening (bollard has no connect timeout of its own) and the
    // first answer: a daemon that does not answer this is not one to build on.
    let docker = tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
        .await
        .map_err(|_| anyhow::anyhow!("{} within {}s", no_daemon(), CONNECT_TIMEOUT.as_secs()))?
        .with_context(no_daemon)?;
    let version = docker.version().await.with_context(|| format!("the Docker daemon at {host} did not answer"))?;
    let api = version.api_version.unwrap_or_default();
    if parse_api(&api) < MIN_API {
        bail!(
            "the Docker daemon at {host} speaks API {api}, older than {}.{}; upgrade Docker to 20.10 or newer",
            MIN_API.0,
            MIN_API.1
        );
    }
    Ok(docker)
}

/// The engine, for a line of output: `dockerd 26.1.5 (API 1.45, containerd image store) at
/// unix:///var/run/docker.sock`.
pub async fn describe(docker: &Docker) -> String {
    let host = docker_host();
    let version = docker.version().await.ok();
    let info = docker.info().await.ok();
    let server = version.as_ref().and_then(|v| v.version.clone()).unwrap_or_else(|| "?".into());
    let api = version.as_ref().and_then(|v| v.api_version.clone()).unwrap_or_else(|| "?".into());
    let containerd = info
        .as_ref()
        .and_then(|i| i.driver_status.as_ref())
        .is_some_and(|status| status.iter().flatten().any(|s| s.contains("containerd.snapshotter")));
    let store = match containerd {
        true => "containerd image store".to_string(),
        false => info.and_then(|i| i.driver).map(|d| format!("{d} storage driver")).unwrap_or_default(),
    };
    format!("dockerd {server} (API {api}, {store}) at {host}")
}

/// How long reaching the daemon may take: the connection and its first answer.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Is TLS on for a `tcp://` daemon (`DOCKER_TLS_VERIFY` set and not empty), as the docker
/// CLI and the BuildKit session's own connection read it?
pub fn tls_verify() -> bool {
    std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty())
}

/// What reaching the daemon at `host` exposes: the registry credentials a push hands it
/// (`X-Registry-Auth`, a BuildKit session's answers) cross the network in clear text over
/// `tcp://` without TLS.
#[derive(Debug, PartialEq, Eq)]
pub enum Exposure {
    /// Nothing: a socket, ssh, TLS, or a loopback address.
    Private,
    /// Clear text on a network that is probably not the internet (a private or link-local
    /// address, a host name such as docker-in-docker's `docker`): a warning.
    Clear(String),
    /// Clear text to a globally routable address: refused.
    Public(String),
}

/// How exposed `host` (a `DOCKER_HOST` value) is, with TLS on or off; decided from the
/// value alone, before any connection or name lookup.
pub fn exposure(host: &str, tls: bool) -> Exposure {
    let Some(address) = host.strip_prefix("tcp://").or_else(|| host.strip_prefix("http://")) else {
        return Exposure::Private;
    };
    if tls {
        return Exposure::Private;
    }
    let authority = address.split('/').next().unwrap_or_default();
    let name = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(name, _)| name),
    };
    let fix =
        "turn on TLS with DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH (a directory with ca.pem, cert.pem and key.pem)";
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.to_canonical().is_loopback() => Exposure::Private,
        Ok(ip) if is_global(ip) => Exposure::Public(format!(
            "refusing to use the Docker daemon at {host}: it is a public address reached without TLS, and registry credentials would travel to it in clear text; {fix}, or reach it over ssh://"
        )),
        Err(_) if name.eq_ignore_ascii_case("localhost") => Exposure::Private,
        _ => Exposure::Clear(format!(
            "the Docker daemon at {host} is reached without TLS: registry credentials travel to it in clear text; {fix}"
        )),
    }
}

/// Is `ip` globally routable: not private, loopback, link-local, shared (CGNAT),
/// documentation, benchmarking, multicast or reserved space?
fn is_global(ip: std::net::IpAddr) -> bool {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b)))
        }
        std::net::IpAddr::V6(v6) => {
            let [first, second, ..] = v6.segments();
            // Global unicast is 2000::/3; 2001:db8::/32 is for documentation.
            (first & 0xe000) == 0x2000 && !(first == 0x2001 && second == 0x0db8)
        }
    }
}

/// The daemon's address: `DOCKER_HOST`, else the default socket (as the docker CLI reads it).
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

fn parse_api(api: &str) -> (usize, usize) {
    let (major, minor) = api.split_once('.').unwrap_or((api, "0"));
    (major.parse().unwrap_or(0), minor.parse().unwrap_or(0))
}

/// Builds `context` as `tag` with `builder` (no build arguments, labels or target) and
/// returns the image id: what the parity tests compare with the docker CLI's builds.
pub async fn build_context(
    docker: &Docker,
    context: &crate::domain::context::BuildContext,
    tag: &str,
    builder: BuilderChoice,
) -> Result<String> {
    let spec = build::BuildSpec {
        name: tag,
        context,
        tag: tag.to_string(),
        build_args: Default::default(),
        labels: Default::default(),
        target: None,
        platform: None,
        network: None,
        builder,
        cache_from: vec![],
        registry: None,
    };
    build::build(docker, &spec, &crate::support::progress::Progress::detect()).await
}

pub use build::BuilderChoice;

pub mod build;
pub mod endpoint;
pub mod push;
pub mod session;

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(host: &str) -> &'static str {
        match exposure(host, false) {
            Exposure::Private => "private",
            Exposure::Clear(_) => "warn",
            Exposure::Public(_) => "refuse",
        }
    }

    #[test]
    fn plain_tcp_to_a_public_address_is_refused_and_elsewhere_warned() {
        for host in ["unix:///var/run/docker.sock", "ssh://me@build-host", "https://203.0.113.9:2376"] {
            assert_eq!(verdict(host), "private", "{host}");
        }
        for host in ["tcp://127.0.0.1:2375", "tcp://localhost:2375", "tcp://[::1]:2375", "http://127.0.0.2:2375/"] {
            assert_eq!(verdict(host), "private", "{host}");
        }
        for host in [
            "tcp://docker:2375",
            "tcp://docker",
            "tcp://build.internal.example:2375",
            "tcp://10.1.2.3:2375",
            "tcp://172.17.0.2:2375",
            "tcp://192.168.1.20:2375",
            "tcp://169.254.1.1:2375",
            "tcp://100.64.0.1:2375",
            "tcp://[fd00::1]:2375",
            "tcp://[fe80::1]:2375",
            "tcp://0.0.0.0:2375",
        ] {
            assert_eq!(verdict(host), "warn", "{host}");
        }
        for host in
            ["tcp://8.8.8.8:2375", "http://52.1.2.3:2375/", "tcp://[2a00:1450::1]:2375", "tcp://[::ffff:8.8.8.8]:2375"]
        {
            assert_eq!(verdict(host), "refuse", "{host}");
        }
        // With TLS, a public address is fine (bollard and the session both speak TLS then).
        assert_eq!(exposure("tcp://8.8.8.8:2376", true), Exposure::Private);
        assert_eq!(exposure("http://8.8.8.8:2376", true), Exposure::Private);
    }

    #[test]
    fn the_warning_names_the_host_and_how_to_turn_on_tls() {
        let Exposure::Clear(warning) = exposure("tcp://docker:2375", false) else { panic!("not a warning") };
        assert!(!warning.contains('\n'), "{warning}");
        for part in ["tcp://docker:2375", "clear text", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"] {
            assert!(warning.contains(part), "{part}: {warning}");
        }
    }
}
