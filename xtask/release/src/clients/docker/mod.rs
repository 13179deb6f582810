//! The Docker Engine API through bollard: connect and negotiate.

use anyhow::{Context, Result, bail};
use bollard::Docker;

/// The oldest Engine API this tool speaks (Docker 20.10).
const MIN_API: (usize, usize) = (1, 41);

/// Connects to the daemon `DOCKER_HOST` names (the default socket otherwise) and
/// negotiates the API version.
pub async fn connect() -> Result<Docker> {
    let host = docker_host();
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
    let docker = docker.negotiate_version().await.with_context(no_daemon)?;
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
