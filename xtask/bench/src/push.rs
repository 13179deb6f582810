//! Rows 1 and 2: `push` with nothing to do, beside the shell pipeline
//! `docker build` (warm cache) + `docker push` of the same context.
//!
//! Ours pushes to an IMMUTABLE repository through the build-request counter; the
//! pipeline pushes to a MUTABLE one of its own (a `docker push` of an existing tag
//! needs that), so neither sees the other's images.

use std::{cell::RefCell, path::Path, time::Duration};

use anyhow::{Context, Result, bail};
use aws_sdk_ecr::types::ImageTagMutability;
use xshell::cmd;

use super::{
    Bench, Row,
    counter::BuildCounter,
    counts,
    docker_cli::DockerCli,
    fixture::{Fixture, Image},
    measure::{self, Stdout},
    tree::{self, MIB, Spec},
};
use xtask_local_stack::settings::LOCAL_STAGE;
use xtask_release::clients::ecr;

/// The service context both push: a small service's worth of files.
const SERVICE: Spec = Spec { files: 1_000, bytes: 16 * MIB, seed: 1 };
/// Longest a command may take before the bench stops it and fails.
const LIMIT: Duration = Duration::from_secs(300);

pub async fn rows(b: &Bench<'_>, already_pushed: bool, unchanged_inputs: bool) -> Result<Vec<Row>> {
    let ws = b.ws;
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let (ours_repo, shell_repo) = (format!("bench/ours-{nonce:x}"), format!("bench/shell-{nonce:x}"));
    let fixture =
        Fixture::workspace(&b.dir.join("push"), &[Image { name: "svc", context: "svc", repository: &ours_repo }])?;
    let made = tree::generate(&fixture.dir.join("svc"), SERVICE)?;
    let first = fixture.commit("a service")?;

    let stage = ws.config.stage(LOCAL_STAGE)?;
    let registry = b.ports.registry_host();
    let client = aws_sdk_ecr::Client::new(&b.ports.sdk_config(stage.region.as_deref().unwrap_or_default()).await);
    for (name, mutability) in [(&ours_repo, ImageTagMutability::Immutable), (&shell_repo, ImageTagMutability::Mutable)]
    {
        super::create_repository(&client, name, mutability).await?;
    }
    let auth = ecr::authorization(&client).await?;

    let run = PushRun {
        b,
        counter: BuildCounter::start(&b.dir.join("docker.sock"))?,
        cli: DockerCli::login(&fixture.sh, &b.dir.join("docker-config"), &registry, &auth)?,
        blobs: b.stack_dir.join("registry/data/docker/registry/v2/blobs"),
        remote: format!("{registry}/{shell_repo}"),
        pushed: RefCell::new(vec![]),
        fixture,
    };
    let rows = run.rows(already_pushed, unchanged_inputs, made.files);

    // Clean up whatever happened: local images, then the repositories.
    let sh = &run.fixture.sh;
    for image in run.pushed.borrow().iter().chain([&format!("{ours_repo}:{first}")]) {
        let _ = cmd!(sh, "docker rmi {image}").quiet().ignore_stdout().ignore_stderr().run();
    }
    for name in [&ours_repo, &shell_repo] {
        let _ = client.delete_repository().repository_name(name).force(true).send().await;
    }
    rows
}

struct PushRun<'b> {
    b: &'b Bench<'b>,
    fixture: Fixture,
    counter: BuildCounter,
    cli: DockerCli,
    /// The local registry's blob storage.
    blobs: std::path::PathBuf,
    /// `registry/repository` the pipeline pushes to.
    remote: String,
    /// Every image name the pipeline made, removed at the end.
    pushed: RefCell<Vec<String>>,
}

/// One run of ours: seconds, build requests, registry bytes added.
struct Ours {
    secs: f64,
    cpu_secs: f64,
    /// Requests the stand-in AWS API answered while it ran.
    aws_requests: u64,
    builds: u64,
    added: u64,
}

impl PushRun<'_> {
    fn rows(&self, already_pushed: bool, unchanged_inputs: bool, files: u64) -> Result<Vec<Row>> {
        let b = self.b;
        // The commit's first push builds and uploads: proof that both counters see what they count.
        eprintln!("bench: push: first push of the commit (builds), and the pipeline's first build and push");
        let first = self.ours("built")?;
        if first.builds != 1 {
            bail!(
                "the build-request counter saw {} build requests in a push that builds once; its counts cannot be trusted",
                first.builds
            );
        }
        if first.added == 0 {
            bail!(
                "the registry storage at {} did not grow when the first push uploaded its layers; is the local stack running from another workspace?",
                self.blobs.display()
            );
        }
        self.pipeline(&self.head()?)?;

        let context = format!("{files} files, {}", measure::mib(SERVICE.bytes as f64));
        let mut rows = vec![];
        if already_pushed {
            let commit = self.head()?;
            let runs = b.rounds("row 1, push of a commit already in ECR", || {
                Ok((self.ours("skipped")?, self.pipeline(&commit)?))
            })?;
            let (ours, theirs): (Vec<Ours>, Vec<(f64, u64)>) = runs.into_iter().unzip();
            rows.push(Row {
                id: "1".into(),
                what: format!("`push`, the commit's image already in ECR ({context} context)"),
                baseline: "`docker build` (warm cache) + `docker push`".into(),
                ours: ours.iter().map(|o| o.secs).collect(),
                theirs: theirs.iter().map(|t| t.0).collect(),
                also: vec![
                    format!(
                        "CPU of ours (user + system): {} (goal: ≤ 40 ms)",
                        measure::Stats::of(&ours.iter().map(|o| o.cpu_secs).collect::<Vec<_>>()).show(measure::secs)
                    ),
                    format!(
                        "AWS API requests while ours ran, as the stand-in AWS API logged them (its front door's to it included): {}",
                        counts(&ours.iter().map(|o| o.aws_requests).collect::<Vec<_>>(), |n| format!("{n}"))
                    ),
                    format!(
                        "build requests ours sent the daemon: {} (goal: 0)",
                        counts(&ours.iter().map(|o| o.builds).collect::<Vec<_>>(), |n| format!("{n}"))
                    ),
                ],
            });
        }
        if unchanged_inputs {
            let runs = b.rounds("row 2, push of a new commit with unchanged inputs", || {
                // A change outside the image's context.
                let readme = self.fixture.dir.join("README.md");
                let text = std::fs::read_to_string(&readme)?;
                self.fixture.write("README.md", &format!("{text}One more line.\n"))?;
                let commit = self.fixture.commit("a change outside the image")?;
                Ok((self.ours("retagged")?, self.pipeline(&commit)?))
            })?;
            let (ours, theirs): (Vec<Ours>, Vec<(f64, u64)>) = runs.into_iter().unzip();
            let bytes = |values: Vec<u64>| counts(&values, measure::bytes);
            rows.push(Row {
                id: "2".into(),
                what: format!("`push`, a new commit whose image inputs are unchanged ({context} context)"),
                baseline: "`docker build` (warm cache) + `docker push`".into(),
                ours: ours.iter().map(|o| o.secs).collect(),
                theirs: theirs.iter().map(|t| t.0).collect(),
                also: vec![
                    format!(
                        "registry bytes added by ours: {} (goal: 0)",
                        bytes(ours.iter().map(|o| o.added).collect())
                    ),
                    format!("by the pipeline: {}", bytes(theirs.iter().map(|t| t.1).collect())),
                    format!(
                        "build requests ours sent the daemon: {}",
                        counts(&ours.iter().map(|o| o.builds).collect::<Vec<_>>(), |n| format!("{n}"))
                    ),
                ],
            });
        }
        Ok(rows)
    }

    fn head(&self) -> Result<String> {
        let sh = &self.fixture.sh;
        Ok(cmd!(sh, "git rev-parse HEAD").quiet().read()?)
    }

    /// `cargo xtask push`, which must report `action` for the image.
    fn ours(&self, action: &str) -> Result<Ours> {
        let (sh, exe, log) = (&self.fixture.sh, &self.b.exe, self.b.log("push-ours"));
        let cmd =
            self.b.ours(cmd!(sh, "{exe} push --stage local --json")).env("DOCKER_HOST", self.counter.docker_host());
        self.counter.take();
        let before = blob_bytes(&self.blobs)?;
        let requests_before = aws_requests(&self.b.stack_dir)?;
        let sample = measure::run("cargo xtask push", cmd, Stdout::Keep, &log, LIMIT)?;
        let aws_requests = aws_requests(&self.b.stack_dir)? - requests_before;
        let builds = self.counter.take();
        let added = blob_bytes(&self.blobs)?.saturating_sub(before);
        let report: serde_json::Value = serde_json::from_str(sample.stdout.trim())
            .with_context(|| format!("`cargo xtask push --json` printed no JSON report: {}", sample.stdout))?;
        let done = report["images"][0]["action"].as_str().unwrap_or("nothing");
        if done != action {
            bail!("`cargo xtask push` {done} the image where the bench expected `{action}`; see {}", log.display());
        }
        Ok(Ours { secs: sample.secs, cpu_secs: sample.cpu_secs, aws_requests, builds, added })
    }

    /// `docker build -t REMOTE:TAG CONTEXT && docker push REMOTE:TAG`: seconds, registry bytes added.
    fn pipeline(&self, tag: &str) -> Result<(f64, u64)> {
        let sh = &self.fixture.sh;
        let (image, context) = (format!("{}:{tag}", self.remote), self.fixture.dir.join("svc"));
        let before = blob_bytes(&self.blobs)?;
        let build = self.cli.cmd(cmd!(sh, "docker build -t {image} {context}"));
        let build = measure::run("docker build", build, Stdout::Keep, &self.b.log("push-docker-build"), LIMIT)?;
        self.pushed.borrow_mut().push(image.clone());
        let push = self.cli.cmd(cmd!(sh, "docker push {image}"));
        let push = measure::run("docker push", push, Stdout::Keep, &self.b.log("push-docker-push"), LIMIT)?;
        Ok((build.secs + push.secs, blob_bytes(&self.blobs)?.saturating_sub(before)))
    }
}

/// Requests the stand-in AWS API has answered so far: the request lines of its log.
fn aws_requests(stack_dir: &Path) -> Result<u64> {
    let log = stack_dir.join("moto.log");
    let text = std::fs::read(&log).with_context(|| format!("cannot read the AWS API's log {}", log.display()))?;
    Ok(String::from_utf8_lossy(&text).lines().filter(|line| is_request_line(line)).count() as u64)
}

/// A line the AWS API's HTTP server logs per request: `… "POST / HTTP/1.1" 200 -`.
fn is_request_line(line: &str) -> bool {
    line.split('"').nth(1).is_some_and(|request| request.ends_with(" HTTP/1.1") || request.ends_with(" HTTP/1.0"))
}

/// Bytes of every file under `dir` (0 when it does not exist yet).
fn blob_bytes(dir: &Path) -> Result<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(0) };
    let mut total = 0;
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += blob_bytes(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_lines_of_the_aws_apis_log_are_counted_and_nothing_else() {
        assert!(super::is_request_line(r#"127.0.0.1 - - [08/Dec/2026 00:29:03] "POST / HTTP/1.1" 200 -"#));
        assert!(!super::is_request_line(" * Running on http://127.0.0.1:5000"));
        assert!(!super::is_request_line("Traceback (most recent call last):"));
    }
}
