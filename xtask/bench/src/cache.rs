//! Rows 7 and 8: what a one-line change to the app's sources costs to build.
//!
//! - Row 7: on a daemon with an empty data root (a fresh CI runner), `push --image app`
//!   with the build cache ECR has for the app's dependency stage, beside the same push with
//!   `--no-build-cache`. Each round starts a new daemon (dockerd from PATH, its own data
//!   root) and loads the local stack's stand-in base images into it, as a runner pulls
//!   them; only the push is timed.
//! - Row 8: on the warm default daemon, `build --image app` of the app's Dockerfile beside
//!   the same build of a naive one (`COPY . .`, then `cargo build --release`).
//!
//! Both build the real app/ (axum, tokio, serde, tracing), fetching crates from crates.io.

use std::time::Duration;

use anyhow::{Context, Result};
use xshell::cmd;

use super::{
    Bench, Row,
    fixture::Fixture,
    measure::{self, Stdout},
};
use xtask_local_stack::{base_images, dockerd::PrivateDaemon};

const LIMIT: Duration = Duration::from_secs(1200);

/// The naive Dockerfile of row 8's baseline: the whole context, then one build.
const NAIVE_DOCKERFILE: &str = "ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/app /usr/local/bin/app
FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=build /usr/local/bin/app /usr/local/bin/app
USER 10001:10001
ENTRYPOINT [\"/usr/local/bin/app\"]
";

/// A one-line change to the app's sources, a new commit.
fn change(fixture: &Fixture, round: &str) -> Result<String> {
    let path = fixture.dir.join("app/src/main.rs");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    std::fs::write(&path, format!("{text}\n// bench {round}\n"))?;
    fixture.commit(&format!("bench {round}"))
}

pub async fn cache_row(b: &Bench<'_>) -> Result<Row> {
    let fixture = Fixture::snapshot(b.ws, &b.dir.join("cache"))?;
    ensure_bootstrapped(b, &fixture)?;
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let mut round = 0;
    let mut push = |cache: bool| -> Result<f64> {
        round += 1;
        // Short: its sockets live below it (a socket path holds at most 107 bytes).
        let daemon = PrivateDaemon::unix("xtask-bench-dd-")?;
        copy_base_images(&daemon)?;
        change(&fixture, &format!("{nonce} {round}"))?;
        let (sh, exe, host) = (&fixture.sh, &b.exe, &daemon.host);
        let no_cache = (!cache).then_some("--no-build-cache");
        let push = b.ours(cmd!(sh, "{exe} push --stage local --image app {no_cache...}")).env("DOCKER_HOST", host);
        let name = if cache { "push-ecr-cache" } else { "push-no-cache" };
        Ok(measure::run(name, push, Stdout::Keep, &b.log(name), LIMIT)?.secs)
    };
    let runs =
        b.rounds("row 7, a fresh daemon, with and without ECR's build cache", || Ok((push(true)?, push(false)?)))?;
    let (ours, theirs) = runs.into_iter().unzip();
    Ok(Row {
        id: "7".into(),
        what: "`push --image app` of a one-line change to app/src on a daemon with an empty data root, with ECR's build cache".into(),
        baseline: "the same push with `--no-build-cache` (every dependency compiled)".into(),
        ours,
        theirs,
        also: vec![
            "each round starts a new dockerd 20.10 and loads the stand-in base images into it (untimed)".into(),
            "crates are fetched from crates.io in both (the cache mounts of a new daemon are empty)".into(),
        ],
    })
}

pub fn naive_row(b: &Bench<'_>) -> Result<Row> {
    let ours = Fixture::snapshot(b.ws, &b.dir.join("cache"))?;
    let naive = Fixture::snapshot(b.ws, &b.dir.join("naive"))?;
    naive.write("app/Dockerfile", NAIVE_DOCKERFILE)?;
    naive.commit("a naive Dockerfile")?;
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let mut round = 0;
    let mut build = |fixture: &Fixture, name: &str| -> Result<f64> {
        round += 1;
        change(fixture, &format!("{nonce} {round}"))?;
        let (sh, exe) = (&fixture.sh, &b.exe);
        let build = b.ours(cmd!(sh, "{exe} build --image app"));
        Ok(measure::run(name, build, Stdout::Keep, &b.log(name), LIMIT)?.secs)
    };
    let runs = b.rounds("row 8, a warm daemon, our Dockerfile and a naive one", || {
        Ok((build(&ours, "build-ours")?, build(&naive, "build-naive")?))
    })?;
    let (ours, theirs) = runs.into_iter().unzip();
    Ok(Row {
        id: "8".into(),
        what: "`build --image app` of a one-line change to app/src on a warm daemon, with app/Dockerfile".into(),
        baseline: "the same build with a naive Dockerfile (`COPY . .`, then `cargo build --release`)".into(),
        ours,
        theirs,
        also: vec!["the warm-up round builds both once, so each daemon cache holds the previous commit".into()],
    })
}

/// The local stage's repositories exist (bootstrapped by this run unless an earlier one did).
fn ensure_bootstrapped(b: &Bench<'_>, fixture: &Fixture) -> Result<()> {
    let (sh, exe) = (&fixture.sh, &b.exe);
    let images = b.ours(cmd!(sh, "{exe} images --stage local --json")).quiet().ignore_stderr().read();
    if images.is_err() {
        b.ours(cmd!(sh, "{exe} bootstrap --stage local --yes")).run().context("cannot bootstrap the local stage")?;
    }
    Ok(())
}

/// The local stack's stand-in base images, copied from the default daemon into `daemon`.
fn copy_base_images(daemon: &PrivateDaemon) -> Result<()> {
    block_on(async {
        let from = xtask_release::clients::docker::connect().await?;
        let path = daemon.host.strip_prefix("unix://").expect("a unix socket");
        let to = bollard::Docker::connect_with_unix(path, 600, bollard::API_DEFAULT_VERSION)?;
        base_images::copy(&from, &to).await
    })
}

/// Runs `future` to its end on a runtime of its own, on a thread of its own: the rounds are
/// synchronous and already run inside the command's runtime.
fn block_on<F: Future + Send>(future: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
                runtime.block_on(future)
            })
            .join()
            .expect("the thread ran to its end")
    })
}
