//! Row 5: `promote --to local-prod` of a 300 MiB image between the local stack's two
//! accounts, beside what a script would do: `docker pull` from the first account's
//! registry, `docker tag`, `docker push` to the second's.
//!
//! Every round starts from nothing in the target: each side's repository is emptied in
//! the second account's registry (its storage directory, and its images in ECR), and the
//! baseline's pulled image is removed from the daemon, so both move all 300 MiB.

use std::{path::Path, time::Duration};

use anyhow::{Context, Result};
use aws_sdk_ecr::types::ImageTagMutability;
use xshell::cmd;

use super::{
    Bench, Row,
    docker_cli::DockerCli,
    fixture::{Fixture, Image},
    measure::{self, Stdout},
    tree::{self, MIB, Spec},
};
use xtask_local_stack::settings::LOCAL_STAGE;
use xtask_release::{clients::aws::SdkResultExt, clients::ecr};

/// One layer of incompressible bytes, as a service's binary and assets are close to.
const IMAGE: Spec = Spec { files: 30, bytes: 300 * MIB, seed: 5 };
/// The second account of the local stack, as the workspace's `local-prod` stage names it.
const ACCOUNT: &str = "111111111111";
const LIMIT: Duration = Duration::from_secs(600);

pub async fn row(b: &Bench<'_>) -> Result<Row> {
    let ws = b.ws;
    let region = ws.config.stage(LOCAL_STAGE)?.region.clone().unwrap_or_default();
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let (ours_repo, shell_repo) = (format!("bench/promote-{nonce:x}"), format!("bench/promote-shell-{nonce:x}"));
    let fixture =
        Fixture::workspace(&b.dir.join("promote"), &[Image { name: "svc", context: "svc", repository: &ours_repo }])?;
    let mut settings = std::fs::read_to_string(fixture.dir.join("Cargo.toml"))?;
    settings += &format!(
        "\n[workspace.metadata.xtask.stages.local-prod]\nlocal-stack = true\nregion = \"{region}\"\n\
         account = \"{ACCOUNT}\"\npromote-from = \"local\"\n"
    );
    fixture.write("Cargo.toml", &settings)?;
    let made = tree::generate(&fixture.dir.join("svc"), IMAGE)?;
    let commit = fixture.commit("a 300 MiB image")?;

    let source = aws_sdk_ecr::Client::new(&b.ports.sdk_config(&region).await);
    let target = aws_sdk_ecr::Client::new(&b.ports.sdk_config_in(&region, Some(ACCOUNT)).await);
    let prod = b.ports.registry_of(Some(ACCOUNT))?;
    super::create_repository(&source, &ours_repo, ImageTagMutability::Immutable).await?;
    for (repo, mutability) in [(&ours_repo, ImageTagMutability::Immutable), (&shell_repo, ImageTagMutability::Mutable)]
    {
        super::create_repository(&target, repo, mutability).await?;
    }
    let sh = &fixture.sh;
    let exe = &b.exe;
    // The image to promote, pushed once to the first account.
    measure::run(
        "cargo xtask push",
        b.ours(cmd!(sh, "{exe} push --stage local")),
        Stdout::Keep,
        &b.log("promote-push"),
        LIMIT,
    )?;

    let cli = DockerCli::login(
        sh,
        &b.dir.join("docker-config"),
        &b.ports.registry_host(),
        &ecr::authorization(&source).await?,
    )?;
    let prod_auth = ecr::authorization(&target).await?;
    let (user, prod_host) = (&prod_auth.username, prod.registry_host());
    cli.cmd(cmd!(sh, "docker login --username {user} --password-stdin {prod_host}"))
        .stdin(&prod_auth.password)
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .context("cannot log the docker CLI in to the second account's registry")?;
    let from = format!("{}/{ours_repo}:{commit}", b.ports.registry_host());
    let to = format!("{prod_host}/{shell_repo}:{commit}");
    let storage = b.stack_dir.join(format!("registry-{ACCOUNT}/data/docker/registry/v2/repositories"));

    let runs = b.rounds("row 5, promote", || {
        runtime_block(empty(&target, &storage, &ours_repo))?;
        let ours = b.ours(cmd!(sh, "{exe} promote --to local-prod --json"));
        let ours = measure::run("cargo xtask promote", ours, Stdout::Keep, &b.log("promote-ours"), LIMIT)?;
        anyhow::ensure!(
            ours.stdout.contains("\"action\":\"promoted\""),
            "promotion found nothing to do: {}",
            ours.stdout
        );

        runtime_block(empty(&target, &storage, &shell_repo))?;
        for image in [&from, &to] {
            let _ = cmd!(sh, "docker rmi {image}").quiet().ignore_stdout().ignore_stderr().run();
        }
        // The script's three steps, timed back to back.
        let mut theirs = 0.0;
        for (step, command) in [
            ("docker pull", cmd!(sh, "docker pull -q {from}")),
            ("docker tag", cmd!(sh, "docker tag {from} {to}")),
            ("docker push", cmd!(sh, "docker push -q {to}")),
        ] {
            let log = b.log(&format!("promote-{}", step.replace(' ', "-")));
            theirs += measure::run(step, cli.cmd(command), Stdout::Keep, &log, LIMIT)?.secs;
        }
        Ok((ours.secs, theirs, ours.peak_rss))
    })?;
    for image in [&from, &to] {
        let _ = cmd!(sh, "docker rmi {image}").quiet().ignore_stdout().ignore_stderr().run();
    }
    let rss: Vec<u64> = runs.iter().map(|r| r.2).collect();
    Ok(Row {
        id: "5".into(),
        what: format!(
            "`promote --to local-prod` of a {} image (one layer, incompressible) between the local stack's two accounts",
            measure::mib(made.bytes as f64)
        ),
        baseline: "`docker pull` + `docker tag` + `docker push` of the same image (a script's promotion)".into(),
        ours: runs.iter().map(|r| r.0).collect(),
        theirs: runs.iter().map(|r| r.1).collect(),
        also: vec![format!("ours' peak RSS {}", super::counts(&rss, measure::mib))],
    })
}

/// Nothing of `repository` left in the second account: its images in ECR, its blobs and
/// manifests in the registry's storage.
async fn empty(client: &aws_sdk_ecr::Client, storage: &Path, repository: &str) -> Result<()> {
    let images = client.list_images().repository_name(repository).send().await.sdk_context(|| "cannot list images")?;
    let ids = images.image_ids().to_vec();
    if !ids.is_empty() {
        client
            .batch_delete_image()
            .repository_name(repository)
            .set_image_ids(Some(ids))
            .send()
            .await
            .sdk_context(|| "cannot delete images")?;
    }
    let dir = storage.join(repository);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    Ok(())
}

/// The bench's rounds are synchronous; each SDK call waits on a runtime of its own.
fn runtime_block<T: Send>(future: impl Future<Output = Result<T>> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(future))
            .join()
            .expect("the SDK call does not panic")
    })
}
