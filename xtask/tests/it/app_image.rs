//! The real `app/Dockerfile`, built through the local stage's base images, runs and
//! reports the commit it was built from.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use bollard::{
    models::{ContainerCreateBody, HostConfig},
    query_parameters::{CreateContainerOptions, RemoveContainerOptions},
};

use crate::support::{clone_workspace, docker_or_skip, local_stack, runtime};

fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

#[test]
fn the_app_image_builds_and_answers_version_with_its_commit() {
    if !docker_or_skip("the_app_image_builds_and_answers_version_with_its_commit") {
        return;
    }
    local_stack();
    let repo = clone_workspace();
    let commit = repo.head();
    let run = repo.xtask(&["build", "--image", "app"]);
    run.ok();
    assert!(run.stderr().contains(&format!("app: hello/app:{commit}")), "{}", run.stderr());

    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    runtime().block_on(async {
        let docker = xtask_release::clients::docker::connect().await.unwrap();
        let image = format!("hello/app:{commit}");
        let inspect = docker.inspect_image(&image).await.unwrap();
        let config = inspect.config.unwrap();
        let labels = config.labels.unwrap();
        assert_eq!(labels["org.opencontainers.image.revision"], commit);
        assert_eq!(labels["org.opencontainers.image.title"], "app");
        assert!(labels.contains_key("org.opencontainers.image.created"));
        assert_eq!(config.user.as_deref(), Some("10001:10001"), "runs as non-root");

        let name = crate::support::unique("it-app");
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            env: Some(vec![format!("PORT={port}"), format!("APP_IMAGE_TAG={commit}")]),
            host_config: Some(HostConfig { network_mode: Some("host".into()), ..Default::default() }),
            ..Default::default()
        };
        docker
            .create_container(Some(CreateContainerOptions { name: Some(name.clone()), ..Default::default() }), body)
            .await
            .unwrap();
        docker.start_container(&name, None::<bollard::query_parameters::StartContainerOptions>).await.unwrap();

        let started = Instant::now();
        let mut version = None;
        while started.elapsed() < Duration::from_secs(10) && version.is_none() {
            version = get(port, "/version").filter(|r| r.starts_with("HTTP/1.1 200"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let health = get(port, "/healthz");
        let stop_started = Instant::now();
        docker.stop_container(&name, None::<bollard::query_parameters::StopContainerOptions>).await.unwrap();
        let stop_took = stop_started.elapsed();
        docker
            .remove_container(&name, Some(RemoveContainerOptions { force: true, ..Default::default() }))
            .await
            .unwrap();

        let version = version.expect("/version answered 200 within 10s");
        let body = version.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["commit"], commit.as_str(), "{body}");
        assert_eq!(json["image_tag"], commit.as_str(), "{body}");
        assert!(health.unwrap().starts_with("HTTP/1.1 200"));
        assert!(stop_took < Duration::from_secs(5), "SIGTERM must stop the app promptly, took {stop_took:?}");
    });
}
