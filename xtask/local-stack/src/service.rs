//! The local stage's running service: after a deploy, the deployed task definition's
//! container runs on the Docker daemon, pulled from the stage's registry by the reference
//! the task definition holds, with its environment. The daemon's containers share the
//! host's network (a daemon without a bridge has nothing else), so the container gets a
//! free port in `PORT` and answers at `http://127.0.0.1:<port>`. It replaces the previous
//! version once the service stack's health check answers (and, on a stage with a
//! traffic-shifting strategy, once it has kept answering through the bake, the previous one
//! running beside it); a container that exits, or never gets healthy, or fails during the
//! bake, is removed and the previous one keeps serving, as ECS rolls a service back. What runs is named by digest too: the digest the registry named
//! when the daemon pulled the image (kept on the container), which the deploy compares with
//! ECR's, as it compares the digest ECS resolved in AWS.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bollard::{
    Docker,
    auth::DockerCredentials,
    models::{ContainerCreateBody, HostConfig},
    query_parameters::{
        CreateContainerOptions, CreateImageOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
        StartContainerOptions,
    },
};
use futures_util::StreamExt;

use xtask_release::{clients::ecr::RegistryAuth, clients::ecs::Container, clients::http};

/// Labels that find a stack's service containers again (`local status`, `local down`).
const STACK_LABEL: &str = "xtask.local-stack";
const SERVICE_LABEL: &str = "xtask.service";
const URL_LABEL: &str = "xtask.url";
const IMAGE_LABEL: &str = "xtask.image";
const DIGEST_LABEL: &str = "xtask.digest";

/// A container that answers its health check.
#[derive(Debug, Clone)]
pub struct Running {
    pub url: String,
    /// The digest of the image it runs, as the registry named it when the daemon pulled it.
    pub digest: Option<String>,
}

/// What `run` saw.
pub enum Outcome {
    Healthy(Running),
    /// It exited or never got healthy: why, with the end of its log.
    Failed(String),
}

/// How long a new container may take to answer its health check, and how long it then
/// runs beside the previous one before that one goes (zero: at once).
#[derive(Debug, Clone, Copy)]
pub struct Times {
    pub timeout: Duration,
    pub bake: Duration,
}

/// Runs `container` (of the task definition `service` deploys) for the stack in `stack_dir`:
/// pulls its image from `registry`, starts it, waits up to `times.timeout` for
/// `health_path` to answer 200 and watches it keep answering for `times.bake`; then
/// removes the service's previous containers.
pub async fn run(
    docker: &Docker,
    stack_dir: &std::path::Path,
    service: &str,
    container: &Container,
    registry: &RegistryAuth,
    health_path: &str,
    times: Times,
) -> Result<Outcome> {
    let Times { timeout, bake } = times;
    let image = local_reference(&container.image, &registry.host)?;
    let health_client = http::Client::new().with_timeout(Duration::from_secs(2));
    // The service already runs this image and answers: nothing to replace.
    for listed in containers(docker, stack_dir).await? {
        if listed.service == service && listed.image == container.image && listed.running {
            let answers = health_client.get(&format!("{}{health_path}", listed.url), &[]).await;
            if answers.is_ok_and(|r| r.status == hyper::StatusCode::OK) {
                return Ok(Outcome::Healthy(Running { url: listed.url, digest: listed.digest }));
            }
        }
    }
    let digest = pull(docker, &image, registry).await?;
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let stack = stack_dir.display().to_string();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
    let name = format!("xtask-{}-{nanos:x}", sanitize(service));
    let mut env: Vec<String> = container.environment.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.push(format!("PORT={port}"));
    let body = ContainerCreateBody {
        image: Some(image.clone()),
        env: Some(env),
        labels: Some(
            [
                (STACK_LABEL, stack.as_str()),
                (SERVICE_LABEL, service),
                (URL_LABEL, url.as_str()),
                (IMAGE_LABEL, container.image.as_str()),
                (DIGEST_LABEL, digest.as_deref().unwrap_or_default()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ),
        host_config: Some(HostConfig { network_mode: Some("host".into()), init: Some(true), ..Default::default() }),
        ..Default::default()
    };
    docker
        .create_container(Some(CreateContainerOptions { name: Some(name.clone()), ..Default::default() }), body)
        .await
        .with_context(|| format!("cannot create a container of {image}"))?;
    docker
        .start_container(&name, None::<StartContainerOptions>)
        .await
        .with_context(|| format!("cannot start the container of {image}"))?;

    let health = format!("{url}{health_path}");
    let client = health_client;
    let deadline = Instant::now() + timeout;
    let failure = loop {
        let state = docker.inspect_container(&name, None).await.context("cannot inspect the service's container")?;
        let state = state.state.unwrap_or_default();
        if !state.running.unwrap_or(false) {
            break format!(
                "the container of {image} exited with code {} before {health_path} answered; its log ends with: {}",
                state.exit_code.unwrap_or(-1),
                log_tail(docker, &name, 5).await
            );
        }
        if client.get(&health, &[]).await.is_ok_and(|r| r.status == hyper::StatusCode::OK) {
            break String::new();
        }
        if Instant::now() > deadline {
            break format!(
                "the container of {image} did not answer {health_path} with 200 within {}s; its log ends with: {}",
                timeout.as_secs(),
                log_tail(docker, &name, 5).await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Healthy. A traffic-shifting stage keeps the previous version beside it through the
    // bake: a container that exits or stops answering then is rolled back, as ECS does.
    let failure = match failure.is_empty() && !bake.is_zero() {
        true => baked(docker, &name, &image, &client, &health, bake).await?,
        false => failure,
    };
    if !failure.is_empty() {
        remove(docker, &name).await;
        return Ok(Outcome::Failed(failure));
    }
    // Healthy (and baked): the previous versions go.
    for old in containers(docker, stack_dir).await? {
        if old.service == service && old.container != name {
            remove(docker, &old.container).await;
        }
    }
    Ok(Outcome::Healthy(Running { url, digest }))
}

/// Watches the healthy container `name` for `bake`: why it failed, or empty when it kept
/// running and answering `health` throughout.
async fn baked(
    docker: &Docker,
    name: &str,
    image: &str,
    client: &http::Client,
    health: &str,
    bake: Duration,
) -> Result<String> {
    let end = Instant::now() + bake;
    while Instant::now() < end {
        let state = docker.inspect_container(name, None).await.context("cannot inspect the service's container")?;
        let state = state.state.unwrap_or_default();
        if !state.running.unwrap_or(false) {
            return Ok(format!(
                "the container of {image} exited with code {} during the {}s bake, and was rolled back; its log ends with: {}",
                state.exit_code.unwrap_or(-1),
                bake.as_secs(),
                log_tail(docker, name, 5).await
            ));
        }
        if !client.get(health, &[]).await.is_ok_and(|r| r.status == hyper::StatusCode::OK) {
            return Ok(format!(
                "the container of {image} stopped answering {health} during the {}s bake, and was rolled back; its log ends with: {}",
                bake.as_secs(),
                log_tail(docker, name, 5).await
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(String::new())
}

/// A service container of the stack in `stack_dir`.
pub struct Listed {
    pub service: String,
    /// The image as the task definition names it.
    pub image: String,
    pub container: String,
    /// The digest of the image it runs, as the registry named it when it was pulled.
    pub digest: Option<String>,
    pub url: String,
    pub running: bool,
}

/// The service containers of the stack in `stack_dir`.
pub async fn containers(docker: &Docker, stack_dir: &std::path::Path) -> Result<Vec<Listed>> {
    let filter = format!("{STACK_LABEL}={}", stack_dir.display());
    let options = ListContainersOptions {
        all: true,
        filters: Some([("label".to_string(), vec![filter])].into_iter().collect()),
        ..Default::default()
    };
    let listed = docker.list_containers(Some(options)).await.context("cannot list the service containers")?;
    Ok(listed
        .into_iter()
        .filter_map(|c| {
            let labels = c.labels.unwrap_or_default();
            Some(Listed {
                service: labels.get(SERVICE_LABEL)?.clone(),
                image: labels.get(IMAGE_LABEL).cloned().unwrap_or_default(),
                container: c.names?.first()?.trim_start_matches('/').to_string(),
                digest: labels.get(DIGEST_LABEL).filter(|d| !d.is_empty()).cloned(),
                url: labels.get(URL_LABEL).cloned().unwrap_or_default(),
                running: c.state.is_some_and(|s| s.to_string() == "running"),
            })
        })
        .collect())
}

/// Stops and removes every service container of the stack; returns their names.
pub async fn stop_all(docker: &Docker, stack_dir: &std::path::Path) -> Result<Vec<String>> {
    let mut stopped = vec![];
    for listed in containers(docker, stack_dir).await? {
        remove(docker, &listed.container).await;
        stopped.push(listed.container);
    }
    Ok(stopped)
}

/// `<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>` (or `@<digest>`) as the
/// local registry `host` serves it.
fn local_reference(image: &str, host: &str) -> Result<String> {
    let Some((registry, rest)) = image.split_once('/') else {
        bail!("the task definition's image `{image}` names no registry");
    };
    if !registry.contains(".dkr.ecr.") {
        bail!("the task definition's image `{image}` is not in ECR");
    }
    Ok(format!("{host}/{rest}"))
}

/// Pulls `image`; returns the digest the registry named for it (the pull's `Digest:` line, or
/// the reference's own digest).
async fn pull(docker: &Docker, image: &str, registry: &RegistryAuth) -> Result<Option<String>> {
    let credentials = DockerCredentials {
        username: Some(registry.username.clone()),
        password: Some(registry.password.clone()),
        serveraddress: Some(registry.host.clone()),
        ..Default::default()
    };
    let options = CreateImageOptions { from_image: Some(image.to_string()), ..Default::default() };
    let mut stream = docker.create_image(Some(options), None, Some(credentials));
    let mut digest = image.split_once('@').map(|(_, digest)| digest.to_string());
    while let Some(item) = stream.next().await {
        let item = item.with_context(|| format!("cannot pull {image} from the local registry"))?;
        if let Some(named) = item.status.as_deref().and_then(|s| s.strip_prefix("Digest: ")) {
            digest = Some(named.trim().to_string());
        }
    }
    Ok(digest)
}

async fn remove(docker: &Docker, name: &str) {
    let _ = docker.remove_container(name, Some(RemoveContainerOptions { force: true, ..Default::default() })).await;
}

async fn log_tail(docker: &Docker, name: &str, lines: usize) -> String {
    let options = LogsOptions { stdout: true, stderr: true, tail: lines.to_string(), ..Default::default() };
    let mut stream = docker.logs(name, Some(options));
    let mut text = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        text += &chunk.to_string();
    }
    let text = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" | ");
    if text.is_empty() { "(nothing)".to_string() } else { text }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("cannot find a free port for the service")?;
    Ok(listener.local_addr()?.port())
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}
