//! The local stack: a real registry and the emulated ECR API kept in agreement.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use aws_sdk_ecr::types::ImageIdentifier;
use bollard::{
    Docker,
    auth::DockerCredentials,
    query_parameters::{CreateImageOptions, PushImageOptions},
};
use futures_util::StreamExt;
use xtask_release::clients::ecr;

use crate::support::{
    docker_or_skip, ecr_digest, local_ecr, local_ports, local_stack, runtime, unique, workspace_root, xtask,
};

struct Local {
    ecr: aws_sdk_ecr::Client,
    docker: Docker,
    registry: String,
    credentials: DockerCredentials,
}

async fn connect() -> Local {
    let ecr = local_ecr().await;
    let auth = ecr::authorization(&ecr).await.unwrap();
    let registry = local_ports().await.registry_host();
    let credentials = DockerCredentials {
        username: Some(auth.username),
        password: Some(auth.password),
        serveraddress: Some(registry.clone()),
        ..Default::default()
    };
    let docker = xtask_release::clients::docker::connect().await.unwrap();
    Local { ecr, docker, registry, credentials }
}

/// A one-file image, unique per call, imported from an in-memory root filesystem
/// (`docker import`): no build steps, so no intermediate image a concurrent build or
/// cleanup on the same daemon could remove from under it.
async fn tiny_image(docker: &Docker, tag: &str) {
    let mut tar = tar::Builder::new(Vec::new());
    let data = unique("content").into_bytes();
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "id", data.as_slice()).unwrap();
    let body = bollard::body_full(tar.into_inner().unwrap().into());
    let (repo, tag) = tag.rsplit_once(':').filter(|(_, t)| !t.contains('/')).expect("a reference with a tag");
    let options = CreateImageOptions {
        from_src: Some("-".to_string()),
        repo: Some(repo.to_string()),
        tag: Some(tag.to_string()),
        ..Default::default()
    };
    let mut stream = docker.create_image(Some(options), Some(body), None);
    while let Some(item) = stream.next().await {
        item.expect("tiny image import");
    }
}

/// Pushes and returns the digest the registry reported.
async fn push(local: &Local, repository: &str, tag: &str) -> String {
    let image = format!("{}/{repository}", local.registry);
    let options = PushImageOptions { tag: Some(tag.to_string()), ..Default::default() };
    let mut stream = local.docker.push_image(&image, Some(options), Some(local.credentials.clone()));
    let mut digest = None;
    while let Some(item) = stream.next().await {
        let info = item.expect("push stream item");
        if let Some(status) = info.status
            && let Some(rest) = status.split("digest: ").nth(1)
        {
            digest = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    digest.expect("the push reported a digest")
}

#[test]
fn status_and_env_describe_the_running_stack() {
    if !docker_or_skip("status_and_env_describe_the_running_stack") {
        return;
    }
    local_stack();
    let status = xtask(&workspace_root(), &["local", "status"]).ok();
    for part in ["aws-api", "registry", "sync"] {
        let line = status.lines().find(|l| l.starts_with(part)).unwrap_or_else(|| panic!("no {part} line:\n{status}"));
        assert!(line.contains(" running "), "{part} not running:\n{status}");
    }
    assert!(status.contains("present      xtask-local/debian:bookworm-minbase"), "{status}");
    assert!(status.contains("present      xtask-local/rust:host"), "{status}");

    let env = xtask(&workspace_root(), &["local", "env"]).ok();
    assert!(env.contains("export AWS_ENDPOINT_URL='http://localhost:"), "{env}");

    // Idempotent: a second `up` reuses the stack.
    let again = xtask(&workspace_root(), &["local", "up"]);
    again.ok();
    assert!(again.stderr().contains("already running"), "{}", again.stderr());
}

#[test]
fn a_push_to_the_registry_appears_in_ecr_with_the_same_digest() {
    if !docker_or_skip("a_push_to_the_registry_appears_in_ecr_with_the_same_digest") {
        return;
    }
    local_stack();
    runtime().block_on(async {
        let local = connect().await;
        let repository = unique("it/sync");
        local.ecr.create_repository().repository_name(&repository).send().await.unwrap();
        let tag = "0123456789abcdef0123456789abcdef01234567";
        tiny_image(&local.docker, &format!("{}/{repository}:{tag}", local.registry)).await;

        let pushed = push(&local, &repository, tag).await;
        let started = Instant::now();
        let mut seen = None;
        while started.elapsed() < Duration::from_secs(1) && seen.is_none() {
            seen = ecr_digest(&local.ecr, &repository, tag).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = seen.unwrap_or_else(|| panic!("{repository}:{tag} did not reach ECR within 1s"));
        assert_eq!(seen, pushed, "ECR's digest must be the registry's");
        eprintln!("registry → ECR in {} ms", started.elapsed().as_millis());

        // The manifest ECR stores is the registry's, byte for byte: its sha256 is the digest.
        let manifest = ecr::manifest(&local.ecr, &repository, tag).await.unwrap();
        use sha2::Digest;
        assert_eq!(format!("sha256:{:x}", sha2::Sha256::digest(manifest.body.as_bytes())), pushed);
    });
}

#[test]
fn an_ecr_retag_is_pullable_from_the_registry() {
    if !docker_or_skip("an_ecr_retag_is_pullable_from_the_registry") {
        return;
    }
    local_stack();
    runtime().block_on(async {
        let local = connect().await;
        let repository = unique("it/retag");
        local.ecr.create_repository().repository_name(&repository).send().await.unwrap();
        let first = "1111111111111111111111111111111111111111";
        let second = "2222222222222222222222222222222222222222";
        tiny_image(&local.docker, &format!("{}/{repository}:{first}", local.registry)).await;
        let digest = push(&local, &repository, first).await;

        // Wait for the image to reach ECR, then retag there: BatchGetImage + PutImage.
        let started = Instant::now();
        while ecr_digest(&local.ecr, &repository, first).await.is_none() {
            assert!(started.elapsed() < Duration::from_secs(5), "push never reached ECR");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let manifest = ecr::manifest(&local.ecr, &repository, first).await.unwrap();
        let added = ecr::put_tag(&local.ecr, &repository, &manifest, second).await.unwrap();
        assert_eq!(added, ecr::Tagged::Added);
        let ids = local
            .ecr
            .describe_images()
            .repository_name(&repository)
            .image_ids(ImageIdentifier::builder().image_tag(second).build())
            .send()
            .await
            .unwrap();
        assert_eq!(ids.image_details()[0].image_digest(), Some(digest.as_str()));

        // Pull the new tag from the registry, as ECS would.
        let image = format!("{}/{repository}", local.registry);
        let started = Instant::now();
        loop {
            let options = CreateImageOptions {
                from_image: Some(image.clone()),
                tag: Some(second.to_string()),
                ..Default::default()
            };
            let mut stream = local.docker.create_image(Some(options), None, Some(local.credentials.clone()));
            let mut failed = None;
            while let Some(item) = stream.next().await {
                if let Err(err) = item {
                    failed = Some(err.to_string());
                }
            }
            match failed {
                None => break,
                Some(err) if started.elapsed() > Duration::from_secs(3) => panic!("pull of {image}:{second}: {err}"),
                Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let inspect = local.docker.inspect_image(&format!("{image}:{second}")).await.unwrap();
        let digests: HashMap<_, _> = inspect
            .repo_digests
            .unwrap_or_default()
            .into_iter()
            .filter_map(|d| d.split_once('@').map(|(name, digest)| (name.to_string(), digest.to_string())))
            .collect();
        assert_eq!(digests.get(&image), Some(&digest), "pulled digest");
    });
}

#[test]
fn up_without_a_docker_daemon_says_so_and_starts_nothing() {
    let repo = crate::support::Fixture::new();
    let own = repo.path().join("target/local");
    let run = crate::support::xtask_env(
        &repo.path(),
        &["local", "up"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock"), ("XTASK_LOCAL_STACK", own.to_str().unwrap())],
    );
    let err = run.fails();
    assert_eq!(run.output.status.code(), Some(2), "an environment error exits 2");
    assert!(err.contains("no Docker daemon answers at unix:///nonexistent/docker.sock"), "{err}");
    assert!(!own.exists(), "nothing may be started");
}

/// Pushes and returns the registry's error message, if the push failed.
async fn try_push(local: &Local, repository: &str, tag: &str) -> Result<(), String> {
    let image = format!("{}/{repository}", local.registry);
    let options = PushImageOptions { tag: Some(tag.to_string()), ..Default::default() };
    let mut stream = local.docker.push_image(&image, Some(options), Some(local.credentials.clone()));
    while let Some(item) = stream.next().await {
        if let Err(err) = item {
            return Err(err.to_string());
        }
    }
    Ok(())
}

#[test]
fn the_registry_refuses_what_ecr_refuses() {
    if !docker_or_skip("the_registry_refuses_what_ecr_refuses") {
        return;
    }
    local_stack();
    runtime().block_on(async {
        let local = connect().await;
        let immutable = unique("it/immutable");
        crate::support::create_repository(&local.ecr, &immutable, true).await;
        let tag = "3333333333333333333333333333333333333333";
        let reference = format!("{}/{immutable}:{tag}", local.registry);

        // The first image under the tag is accepted, and in ECR when the push returns.
        tiny_image(&local.docker, &reference).await;
        try_push(&local, &immutable, tag).await.unwrap();
        let first = ecr_digest(&local.ecr, &immutable, tag).await.expect("recorded in ECR before the push returned");
        // The same image again: accepted (ECR takes the same digest under the same tag).
        try_push(&local, &immutable, tag).await.unwrap();

        // Another image under the same tag: refused as ECR refuses it; neither side moves.
        tiny_image(&local.docker, &reference).await;
        let err = try_push(&local, &immutable, tag).await.unwrap_err();
        if err.contains("failed commit on ref \"manifest-") {
            // The containerd image store's pusher reports the status of the refused manifest
            // PUT, not the registry's error body.
            assert!(err.contains(&format!("/manifests/{tag}: 400 Bad Request")), "{err}");
        } else {
            assert!(err.contains("tag invalid"), "{err}");
            assert!(err.contains(&format!("The image tag '{tag}' already exists in the '{immutable}' repository and cannot be overwritten because the repository is immutable")), "{err}");
        }
        assert_eq!(ecr_digest(&local.ecr, &immutable, tag).await.as_deref(), Some(first.as_str()));
        let pulled = local
            .docker
            .create_image(Some(CreateImageOptions { from_image: Some(reference.clone()), ..Default::default() }), None, Some(local.credentials.clone()))
            .collect::<Vec<_>>()
            .await;
        assert!(pulled.iter().all(Result::is_ok), "{pulled:?}");
        let inspect = local.docker.inspect_image(&reference).await.unwrap();
        let digests = inspect.repo_digests.unwrap_or_default();
        assert!(digests.iter().any(|d| d.ends_with(&first)), "the registry still serves the first image: {digests:?}");

        // A repository ECR does not have: refused before any layer is sent.
        let unknown = unique("it/unknown");
        tiny_image(&local.docker, &format!("{}/{unknown}:{tag}", local.registry)).await;
        let err = try_push(&local, &unknown, tag).await.unwrap_err();
        let containerd_store = err.contains("unexpected status from POST request") && err.contains("404 Not Found");
        assert!(err.contains("name unknown") || containerd_store, "{err}");

        // A mutable repository lets a tag move, in both.
        let mutable = unique("it/mutable");
        crate::support::create_repository(&local.ecr, &mutable, false).await;
        let reference = format!("{}/{mutable}:{tag}", local.registry);
        tiny_image(&local.docker, &reference).await;
        try_push(&local, &mutable, tag).await.unwrap();
        let before = ecr_digest(&local.ecr, &mutable, tag).await.unwrap();
        tiny_image(&local.docker, &reference).await;
        try_push(&local, &mutable, tag).await.unwrap();
        let after = ecr_digest(&local.ecr, &mutable, tag).await.unwrap();
        assert_ne!(before, after, "the tag moved in ECR too");
    });
}

#[test]
fn two_local_ups_at_once_make_one_stack() {
    if !docker_or_skip("two_local_ups_at_once_make_one_stack") {
        return;
    }
    local_stack(); // the base images
    let repo = crate::support::Fixture::new();
    let logs = repo.sh.create_temp_dir().unwrap();
    let own = logs.path().join("stack");
    let env = [("XTASK_LOCAL_STACK", own.to_str().unwrap())];
    let mut ups: Vec<_> = (0..2)
        .map(|i| {
            crate::support::spawn_xtask(&repo.path(), &["local", "up"], &env, &logs.path().join(format!("up-{i}.log")))
        })
        .collect();
    let codes: Vec<_> = ups.iter_mut().map(|up| up.wait().unwrap().code()).collect();
    let logs: Vec<String> =
        (0..2).map(|i| std::fs::read_to_string(logs.path().join(format!("up-{i}.log"))).unwrap()).collect();
    assert_eq!(codes, [Some(0), Some(0)], "{logs:?}");
    let started = logs.iter().filter(|l| l.contains("local stack up in")).count();
    let reused = logs.iter().filter(|l| l.contains("local stack already running")).count();
    assert_eq!((started, reused), (1, 1), "one started the stack, the other found it running: {logs:?}");
    assert!(
        logs.iter().any(|l| l.contains("waiting for another `cargo xtask local up` or `down` of this stack")),
        "{logs:?}"
    );
    let status = crate::support::xtask_env(&repo.path(), &["local", "status"], &env).ok();
    assert_eq!(status.matches(" running ").count(), 3, "{status}");
    crate::support::xtask_env(&repo.path(), &["local", "down"], &env).ok();
}

/// Connects to the stack whose directory is `dir`.
async fn connect_to(dir: &std::path::Path) -> (Local, xtask_local_stack::Ports) {
    let ports = xtask_local_stack::running(dir).await.unwrap();
    let ecr = aws_sdk_ecr::Client::new(&ports.sdk_config("us-east-1").await);
    let auth = ecr::authorization(&ecr).await.unwrap();
    let registry = ports.registry_host();
    let credentials = DockerCredentials {
        username: Some(auth.username),
        password: Some(auth.password),
        serveraddress: Some(registry.clone()),
        ..Default::default()
    };
    let docker = xtask_release::clients::docker::connect().await.unwrap();
    (Local { ecr, docker, registry, credentials }, ports)
}

#[test]
fn the_stack_keeps_its_data_across_down_up_and_a_crash() {
    if !docker_or_skip("the_stack_keeps_its_data_across_down_up_and_a_crash") {
        return;
    }
    local_stack(); // the base images
    let repo = crate::support::Fixture::new();
    let dir = repo.sh.create_temp_dir().unwrap();
    let own = dir.path().join("stack");
    let env = [("XTASK_LOCAL_STACK", own.to_str().unwrap())];
    let xtask_here = |args: &[&str]| crate::support::xtask_env(&repo.path(), args, &env);
    xtask_here(&["local", "up"]).ok();

    // State in ECR (a repository, its settings, an image) and in S3 (a bucket).
    let tag = "4444444444444444444444444444444444444444";
    let repository = unique("it/kept");
    let digest = runtime().block_on(async {
        let (local, ports) = connect_to(&own).await;
        crate::support::create_repository(&local.ecr, &repository, true).await;
        tiny_image(&local.docker, &format!("{}/{repository}:{tag}", local.registry)).await;
        let digest = push(&local, &repository, tag).await;
        let bucket = xtask_release::clients::http::Client::new()
            .send(hyper::Method::PUT, &format!("{}/it-kept-bucket", ports.moto_url()), &[], Default::default())
            .await
            .unwrap();
        assert!(bucket.status.is_success(), "{}", bucket.status);
        digest
    });
    let kept = |what: &str| {
        runtime().block_on(async {
            let (local, ports) = connect_to(&own).await;
            assert_eq!(
                ecr_digest(&local.ecr, &repository, tag).await.as_deref(),
                Some(digest.as_str()),
                "{what}: the image in ECR"
            );
            let immutable = local.ecr.describe_repositories().repository_names(&repository).send().await.unwrap();
            assert_eq!(
                immutable.repositories()[0].image_tag_mutability().map(|m| m.as_str()),
                Some("IMMUTABLE"),
                "{what}"
            );
            let image = format!("{}/{repository}:{tag}", local.registry);
            let pulled: Vec<_> = local
                .docker
                .create_image(
                    Some(CreateImageOptions { from_image: Some(image), ..Default::default() }),
                    None,
                    Some(local.credentials.clone()),
                )
                .collect()
                .await;
            assert!(pulled.iter().all(Result::is_ok), "{what}: the registry serves the image: {pulled:?}");
            let buckets =
                xtask_release::clients::http::Client::new().get(&format!("{}/", ports.moto_url()), &[]).await.unwrap();
            assert!(String::from_utf8_lossy(&buckets.body).contains("it-kept-bucket"), "{what}: the S3 bucket");
        })
    };

    // down, then up: everything comes back.
    xtask_here(&["local", "down"]).ok();
    let up = xtask_here(&["local", "up"]);
    up.ok();
    assert!(up.stderr().contains("AWS API state restored"), "{}", up.stderr());
    kept("after down and up");

    // The AWS API dies: status says so and how to fix it; up restarts it alone.
    let pid = |part: &str| {
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(own.join(format!("{part}.pid"))).unwrap()).unwrap();
        record["pid"].as_u64().unwrap() as i32
    };
    let (registry, sync) = (pid("registry"), pid("sync"));
    // SAFETY: kill(2) of the moto process this test's stack started.
    unsafe { libc::kill(pid("moto"), libc::SIGKILL) };
    let moto = pid("moto");
    crate::support::wait_until("the killed AWS API to end", Duration::from_secs(10), || {
        crate::support::process_ended(moto)
    });
    let status = xtask_here(&["local", "status"]).ok();
    assert!(status.contains("aws-api    not running"), "{status}");
    assert!(status.contains("`cargo xtask local up` starts what is down"), "{status}");
    let up = xtask_here(&["local", "up"]);
    up.ok();
    assert!(up.stderr().contains("(started AWS API)"), "only the AWS API restarts: {}", up.stderr());
    assert_eq!((pid("registry"), pid("sync")), (registry, sync), "the registry and the sync kept running");
    kept("after the AWS API crashed");

    xtask_here(&["local", "down", "--purge"]).ok();
    assert!(!own.join("moto-state.pickle").exists() && !own.join("registry").exists());
}

/// Calls a JSON-protocol API of the AWS API at `moto` in its default account.
async fn aws_json(moto: &str, service: &str, target: &str, body: serde_json::Value) -> serde_json::Value {
    let scope = format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
    );
    let response = xtask_release::clients::http::Client::new()
        .with_credentials(moto, scope)
        .unwrap()
        .send(
            hyper::Method::POST,
            &format!("{moto}/"),
            &[("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target)],
            serde_json::to_vec(&body).unwrap().into(),
        )
        .await
        .unwrap();
    assert!(response.status.is_success(), "{target}: {} {}", response.status, String::from_utf8_lossy(&response.body));
    serde_json::from_slice(&response.body).unwrap()
}

/// The stacks of the default account, by name, with their status (CloudFormation's
/// query API, read directly).
async fn stack_statuses(moto: &str) -> HashMap<String, String> {
    let scope = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/cloudformation/aws4_request, SignedHeaders=host, Signature=0";
    let response = xtask_release::clients::http::Client::new()
        .with_credentials(moto, scope.to_string())
        .unwrap()
        .send(
            hyper::Method::POST,
            &format!("{moto}/"),
            &[("content-type", "application/x-www-form-urlencoded")],
            "Action=DescribeStacks&Version=2010-05-15".into(),
        )
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&response.body).into_owned();
    assert!(response.status.is_success(), "DescribeStacks: {} {text}", response.status);
    let field = |member: &str, name: &str| {
        let (open, close) = (format!("<{name}>"), format!("</{name}>"));
        let from = member.find(&open)? + open.len();
        Some(member[from..from + member[from..].find(&close)?].to_string())
    };
    // Each stack begins with its id; its parameters and outputs are members too.
    text.split("<StackId>").filter_map(|m| Some((field(m, "StackName")?, field(m, "StackStatus")?))).collect()
}

/// `kill -9` of the AWS API of the stack in `own`, seen gone.
fn kill_aws_api(own: &std::path::Path) {
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(own.join("moto.pid")).unwrap()).unwrap();
    let moto = record["pid"].as_u64().unwrap() as i32;
    // SAFETY: kill(2) of the moto process this test's stack started.
    unsafe { libc::kill(moto, libc::SIGKILL) };
    crate::support::wait_until("the killed AWS API to end", Duration::from_secs(10), || {
        crate::support::process_ended(moto)
    });
}

#[test]
fn a_restart_keeps_the_aws_state_whatever_the_history() {
    if !docker_or_skip("a_restart_keeps_the_aws_state_whatever_the_history") {
        return;
    }
    local_stack(); // the base images
    let started = Instant::now();
    // The workspace itself (its cdk app), on a stack of its own.
    let repo = crate::support::clone_workspace();
    let dir = repo.sh.create_temp_dir().unwrap();
    let own = dir.path().join("stack");
    let env = [("XTASK_LOCAL_STACK", own.to_str().unwrap())];
    let xtask_here = |args: &[&str]| repo.xtask_env(args, &env);
    xtask_here(&["local", "up"]).ok();

    // History: cdk bootstrap (change sets, created and deleted) and the registry stack.
    xtask_here(&["bootstrap", "--stage", "local", "--yes"]).ok();
    eprintln!("bootstrapped after {:.1}s", started.elapsed().as_secs_f64());
    let (first, second, deleted) = (
        "5555555555555555555555555555555555555555",
        "6666666666666666666666666666666666666666",
        "7777777777777777777777777777777777777777",
    );
    let prod = crate::support::PROD_ACCOUNT;
    let (digest, key, signature, public_key) = runtime().block_on(async {
        let (local, ports) = connect_to(&own).await;
        // Pushes, a retag through ECR, a push then a delete.
        tiny_image(&local.docker, &format!("{}/hello/app:{first}", local.registry)).await;
        let digest = push(&local, "hello/app", first).await;
        let manifest = ecr::manifest(&local.ecr, "hello/app", first).await.unwrap();
        assert_eq!(ecr::put_tag(&local.ecr, "hello/app", &manifest, second).await.unwrap(), ecr::Tagged::Added);
        tiny_image(&local.docker, &format!("{}/hello/worker:{deleted}", local.registry)).await;
        push(&local, "hello/worker", deleted).await;
        local
            .ecr
            .batch_delete_image()
            .repository_name("hello/worker")
            .image_ids(ImageIdentifier::builder().image_tag(deleted).build())
            .send()
            .await
            .unwrap();
        // A second account, reached through a role assumed there.
        let ecr_prod = aws_sdk_ecr::Client::new(&ports.sdk_config_in("us-east-1", Some(prod)).await);
        crate::support::create_repository(&ecr_prod, "it/prod", true).await;
        ecr::put_tag(&ecr_prod, "it/prod", &manifest, first).await.unwrap();
        // A signing key: its material must survive, or old signatures stop verifying.
        let moto = ports.moto_url();
        let created = aws_json(
            &moto,
            "kms",
            "TrentService.CreateKey",
            serde_json::json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}),
        )
        .await;
        let key = created["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
        let signed = aws_json(
            &moto,
            "kms",
            "TrentService.Sign",
            serde_json::json!({"KeyId": key, "Message": "aGVsbG8=", "MessageType": "RAW", "SigningAlgorithm": "ECDSA_SHA_256"}),
        )
        .await;
        let public = aws_json(&moto, "kms", "TrentService.GetPublicKey", serde_json::json!({"KeyId": key})).await;
        (
            digest,
            key,
            signed["Signature"].as_str().unwrap().to_string(),
            public["PublicKey"].as_str().unwrap().to_string(),
        )
    });

    let kept = |what: &str| {
        runtime().block_on(async {
            let (local, ports) = connect_to(&own).await;
            let stacks = stack_statuses(&ports.moto_url()).await;
            for stack in ["CDKToolkit", "hello-local-registry"] {
                let status = stacks.get(stack).map(String::as_str).unwrap_or("missing");
                assert!(["CREATE_COMPLETE", "UPDATE_COMPLETE"].contains(&status), "{what}: {stack} is {status}: {stacks:?}");
            }
            for (tag, expected) in [(first, Some(&digest)), (second, Some(&digest))] {
                assert_eq!(ecr_digest(&local.ecr, "hello/app", tag).await.as_ref(), expected, "{what}: hello/app:{tag}");
            }
            assert_eq!(ecr_digest(&local.ecr, "hello/worker", deleted).await, None, "{what}: the deleted tag");
            let ecr_prod = aws_sdk_ecr::Client::new(&ports.sdk_config_in("us-east-1", Some(prod)).await);
            assert_eq!(ecr_digest(&ecr_prod, "it/prod", first).await.as_ref(), Some(&digest), "{what}: {prod}");
            assert!(
                !ecr::repository_exists(&local.ecr, "it/prod").await.unwrap(),
                "{what}: the second account's repository stays in its account"
            );
            let public = aws_json(&ports.moto_url(), "kms", "TrentService.GetPublicKey", serde_json::json!({"KeyId": key})).await;
            assert_eq!(public["PublicKey"].as_str(), Some(public_key.as_str()), "{what}: the key's material");
            for (message, valid) in [("aGVsbG8=", true), ("aGVsbG8h", false)] {
                let verified = aws_json(
                    &ports.moto_url(),
                    "kms",
                    "TrentService.Verify",
                    serde_json::json!({"KeyId": key, "Message": message, "MessageType": "RAW", "Signature": signature, "SigningAlgorithm": "ECDSA_SHA_256"}),
                )
                .await;
                assert_eq!(verified["SignatureValid"].as_bool(), Some(valid), "{what}: the signature made before, over {message}");
            }
        })
    };
    kept("before any restart");

    // down, then up.
    xtask_here(&["local", "down"]).ok();
    let restart = Instant::now();
    let up = xtask_here(&["local", "up"]);
    up.ok();
    eprintln!("down/up restart in {:.1}s", restart.elapsed().as_secs_f64());
    assert!(up.stderr().contains("AWS API state restored: 2 accounts"), "{}", up.stderr());
    assert!(!up.stderr().lines().any(|l| l.starts_with("registry")), "the registry agrees with ECR: {}", up.stderr());
    kept("after down and up");

    // A kill -9 of the AWS API, then up: it alone restarts.
    kill_aws_api(&own);
    let up = xtask_here(&["local", "up"]);
    up.ok();
    assert!(up.stderr().contains("(started AWS API)"), "{}", up.stderr());
    assert!(up.stderr().contains("AWS API state restored: 2 accounts"), "{}", up.stderr());
    kept("after the AWS API was killed");
    let status = xtask_here(&["local", "status"]).ok();
    assert!(status.contains("aws-state  restored    at start (2 accounts)"), "{status}");

    // The next bootstrap works on the restored state.
    xtask_here(&["bootstrap", "--stage", "local", "--yes"]).ok();
    kept("after the next bootstrap");

    // A saved state that cannot be loaded is said at `up`, in one line, with the way out.
    xtask_here(&["local", "down"]).ok();
    std::fs::write(own.join("moto-state.pickle"), "not a snapshot").unwrap();
    let up = xtask_here(&["local", "up"]);
    up.ok();
    let stderr = up.stderr();
    let lost: Vec<&str> = stderr.lines().filter(|l| l.contains("AWS API state")).collect();
    assert_eq!(lost.len(), 1, "{stderr}");
    assert!(lost[0].starts_with("AWS API state LOST: the saved state could not be loaded"), "{}", lost[0]);
    assert!(lost[0].ends_with("run `cargo xtask local down --purge` to start clean"), "{}", lost[0]);
    // The registry still holds the pushed tags, in repositories ECR no longer has: said too.
    let registry = stderr.lines().find(|l| l.starts_with("registry: ")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(registry.contains("tags disagree with ECR and cannot be repaired"), "{registry}");
    assert!(registry.contains(&format!("hello/app:{first} (no such ECR repository)")), "{registry}");
    assert!(registry.ends_with("run `cargo xtask local down --purge` to start clean"), "{registry}");
    xtask_here(&["local", "down", "--purge"]).ok();
    assert!(!own.join("moto-state.pickle.unrestorable").exists(), "purge removes the state set aside");
    eprintln!("whole test in {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn a_deployed_and_promoted_stack_survives_restarts_and_deploys_again() {
    if !docker_or_skip("a_deployed_and_promoted_stack_survives_restarts_and_deploys_again") {
        return;
    }
    local_stack(); // the base images
    let started = Instant::now();
    // The whole chain on a stack of its own: deploy to `local`, promote to `local-prod`.
    let repo = crate::support::clone_workspace();
    let dir = repo.sh.create_temp_dir().unwrap();
    let own = dir.path().join("stack");
    let env = [("XTASK_LOCAL_STACK", own.to_str().unwrap())];
    let xtask_here = |args: &[&str]| repo.xtask_env(args, &env);
    xtask_here(&["deploy", "--stage", "local"]).ok();
    xtask_here(&["promote", "--to", "local-prod"]).ok();
    eprintln!("deployed and promoted after {:.1}s", started.elapsed().as_secs_f64());

    // What a person on call looks at: the images with their tags, signers and deploys, in
    // both accounts, and the stacks.
    let state = || {
        let images: Vec<String> = ["local", "local-prod"]
            .iter()
            .map(|stage| xtask_here(&["images", "--stage", stage, "--json"]).ok())
            .collect();
        let stacks = runtime().block_on(async {
            let ports = xtask_local_stack::running(&own).await.unwrap();
            stack_statuses(&ports.moto_url()).await
        });
        (images, stacks)
    };
    let (images, stacks) = state();
    for stack in ["CDKToolkit", "hello-local-registry", "hello-local-service"] {
        let status = stacks.get(stack).map(String::as_str).unwrap_or("missing");
        assert!(["CREATE_COMPLETE", "UPDATE_COMPLETE"].contains(&status), "{stack} is {status}: {stacks:?}");
    }
    assert!(images[1].contains(&repo.head()), "local-prod holds the promoted commit: {}", images[1]);
    let kept = |what: &str| {
        let (now_images, now_stacks) = state();
        assert_eq!(now_images, images, "{what}: images --json of local and local-prod");
        for stack in ["CDKToolkit", "hello-local-registry", "hello-local-service"] {
            assert_eq!(now_stacks.get(stack), stacks.get(stack), "{what}: {stack}");
        }
    };

    xtask_here(&["local", "down"]).ok();
    xtask_here(&["local", "up"]).ok();
    kept("after down and up");
    kill_aws_api(&own);
    xtask_here(&["local", "up"]).ok();
    kept("after the AWS API was killed");

    // A new commit deploys on the restored state, its images signed by the same key.
    repo.append("README.md", "\nA change after the restarts.\n");
    let next = repo.commit("after the restarts");
    let run = xtask_here(&["deploy", "--stage", "local"]);
    run.ok();
    assert!(run.stderr().contains(&format!("deployed hello-local-service at {next}")), "{}", run.stderr());
    xtask_here(&["local", "down", "--purge"]).ok();
    eprintln!("whole test in {:.1}s", started.elapsed().as_secs_f64());
}
