//! `cargo xtask push`: build, tag with the commit and push to ECR, never twice.

use std::{io::Write, process::ExitCode};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use serde::Serialize;

use crate::{
    aws,
    commands::{build::build_spec, stage_args::StageArgs},
    config::Stage,
    docker,
    ecr::{self, RegistryAuth, Tagged},
    git::{Git, ImageTag},
    image::Plan,
    progress::Progress,
    workspace::Workspace,
};

/// Build each image through the Docker Engine API, tag it with the commit's full SHA,
/// push it to its ECR repository and confirm it is there.
///
/// Nothing is built twice: a commit whose tag is already in ECR is skipped, and a commit
/// whose image inputs (context after .dockerignore, Dockerfile, build arguments other than
/// the commit, target, platform) match an image already pushed gets that image's tag
/// added (ECR BatchGetImage + PutImage) instead of a build.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// Image to push (repeatable); all configured images by default.
    #[arg(long = "image", value_name = "NAME")]
    images: Vec<String>,
    /// Build even when an image with the same inputs is already in ECR.
    #[arg(long)]
    rebuild: bool,
    /// Print one JSON object on stdout: {"commit", "stage", "images": [...]}.
    #[arg(long)]
    json: bool,
    /// Push a dirty work tree as `<sha>-dirty-<hash>` (local stage only).
    #[arg(long)]
    allow_dirty: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub commit: String,
    pub stage: String,
    pub images: Vec<ImageReport>,
}

#[derive(Debug, Serialize)]
pub struct ImageReport {
    pub name: String,
    pub repository: String,
    pub uri: String,
    pub tag: String,
    pub digest: String,
    pub action: Action,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Built,
    Skipped,
    Retagged,
}

struct Session<'a> {
    stage: &'a Stage,
    ecr: aws_sdk_ecr::Client,
    progress: Progress,
    docker: Option<Docker>,
    auth: Option<RegistryAuth>,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let stage = self.stage.resolve(ws).await?;
        let git = Git::open(&ws.root)?;
        let tag = git.work_tree_tag(self.allow_dirty)?;
        let report = push(ws, stage, self.stage.profile.as_deref(), &tag, &self.images, self.rebuild).await?;
        if self.json {
            println!("{}", serde_json::to_string(&report)?);
        }
        write_github_output(&report)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Pushes the images named in `names` (all when empty) of the work tree tagged `tag`.
pub async fn push(
    ws: &Workspace,
    stage: &Stage,
    profile: Option<&str>,
    tag: &ImageTag,
    names: &[String],
    rebuild: bool,
) -> Result<Report> {
    let images = ws.config.select_images(names)?;
    if tag.is_dirty() && !stage.is_local() {
        bail!("a dirty work tree can only be pushed to the local stage; commit or stash the changes first");
    }
    let git = Git::open(&ws.root)?;
    let (sdk, target) = aws::load(stage, profile, &ws.config.local).await?;
    aws::ensure_credentials(&sdk, &target).await?;
    let mut session =
        Session { stage, ecr: aws_sdk_ecr::Client::new(&sdk), progress: Progress::detect(), docker: None, auth: None };
    let source = git.source_url();
    let mut report = Report { commit: tag.to_string(), stage: stage.name.clone(), images: vec![] };
    for image in images {
        let plan = Plan::new(&ws.config, stage, image, tag, &source)?;
        let done = session.push(&plan, rebuild).await?;
        session.progress.println(format!(
            "{}: {} {}:{}@{}",
            done.name,
            match done.action {
                Action::Built => "built and pushed",
                Action::Skipped => "already pushed, nothing to do:",
                Action::Retagged => "unchanged inputs, tagged the existing image:",
            },
            done.uri,
            done.tag,
            done.digest
        ));
        report.images.push(done);
    }
    Ok(report)
}

impl Session<'_> {
    async fn push(&mut self, plan: &Plan<'_>, rebuild: bool) -> Result<ImageReport> {
        let image = plan.image;
        let hint = format!("cargo xtask bootstrap --stage {}", self.stage.name);
        let repository = ecr::repository(&self.ecr, &image.repository, &hint).await?;
        let uri = repository.repository_uri().context("ECR returned a repository without its URI")?.to_string();
        let tag = plan.tag.to_string();
        let report = |digest: String, action| ImageReport {
            name: image.name.clone(),
            repository: image.repository.clone(),
            uri: uri.clone(),
            tag: tag.clone(),
            digest,
            action,
        };

        // 1. The commit is already there: nothing to do.
        if let Some(existing) = ecr::image_by_tag(&self.ecr, &image.repository, &tag).await? {
            let digest = existing.image_digest().context("ECR listed an image without a digest")?;
            return Ok(report(digest.to_string(), Action::Skipped));
        }

        // 2. An image with the same inputs exists: add this commit's tag to it.
        let inputs_tag = crate::image::inputs_tag(&plan.inputs_key()?);
        if !rebuild && ecr::image_by_tag(&self.ecr, &image.repository, &inputs_tag).await?.is_some() {
            let manifest = ecr::manifest(&self.ecr, &image.repository, &inputs_tag).await?;
            ecr::put_tag(&self.ecr, &image.repository, &manifest, &tag).await?;
            let digest = self.confirm(&image.repository, &tag, &manifest.digest).await?;
            return Ok(report(digest, Action::Retagged));
        }

        // 3. Build and push.
        let docker = match &self.docker {
            Some(docker) => docker.clone(),
            None => self.docker.insert(docker::connect().await?).clone(),
        };
        docker::build::build(&docker, &build_spec(plan), &self.progress).await?;
        self.registry_auth().await?;
        let auth = self.auth.as_ref().expect("fetched above");
        let pushed = docker::push::push(&docker, &plan.local_name(), &image.repository, &tag, auth, &self.progress).await?;
        let digest = self.confirm(&image.repository, &tag, &pushed.digest).await?;

        // Record the inputs key on the image, for the next commit with the same inputs.
        let manifest = ecr::manifest(&self.ecr, &image.repository, &tag).await?;
        match ecr::put_tag(&self.ecr, &image.repository, &manifest, &inputs_tag).await {
            Ok(Tagged::Added | Tagged::AlreadyThere) => {}
            // Another job built an equivalent image first; its key tag serves as well.
            Err(err) => self.progress.println(format!("note: {image}: inputs tag not recorded: {err:#}", image = image.name)),
        }
        Ok(report(digest, Action::Built))
    }

    /// `DescribeImages` shows `tag` on the image with `digest`. The local registry
    /// reaches the emulated ECR asynchronously, so give it a moment.
    async fn confirm(&self, repository: &str, tag: &str, digest: &str) -> Result<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(found) = ecr::image_by_tag(&self.ecr, repository, tag).await? {
                let found = found.image_digest().unwrap_or_default().to_string();
                if found != digest {
                    bail!("ECR shows {repository}:{tag} as {found}, but {digest} was pushed");
                }
                return Ok(found);
            }
            if std::time::Instant::now() > deadline {
                bail!("the push of {repository}:{tag} finished but ECR does not list the tag; check the registry endpoint of stage `{}`", self.stage.name);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Fetches registry credentials once per run.
    async fn registry_auth(&mut self) -> Result<()> {
        if self.auth.is_none() {
            let mut auth = ecr::authorization(&self.ecr).await?;
            if let Some(registry) = &self.stage.registry {
                auth.host = registry.clone();
            }
            self.auth = Some(auth);
        }
        Ok(())
    }
}

/// Under GitHub Actions, `image_uri` and `image_digest` step outputs.
fn write_github_output(report: &Report) -> Result<()> {
    let Some(path) = std::env::var_os("GITHUB_OUTPUT") else { return Ok(()) };
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .context("cannot open $GITHUB_OUTPUT")?;
    for image in &report.images {
        writeln!(file, "{}_image_uri={}:{}", image.name, image.uri, image.tag)?;
        writeln!(file, "{}_image_digest={}", image.name, image.digest)?;
    }
    if let [image] = report.images.as_slice() {
        writeln!(file, "image_uri={}:{}", image.uri, image.tag)?;
        writeln!(file, "image_digest={}", image.digest)?;
    }
    Ok(())
}
