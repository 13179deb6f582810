//! Build, tag with the commit and push each image to ECR, never twice: a commit already
//! in ECR is skipped, and one whose image inputs match an image already pushed gets that
//! image's tag (BatchGetImage + PutImage) instead of a build.
//!
//! Each channel writes its own repositories (`domain::channel`): main's push reads and
//! writes main's alone; a pull request's writes `pr/<repository>` alone, and reads nothing
//! of main's but its build cache.

use std::io::Write;

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::sync::OnceCell;

pub use crate::domain::channel::Channel;

use crate::{
    clients::docker::{
        self,
        build::{BuildSpec, BuilderChoice},
    },
    clients::ecr::{self, RegistryAuth, Tagged},
    clients::git::{Git, ImageTag},
    clients::registry_api::Registry,
    domain::image::{self, Plan},
    domain::{config::TrustedKey, provenance, retention},
    stage::StageContext,
    support::{exit::Verdict, progress::Progress},
    workflows::attest::{self, Key, Signer, Trust},
};

/// What to push.
pub struct PushOptions<'a> {
    /// The work tree's tag (`git.work_tree_tag`), taken once by the caller.
    pub tag: &'a ImageTag,
    /// Images by name; all configured images when empty.
    pub images: &'a [String],
    /// Build even when an image with the same inputs is in ECR.
    pub rebuild: bool,
    /// Read the images' build cache in ECR (main's repository), and on the main channel
    /// write it there.
    pub build_cache: bool,
    pub builder: BuilderChoice,
    /// Which line of history the images belong to: where they go and which lifecycle rule
    /// counts them.
    pub channel: Channel,
    /// How many images are built and pushed at once (at least 1).
    pub jobs: usize,
}

/// The default of `--jobs`: every image at once, up to the CPU count.
pub fn default_jobs(images: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    images.clamp(1, cpus.max(1))
}

impl Channel {
    /// `main` when the commit is reachable from the main branch (origin's or the local one);
    /// `pr` otherwise, and for a dirty work tree.
    pub fn of(git: &Git, tag: &ImageTag, main_branch: &str) -> Result<Channel> {
        let on_main = !tag.is_dirty() && git.is_on_branch(&tag.commit, main_branch)?;
        Ok(if on_main { Channel::Main } else { Channel::Pr })
    }
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
    /// The repository the channel's images go to (`pr/<repository>` for a pull request's).
    pub repository: String,
    pub uri: String,
    pub tag: String,
    pub digest: String,
    pub action: Action,
    /// `main-<tag>` or `pr-<tag>`: the lifecycle rule that counts the image.
    pub channel_tag: String,
    /// The referrer holding the signed provenance this push attached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Built,
    Skipped,
    Retagged,
    /// Another job pushed the commit's tag first, with the same revision and inputs.
    #[serde(rename = "pushed-by-another-job")]
    PushedByAnotherJob,
}

/// Pushes the images `options` names of the work tree tagged `options.tag`.
pub async fn push(ctx: &StageContext<'_>, options: &PushOptions<'_>) -> Result<Report> {
    let ws = ctx.ws;
    let images = ws.config.select_images(options.images)?;
    let tag = options.tag;
    if let Some(from) = &ctx.stage.promote_from {
        bail!(
            "stage `{}` runs the images of stage `{from}` and never builds its own: push to `{from}`, then `cargo xtask promote --to {}`",
            ctx.stage.name,
            ctx.stage.name
        );
    }
    if tag.is_dirty() && !ctx.access.accepts_dirty_images {
        bail!("a dirty work tree can only be pushed to the local stage; commit or stash the changes first");
    }
    let source = Git::open(&ws.root)?.source_url();
    let mut plans = vec![];
    for image in images {
        plans.push(Plan::new(&ws.config, &ctx.build_args(), image, tag, &source)?);
    }
    let session = Session {
        ctx,
        progress: Progress::detect(),
        options,
        source,
        signer: OnceCell::new(),
        registry: OnceCell::new(),
        trust: [OnceCell::new(), OnceCell::new()],
    };
    // Images go through the daemon side by side, `jobs` at a time; the report keeps the
    // configured order. The first failure ends the command (the others are dropped mid-way,
    // as an interruption drops them: nothing incomplete is tagged).
    let marked: Vec<(ImageReport, bool)> =
        futures_util::stream::iter(plans.iter().map(|plan| session.push_and_mark(plan)))
            .buffered(options.jobs.max(1))
            .try_collect()
            .await?;
    // A push that gave no image its main tag leaves main's tags as the push that gave them left them.
    let tagged_main = marked.iter().any(|(_, added)| *added);
    let done: Vec<ImageReport> = marked.into_iter().map(|(image, _)| image).collect();
    if options.channel == Channel::Main && tagged_main {
        let repositories: Vec<&str> = done.iter().map(|image| image.repository.as_str()).collect();
        drop_stale_main_tags(ctx, &repositories, &tag.commit).await?;
    }
    Ok(Report { commit: tag.to_string(), stage: ctx.stage.name.clone(), images: done })
}

/// Keeps `main-` tags on the images of main's newest `keep-images` commits only, in each of
/// `repositories`, counted from `head` along main's first parents (see
/// `retention::stale_main_tags`).
async fn drop_stale_main_tags(ctx: &StageContext<'_>, repositories: &[&str], head: &str) -> Result<()> {
    let git = Git::open(&ctx.ws.root)?;
    let keep = ctx.ws.config.keep_images as usize;
    let mut recent = vec![head.to_string()];
    recent.extend(git.first_parents(head, keep.saturating_sub(1))?);
    let recent: std::collections::BTreeSet<&str> = recent.iter().map(String::as_str).collect();
    let older = |commit: &str| git.has_commit(commit) && git.is_ancestor(commit, head).unwrap_or(false);
    for repository in repositories {
        let details = ecr::images(&ctx.ecr, repository).await?;
        let tags: Vec<Vec<String>> = details.iter().map(|d| d.image_tags().to_vec()).collect();
        let facts: Vec<retention::Facts> = tags.iter().map(|tags| retention::Facts { tags, pushed_at: 0 }).collect();
        let stale = retention::stale_main_tags(&facts, &recent, &older);
        if stale.is_empty() {
            continue;
        }
        ecr::delete_tags(&ctx.ecr, repository, &stale).await.with_context(|| {
            format!("cannot drop the main tags of `{repository}` older than main's newest {keep} commits")
        })?;
        eprintln!("{repository}: dropped {} (older than main's newest {keep} commits)", stale.join(", "));
    }
    Ok(())
}

/// An image's build cache in ECR, in main's repository.
struct Cache {
    /// `buildcache-<key>`.
    tag: String,
    /// `<registry>/<repository>:<tag>`, as BuildKit reads it.
    reference: String,
    /// Whether ECR has it already.
    present: bool,
    /// Whether this push writes it when missing: main's alone. A pull request's push reads
    /// main's cache and writes none: a cache a pull request wrote would be read by the next
    /// pull request's build, and it would be another tag for its lifecycle rule to count.
    export: bool,
}

struct Session<'a> {
    ctx: &'a StageContext<'a>,
    progress: Progress,
    options: &'a PushOptions<'a>,
    /// Where the commit can be fetched (the provenance's source).
    source: String,
    /// The stage's signer of this channel, opened on first use.
    signer: OnceCell<Signer>,
    /// The registry's HTTP API, opened on first use.
    registry: OnceCell<Registry>,
    /// The stage's main and pull-request keys, each read on first use.
    trust: [OnceCell<Key>; 2],
}

impl Session<'_> {
    /// Pushes one image, then adds its channel tag (also to a skipped image: a pull
    /// request's image gains main's tag once merged) and says what was done, in one line.
    /// Also says whether the channel tag is new (a skipped image may carry it already).
    async fn push_and_mark(&self, plan: &Plan<'_>) -> Result<(ImageReport, bool)> {
        let (mut done, tags_in_ecr) = self.push(plan).await?;
        let ecr = &self.ctx.ecr;
        let channel_tag = self.options.channel.tag(&done.tag);
        let added = !tags_in_ecr.contains(&channel_tag);
        if added {
            let manifest = ecr::manifest(ecr, &done.repository, &done.tag).await?;
            ecr::put_tag(ecr, &done.repository, &manifest, &channel_tag).await?.require(
                &done.repository,
                &channel_tag,
                &manifest.digest,
            )?;
        }
        done.channel_tag = channel_tag;
        self.progress.println(format!(
            "{}: {} {}:{}@{}",
            done.name,
            match done.action {
                Action::Built => "built and pushed",
                Action::Skipped => "already pushed, nothing to do:",
                Action::Retagged => "unchanged inputs, tagged the existing image:",
                Action::PushedByAnotherJob => "pushed by another job, using its image:",
            },
            done.uri,
            done.tag,
            done.digest
        ));
        Ok((done, added))
    }

    /// Pushes one image; also returns the tags ECR listed on it when it was there already
    /// (a skipped image), none otherwise.
    async fn push(&self, plan: &Plan<'_>) -> Result<(ImageReport, Vec<String>)> {
        let image = plan.image;
        let ecr = &self.ctx.ecr;
        let channel = self.options.channel;
        // The channel's repository: everything below reads and writes it alone (but the
        // build cache, read from main's).
        let repo = channel.repository(image);
        let tag = plan.tag.to_string();
        // One call says whether the repository exists and whether the commit is in it.
        let existing = ecr::image_in(ecr, &repo, &tag, &self.ctx.bootstrap_hint()).await?;
        let uri = self.ctx.repository_uri(&repo).await?;
        let report = |digest: String, action| ImageReport {
            name: image.name.clone(),
            repository: repo.clone(),
            uri: uri.clone(),
            tag: tag.clone(),
            digest,
            action,
            channel_tag: String::new(),
            provenance: None,
        };

        // 1. The commit is already there: nothing to do.
        //    Only if this stage's release path put it there: its provenance names the commit.
        if let Some(existing) = existing {
            let digest = existing.image_digest().context("ECR listed an image without a digest")?;
            let trust = self.reuse_trust(channel == Channel::Pr).await?;
            if let Err(unproven) = attest::find(self.registry().await?, &repo, digest, Some(&tag), &trust).await? {
                bail!(Verdict(format!(
                    "{repo}:{tag} is in ECR, but {unproven}: something other than this stage's push wrote the tag; delete the image (`cargo xtask untag --stage {} --delete-image {}:{tag}`) and push again",
                    self.ctx.stage.name, image.name
                )));
            }
            return Ok((report(digest.to_string(), Action::Skipped), existing.image_tags().to_vec()));
        }

        // Whatever comes next tags an image with the commit, which only a signed statement
        // may follow: fail now, before anything is pushed, if this caller cannot sign.
        self.signer().await?;

        // 2. An image with the same inputs (source, and base images as they resolve now)
        //    exists: add this commit's tag to it.
        let docker = self.ctx.docker().await?;
        let inputs = plan.inputs(docker).await?;
        let image::Inputs { source_key, bases, tag: inputs_tag, sent } = &inputs;
        // The files just keyed are what the build sends: under a commit's tag, each must be
        // the commit's (the tag was taken before this read; a file may have appeared since).
        if !plan.tag.is_dirty() {
            let stray = Git::open(&self.ctx.ws.root)?.not_in_head(sent)?;
            if !stray.is_empty() {
                bail!(
                    "image `{}`: its build context sends files that commit {} does not hold:\n  {}\nexclude them in the context's .dockerignore, or pass --allow-dirty for a local-only dirty tag",
                    image.name,
                    crate::support::text::prefix(&plan.tag.commit, 12),
                    stray.join("\n  ")
                );
            }
        }
        let started = attest::now();
        let inputs_key = inputs_tag.strip_prefix(image::INPUTS_TAG_PREFIX).unwrap_or(inputs_tag);
        // Reuse stays inside the channel's repository: main reuses only what main's key
        // signed; a pull request what either key signed there. Main's image is not taken
        // into a pull request's repository (ECR cannot mount another repository's layers):
        // that push builds, mostly from main's build cache.
        let reusable = match self.options.rebuild {
            true => None,
            false => self.reusable(&repo, inputs_tag, inputs_key, channel == Channel::Pr).await?,
        };
        if let Some((commit, digest)) = reusable {
            let manifest = ecr::manifest_by_digest(ecr, &repo, &digest).await?;
            ecr::put_tag(ecr, &repo, &manifest, &tag).await?.require(&repo, &tag, &manifest.digest)?;
            let digest = self.confirm(&repo, &tag, &manifest.digest).await?;
            let mut done = report(digest.clone(), Action::Retagged);
            let build = self.build_facts(plan, &repo, &digest, inputs_key, &started, Some(commit));
            done.provenance = Some(self.attest(&image.name, build).await?);
            return Ok((done, vec![]));
        }

        // 3. Build, recording the inputs on the image (and reading the build cache ECR has
        //    for it), and push.
        let auth = self.ctx.registry().await?;
        let cache = self.cache(plan, &inputs, auth).await?;
        let mut spec = build_spec(plan, self.ctx.access.build_network.clone(), self.options.builder);
        spec.labels.extend(plan.input_labels(source_key, bases));
        if let Some(Cache { reference, present: true, .. }) = &cache {
            spec.cache_from.push(reference.clone());
            spec.registry = Some(auth.clone());
        }
        docker::build::build(docker, &spec, &self.progress).await?;
        let pushed = match docker::push::push(docker, &plan.local_name(), &repo, &tag, auth, &self.progress).await {
            Ok(pushed) => pushed,
            // Another job pushed this commit's tag first (two runners, one commit): its
            // image serves if it was built from the same revision and inputs.
            Err(err) if err.chain().any(|e| e.is::<docker::push::TagTaken>()) => {
                let digest = self.adopt(plan, &repo, source_key, bases).await.map_err(|e| e.context(err))?;
                return Ok((report(digest, Action::PushedByAnotherJob), vec![]));
            }
            Err(err) => return Err(err),
        };
        let digest = self.confirm(&repo, &tag, &pushed.digest).await?;
        let mut done = report(digest.clone(), Action::Built);
        let build = self.build_facts(plan, &repo, &digest, inputs_key, &started, None);
        done.provenance = Some(self.attest(&image.name, build).await?);

        // Record the inputs key on the image, for the next commit with the same inputs.
        let manifest = ecr::manifest(ecr, &repo, &tag).await?;
        match ecr::put_tag(ecr, &repo, &manifest, inputs_tag).await? {
            Tagged::Added | Tagged::AlreadyThere => {}
            // Another job built an equivalent image first; its inputs tag serves as well.
            Tagged::Taken(other) => self.progress.println(format!(
                "note: {}: an image with the same inputs ({other}) was pushed first; the next commit reuses that one",
                image.name
            )),
        }

        // 4. Export the build cache for the next runner, once per key. It is an optimisation:
        //    a failure is reported, never fatal, and touches no tag of the image.
        if let Some(cache @ Cache { present: false, export: true, .. }) = &cache
            && let Err(err) = self.export_cache(plan, cache, auth).await
        {
            self.progress.println(format!("warning: {}: the build cache was not pushed: {err:#}", image.name));
        }
        Ok((done, vec![]))
    }

    /// The registry's HTTP API, with the stage's credentials.
    async fn registry(&self) -> Result<&Registry> {
        self.registry.get_or_try_init(|| async { Registry::new(self.ctx.registry().await?) }).await
    }

    async fn signer(&self) -> Result<&Signer> {
        self.signer
            .get_or_try_init(|| async {
                let keys = self.ctx.ws.config.signing_keys(self.ctx.stage).context("a stage that pushes signs")?;
                let key = match self.options.channel {
                    Channel::Main => keys.main,
                    Channel::Pr => keys.pr,
                };
                Signer::open(self.ctx, &key).await
            })
            .await
    }

    /// Whose provenance lets this push reuse an image or accept one already tagged: the
    /// stage's main key, and its pull-request key when `with_pr_key` (never on the main
    /// channel: what a pull request wrote is never main's).
    async fn reuse_trust(&self, with_pr_key: bool) -> Result<Trust> {
        let keys = self.ctx.ws.config.signing_keys(self.ctx.stage).context("a stage that pushes signs its images")?;
        let mut trust = Trust { keys: vec![self.key(0, &keys.main).await?] };
        if with_pr_key {
            trust.keys.push(self.key(1, &keys.pr).await?);
        }
        Ok(trust)
    }

    /// The public half of the stage's KMS key `name`, read once into `self.trust[slot]`.
    async fn key(&self, slot: usize, name: &str) -> Result<Key> {
        let key = TrustedKey::Kms { key: name.to_string(), stage: self.ctx.stage.name.clone() };
        self.trust[slot].get_or_try_init(|| attest::read(&key, self.ctx, None)).await.cloned()
    }

    /// The image under `inputs_tag` in `repository` (the channel's), if a trusted provenance
    /// says it was built from these inputs: `(the commit it names, its digest)`. Otherwise
    /// says why it is not reused.
    async fn reusable(
        &self,
        repository: &str,
        inputs_tag: &str,
        inputs_key: &str,
        with_pr_key: bool,
    ) -> Result<Option<(String, String)>> {
        let Some(found) = ecr::image_by_tag(&self.ctx.ecr, repository, inputs_tag).await? else { return Ok(None) };
        let digest = found.image_digest().context("ECR listed an image without a digest")?;
        let trust = self.reuse_trust(with_pr_key).await?;
        match attest::find(self.registry().await?, repository, digest, None, &trust).await? {
            Ok(verified) if verified.inputs_key == inputs_key => Ok(Some((verified.commit, digest.to_string()))),
            Ok(verified) => {
                self.progress.println(format!(
                    "note: {repository}:{inputs_tag}: its provenance names other inputs ({}); building instead",
                    verified.inputs_key
                ));
                Ok(None)
            }
            Err(unproven) => {
                self.progress
                    .println(format!("note: {repository}:{inputs_tag} is not reused: {unproven}; building instead"));
                Ok(None)
            }
        }
    }

    /// What the provenance of `plan`'s image at `digest` says.
    fn build_facts(
        &self,
        plan: &Plan<'_>,
        repository: &str,
        digest: &str,
        inputs_key: &str,
        started: &str,
        reused_from: Option<String>,
    ) -> provenance::Build {
        let image = plan.image;
        provenance::Build {
            image_digest: digest.to_string(),
            image_repository: repository.to_string(),
            commit: plan.tag.to_string(),
            repository_url: self.source.clone(),
            inputs_key: inputs_key.to_string(),
            dockerfile: image.dockerfile.display().to_string(),
            target: image.target.clone(),
            build_args: plan.keyed_args().clone(),
            platforms: vec![image.platform.to_string()],
            builder_id: String::new(),
            run_url: None,
            reused_from,
            started_on: started.to_string(),
            finished_on: attest::now(),
        }
    }

    /// Signs and attaches `build`'s provenance; returns the referrer's digest.
    async fn attest(&self, name: &str, build: provenance::Build) -> Result<String> {
        let signer = self.signer().await?;
        let referrer = signer.attest(self.registry().await?, build).await?;
        self.progress.println(format!("{name}: signed its provenance with {} ({referrer})", signer.key()));
        Ok(referrer)
    }

    /// The image's build cache in main's repository (`cache-stage`), when BuildKit builds it:
    /// read by either channel, written by main's alone.
    async fn cache(&self, plan: &Plan<'_>, inputs: &image::Inputs, auth: &RegistryAuth) -> Result<Option<Cache>> {
        if !self.options.build_cache {
            return Ok(None);
        }
        let Some(tag) = plan.cache_tag(inputs)? else { return Ok(None) };
        if !docker::build::is_buildkit(self.ctx.docker().await?, self.options.builder).await {
            return Ok(None);
        }
        let present = ecr::image_by_tag(&self.ctx.ecr, &plan.image.repository, &tag).await?.is_some();
        let reference = format!("{}/{}:{tag}", auth.host, plan.image.repository);
        Ok(Some(Cache { tag, reference, present, export: self.options.channel == Channel::Main }))
    }

    /// Builds the cache stage alone with inline cache metadata (its steps are cached from
    /// the build just made) and pushes it under its cache tag.
    async fn export_cache(&self, plan: &Plan<'_>, cache: &Cache, auth: &RegistryAuth) -> Result<()> {
        let docker = self.ctx.docker().await?;
        let image = plan.image;
        let local = format!("{}:{}", image.repository, cache.tag);
        let mut spec = build_spec(plan, self.ctx.access.build_network.clone(), self.options.builder);
        spec.tag = local.clone();
        spec.target = image.cache_stage.clone();
        spec.build_args.insert(crate::domain::build_cache::INLINE_CACHE_ARG.to_string(), "1".to_string());
        docker::build::build(docker, &spec, &self.progress).await?;
        let pushed = docker::push::push(docker, &local, &image.repository, &cache.tag, auth, &self.progress).await;
        // The local names go either way: the daemon keeps the layers as build cache.
        for name in [local.clone(), format!("{}/{}:{}", auth.host, image.repository, cache.tag)] {
            let _ = docker.remove_image(&name, None::<bollard::query_parameters::RemoveImageOptions>, None).await;
        }
        let pushed = pushed?;
        self.progress.println(format!(
            "{}: pushed the build cache of stage `{}` as {}:{} ({} layers sent, {} already there)",
            image.name,
            image.cache_stage.as_deref().unwrap_or_default(),
            image.repository,
            cache.tag,
            pushed.layers_pushed,
            pushed.layers_present
        ));
        Ok(())
    }

    /// The digest of the image another job pushed under this commit's tag, once its labels
    /// show the same revision, source and base images as this run's build.
    async fn adopt(
        &self,
        plan: &Plan<'_>,
        repository: &str,
        source_key: &str,
        bases: &[crate::domain::dockerfile::Base],
    ) -> Result<String> {
        let (image, tag) = (plan.image, plan.tag.to_string());
        let manifest = ecr::manifest(&self.ctx.ecr, repository, &tag).await?;
        let config = self.registry().await?.image_config(repository, &manifest, image.platform.as_str()).await?;
        let theirs = |key: &str| config.labels.get(key).map(String::as_str).unwrap_or_default();
        let ours = plan.input_labels(source_key, bases);
        let same = theirs("org.opencontainers.image.revision") == plan.tag.commit
            && [image::SOURCE_KEY_LABEL, image::BASE_IMAGES_LABEL].iter().all(|key| theirs(key) == ours[*key]);
        if !same {
            bail!(
                "{repository}:{tag} names an image another job pushed from other inputs (revision {}); find out which job pushed it",
                theirs("org.opencontainers.image.revision")
            );
        }
        self.progress.println(format!(
            "{}: another job pushed {repository}:{tag} first; its image has this commit's revision and inputs, so this run uses it ({})",
            image.name, manifest.digest
        ));
        Ok(manifest.digest)
    }

    /// `DescribeImages` shows `tag` on the image with `digest`: ECR lists a pushed tag by
    /// the time the registry answered the manifest's upload.
    async fn confirm(&self, repository: &str, tag: &str, digest: &str) -> Result<String> {
        let Some(found) = ecr::image_by_tag(&self.ctx.ecr, repository, tag).await? else {
            bail!(
                "the push of {repository}:{tag} finished but ECR does not list the tag; check the registry endpoint of stage `{}`",
                self.ctx.stage.name
            );
        };
        let found = found.image_digest().unwrap_or_default().to_string();
        if found != digest {
            bail!("ECR shows {repository}:{tag} as {found}, but {digest} was pushed");
        }
        Ok(found)
    }
}

/// Under GitHub Actions, `image_uri` and `image_digest` step outputs.
pub fn write_github_output(report: &Report) -> Result<()> {
    let Some(path) = std::env::var_os("GITHUB_OUTPUT") else { return Ok(()) };
    let mut file =
        std::fs::OpenOptions::new().append(true).create(true).open(&path).context("cannot open $GITHUB_OUTPUT")?;
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

/// What to ask the daemon for, from a plan; `network` is the one `RUN` steps get.
pub fn build_spec<'p>(plan: &'p Plan<'_>, network: Option<String>, builder: BuilderChoice) -> BuildSpec<'p> {
    BuildSpec {
        name: &plan.image.name,
        context: &plan.context,
        tag: plan.local_name(),
        build_args: plan.build_args.clone(),
        labels: plan.labels.clone(),
        target: plan.image.target.clone(),
        platform: Some(plan.image.platform.to_string()),
        network,
        builder,
        cache_from: vec![],
        registry: None,
    }
}
