//! Row 6: `push --jobs 2` of a workspace with two images, beside `push --jobs 1` of the
//! same workspace: both build and push both images in every round (each round changes a
//! file in each context first), against the one daemon.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_ecr::types::ImageTagMutability;
use xshell::cmd;

use super::{
    Bench, Row,
    fixture::{Fixture, Image},
    measure::{self, Stdout},
    tree::{self, MIB, Spec},
};
use xtask_local_stack::settings::LOCAL_STAGE;

/// Each image's context: a small service's worth of files.
const CONTEXT: Spec = Spec { files: 1_000, bytes: 48 * MIB, seed: 6 };
const LIMIT: Duration = Duration::from_secs(600);

pub async fn row(b: &Bench<'_>) -> Result<Row> {
    let region = b.ws.config.stage(LOCAL_STAGE)?.region.clone().unwrap_or_default();
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let repos = [format!("bench/jobs-svc-{nonce:x}"), format!("bench/jobs-worker-{nonce:x}")];
    let fixture = Fixture::workspace(
        &b.dir.join("jobs"),
        &[
            Image { name: "svc", context: "svc", repository: &repos[0] },
            Image { name: "worker", context: "worker", repository: &repos[1] },
        ],
    )?;
    for (dir, seed) in [("svc", 6), ("worker", 7)] {
        tree::generate(&fixture.dir.join(dir), Spec { seed, ..CONTEXT })?;
    }
    let client = aws_sdk_ecr::Client::new(&b.ports.sdk_config(&region).await);
    for name in &repos {
        super::create_repository(&client, name, ImageTagMutability::Immutable).await?;
    }
    let (sh, exe) = (&fixture.sh, &b.exe);
    let mut round = 0;
    // A new commit whose every image has new inputs, so each push builds both.
    let mut change = || -> Result<()> {
        round += 1;
        for dir in ["svc", "worker"] {
            fixture.write(&format!("{dir}/round.txt"), &format!("{nonce} {round}\n"))?;
        }
        fixture.commit(&format!("round {round}")).map(drop)
    };
    let runs = b.rounds("row 6, push --jobs", || {
        change()?;
        let one = b.ours(cmd!(sh, "{exe} push --stage local --jobs 1"));
        let one = measure::run("push --jobs 1", one, Stdout::Keep, &b.log("jobs-1"), LIMIT)?;
        change()?;
        let two = b.ours(cmd!(sh, "{exe} push --stage local --jobs 2"));
        let two = measure::run("push --jobs 2", two, Stdout::Keep, &b.log("jobs-2"), LIMIT)?;
        Ok((two.secs, one.secs))
    })?;
    for name in &repos {
        let _ = client.delete_repository().repository_name(name).force(true).send().await;
    }
    let _ = cmd!(sh, "docker image prune -f").quiet().ignore_stdout().run().context("cannot prune images");
    let (ours, theirs) = runs.into_iter().unzip();
    Ok(Row {
        id: "6".into(),
        what: "`push --jobs 2` of two images (48 MiB, 1,000-file context each), both built".into(),
        baseline: "`push --jobs 1` of the same workspace (one image after the other)".into(),
        ours,
        theirs,
        also: vec!["each round changes a file in both contexts, so both images build and push".into()],
    })
}
