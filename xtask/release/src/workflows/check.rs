//! The checks that prove a commit deployable: each returns a named verdict with
//! a detail a person can act on. A commit's images are checked where its channel puts
//! them: main's repositories, or a pull request's `pr/<repository>`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_ecr::{Client, types::ImageTagMutability};
use serde::Serialize;

/// Severities in ascending order, as ECR names them (the `--severity` threshold).
pub use crate::domain::scan::Severity;

use crate::{
    clients::aws::SdkResultExt,
    clients::cdk::{Cdk, ImageContext},
    clients::ecr,
    clients::git::{Git, ImageTag},
    clients::registry_api::{ImageConfig, Registry},
    domain::image::{BASE_IMAGES_LABEL, INPUTS_TAG_PREFIX, Plan, SOURCE_KEY_LABEL, recorded_bases, resolve_bases},
    domain::scan::{self, Verdict},
    domain::{channel::Channel, config::Image},
    stage::StageContext,
};

pub struct CheckOptions<'a> {
    /// The revision to check; HEAD, whose work tree must then be clean, when `None`.
    pub rev: Option<&'a str>,
    /// Scan findings at or above this fail.
    pub severity: Severity,
    /// How long to wait for a scan on push to complete.
    pub scan_timeout: Duration,
    /// The stage's `promote-from` stage, opened, when it has one.
    pub source: Option<&'a StageContext<'a>>,
    /// Where the commit's images are: main's repositories or the pull-request ones.
    pub channel: Channel,
}

/// Every check of a commit, in order: tree, then per image presence, revision and
/// platform, scan and repository settings, then the service stack's synth.
pub async fn check(ctx: &StageContext<'_>, options: &CheckOptions<'_>) -> Result<(String, Vec<Check>)> {
    let ws = ctx.ws;
    let git = Git::open(&ws.root)?;
    let mut checks = vec![];

    // 1. The commit: a clean work tree at HEAD, or the REV given.
    let (commit, at_head) = match options.rev {
        Some(rev) => {
            let commit = git.resolve(rev)?;
            let at_head = git.resolve("HEAD").ok().as_deref() == Some(commit.as_str()) && git.dirty_paths()?.is_empty();
            checks.push(Check::pass("tree", format!("checking {rev} = {commit}")));
            (commit, at_head)
        }
        None => {
            let commit = git.resolve("HEAD")?;
            let clean = match super::work_tree::tag(&ws.config, &git, false) {
                Ok(_) => Check::pass("tree", format!("clean at {commit}")),
                Err(err) => Check::fail("tree", format!("{err:#}")),
            };
            let at_head = clean.ok();
            checks.push(clean);
            (commit, at_head)
        }
    };

    let registry = Registry::new(ctx.registry().await?)?;
    // Main's repositories hold what the stage's trusted keys signed; a pull request's also
    // what the stage's pull-request key signed (a deploy still trusts only `trusted-keys`).
    let trust = match options.channel {
        Channel::Main => super::attest::Trust::of(ctx, options.source).await,
        Channel::Pr => super::attest::Trust::for_check(ctx, options.source).await,
    };
    let hint = ctx.bootstrap_hint();
    let source = git.source_url();
    // Once per stage: which repositories the registry's rules scan on push.
    let registry_scanning = registry_scanning(&ctx.ecr).await;
    for image in &ws.config.images {
        let repository = options.channel.repository(image);
        let repository = repository.as_str();
        // 2. Presence, revision label and platform.
        let (present, found) = presence(&ctx.ecr, image, repository, &commit).await?;
        checks.push(present);
        if let Some((digest, tags)) = &found {
            let (digest, tags) = (digest.as_str(), tags.clone());
            let name = format!("revision {}", image.name);
            // The source key can be recomputed only from a work tree at this commit; a
            // failure to recompute it is a failed check, never a reason to trust the record.
            let key = if at_head {
                let tag = ImageTag { commit: commit.clone(), dirty: None };
                Some(Plan::new(&ws.config, &ctx.build_args(), image, &tag, &source).and_then(|plan| plan.source_key()))
            } else {
                None
            };
            let config = image_config(&ctx.ecr, &registry, image, repository, &commit).await;
            let result = match (key, &config) {
                (Some(Err(err)), _) => Err(err.context("cannot recompute the image's inputs key")),
                (_, Err(err)) => Err(anyhow::anyhow!("{err:#}")),
                (Some(Ok(key)), Ok(config)) => identity(&git, image, config, &commit, &tags, Some(&key)),
                (None, Ok(config)) => identity(&git, image, config, &commit, &tags, None),
            };
            checks.push(Check::from_result(&name, result));
            // Signed provenance: the bytes were built from this commit's inputs by a trusted builder.
            checks.push(provenance(&registry, image, repository, digest, &commit, &trust).await);
            // Base images that moved since the build: a warning, with the command that rebuilds.
            if let Ok(config) = &config
                && let Some(check) = base_images(ctx, image, config).await
            {
                checks.push(check);
            }
            // 3. Scan findings.
            let result =
                scan(&ctx.ecr, image, repository, &commit, options.severity, options.scan_timeout, SCAN_POLL).await;
            checks.push(Check::from_result(&format!("scan {}", image.name), result));
        }
        // 4. Repository settings.
        let policy = crate::domain::retention::policy(&crate::domain::retention::Settings::of(&ctx.ws.config));
        let result = repository_settings(&ctx.ecr, repository, &registry_scanning, &policy, &hint).await;
        checks.push(Check::from_result(&format!("repository {repository}"), result));
    }

    // 5. A stage that runs what another ran has the same images as that one.
    checks.extend(promoted(ctx, options.source, &commit).await?);

    // 6. The service stack synthesizes with the tag.
    let stack = ws.config.service_stack(ctx.stage);
    let image = ImageContext { tag: commit.clone(), digests: vec![], pr_repositories: options.channel == Channel::Pr };
    let synth = match Cdk::new(ctx.ws, ctx.stage, &ctx.region, &ctx.access.cdk) {
        Ok(cdk) => cdk.synth(&stack, Some(&image)).await,
        Err(err) => Err(err),
    };
    checks.push(match synth {
        Ok(_) => Check::pass("synth", format!("{stack} synthesizes with imageTag={commit}")),
        Err(err) => Check::fail("synth", format!("{err:#}")),
    });
    Ok((commit, checks))
}

/// `provenance <image>`: a statement about the image's digest, naming `commit`, signed by
/// a key the stage trusts.
async fn provenance(
    registry: &Registry,
    image: &Image,
    repository: &str,
    digest: &str,
    commit: &str,
    trust: &Result<super::attest::Trust>,
) -> Check {
    let name = format!("provenance {}", image.name);
    let trust = match trust {
        Ok(trust) => trust,
        Err(err) => return Check::fail(&name, format!("{err:#}")),
    };
    match super::attest::find(registry, repository, digest, Some(commit), trust).await {
        Ok(Ok(verified)) => Check::pass(&name, format!("signed by {} for {}", verified.signer, verified.builder)),
        Ok(Err(unproven)) => Check::fail(&name, format!("{unproven}; push the commit with `cargo xtask push`")),
        Err(err) => Check::fail(&name, format!("cannot read the provenance: {err:#}")),
    }
}

/// One named verdict on the commit, with a detail a person can act on.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub state: State,
    pub detail: String,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pass,
    /// Passed, with something a person should act on.
    Warn,
    Fail,
}

/// `check --json`'s form of a check: `{"name", "ok", "warning", "detail"}`.
impl Serialize for Check {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            name: &'a str,
            ok: bool,
            warning: bool,
            detail: &'a str,
        }
        let json = Json { name: &self.name, ok: self.ok(), warning: self.state == State::Warn, detail: &self.detail };
        json.serialize(serializer)
    }
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { name: name.into(), state: State::Pass, detail: detail.into() }
    }
    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { name: name.into(), state: State::Fail, detail: detail.into() }
    }
    pub fn warn(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { name: name.into(), state: State::Warn, detail: detail.into() }
    }
    /// Did it pass (with or without a warning)?
    pub fn ok(&self) -> bool {
        self.state != State::Fail
    }
    /// An error while checking is a failed check, with its cause.
    pub fn from_result(name: &str, result: Result<Check>) -> Check {
        result.unwrap_or_else(|err| Check::fail(name, format!("{err:#}")))
    }
}

/// The image of `tag` is in `repository` (main's or the pull-request one of `image`);
/// returns the check and the image's digest and tags.
pub async fn presence(
    ecr_client: &Client,
    image: &Image,
    repository: &str,
    tag: &str,
) -> Result<(Check, Option<(String, Vec<String>)>)> {
    let name = format!("image {}", image.name);
    let found = ecr::image_by_tag(ecr_client, repository, tag).await?;
    Ok(match found.and_then(|d| Some((d.image_digest()?.to_string(), d.image_tags().to_vec()))) {
        Some((digest, tags)) => (Check::pass(&name, format!("{repository}:{tag}@{digest}")), Some((digest, tags))),
        None => {
            (Check::fail(&name, format!("{repository}:{tag} is not in ECR; push it with `cargo xtask push`")), None)
        }
    })
}

/// For a stage with `promote-from`: per image, the commit's image here is the very image
/// (the same digest) the source stage has. No checks for a stage that builds its own.
/// `source` is that stage, opened by the caller.
pub async fn promoted(ctx: &StageContext<'_>, source: Option<&StageContext<'_>>, commit: &str) -> Result<Vec<Check>> {
    let Some(from) = &ctx.stage.promote_from else { return Ok(vec![]) };
    let ws = ctx.ws;
    let source = source
        .with_context(|| format!("stage `{from}`, whose images stage `{}` runs, was not opened", ctx.stage.name))?;
    let mut checks = vec![];
    for image in &ws.config.images {
        let name = format!("promoted {}", image.name);
        let digest_in = |client| async move {
            let found = ecr::image_by_tag(client, &image.repository, commit).await?;
            anyhow::Ok(found.and_then(|d| d.image_digest().map(str::to_string)))
        };
        let (here, there) = (digest_in(&ctx.ecr).await?, digest_in(&source.ecr).await?);
        let promote = format!("cargo xtask promote --to {} --rev {commit}", ctx.stage.name);
        checks.push(match (here, there) {
            (_, None) => Check::fail(
                &name,
                format!("{}:{commit} is not in stage `{from}`: it was never built there; push it there, then `{promote}`", image.repository),
            ),
            (None, Some(_)) => Check::fail(&name, format!("{}:{commit} is not promoted yet; run `{promote}`", image.repository)),
            (Some(here), Some(there)) if here == there => {
                Check::pass(&name, format!("the same image as in stage `{from}` ({here})"))
            }
            (Some(here), Some(there)) => Check::fail(
                &name,
                format!(
                    "{}:{commit} is {here} here but {there} in stage `{from}`: this stage must run the image `{from}` ran; it was built, not promoted",
                    image.repository
                ),
            ),
        });
    }
    Ok(checks)
}

/// The image's revision label names the commit, or an ancestor whose image inputs are
/// identical (the image was reused by retagging); its platform is the configured one.
fn identity(
    git: &Git,
    image: &Image,
    config: &ImageConfig,
    commit: &str,
    tags: &[String],
    source_key: Option<&str>,
) -> Result<Check> {
    let name = format!("revision {}", image.name);
    if config.platform != image.platform.as_str() {
        return Ok(Check::fail(
            &name,
            format!("the image is {}, but the service runs {}", config.platform, image.platform),
        ));
    }
    let Some(revision) = config.labels.get("org.opencontainers.image.revision") else {
        return Ok(Check::fail(
            &name,
            "the image has no org.opencontainers.image.revision label; push it with `cargo xtask push`",
        ));
    };
    if revision == commit {
        return Ok(Check::pass(&name, format!("built from {commit}, {}", config.platform)));
    }
    // Images record their source key in a label; older ones only in their inputs tag,
    // whose key was the source key.
    let recorded: Vec<&str> = match config.labels.get(SOURCE_KEY_LABEL) {
        Some(label) => vec![label.as_str()],
        None => tags.iter().filter_map(|t| t.strip_prefix(INPUTS_TAG_PREFIX)).collect(),
    };
    let same_inputs = match source_key {
        Some(key) => recorded.contains(&key),
        // Without the work tree at this commit the key cannot be recomputed: trust the recorded one.
        None => !recorded.is_empty(),
    };
    let ancestor = git.is_ancestor(revision, commit)?;
    if ancestor && same_inputs {
        Ok(Check::pass(&name, format!("reused from ancestor {revision} (identical image inputs), {}", config.platform)))
    } else if ancestor {
        Ok(Check::fail(
            &name,
            format!(
                "the image was built from ancestor {revision}, but its recorded inputs differ from this commit's; rebuild with `cargo xtask push --rebuild`"
            ),
        ))
    } else {
        Ok(Check::fail(
            &name,
            format!("the image's revision label is {revision}, which is neither this commit nor one of its ancestors"),
        ))
    }
}

/// The config of the image `repository:tag` (labels, platform), from the registry.
async fn image_config(
    ecr_client: &Client,
    registry: &Registry,
    image: &Image,
    repository: &str,
    tag: &str,
) -> Result<ImageConfig> {
    let manifest = ecr::manifest(ecr_client, repository, tag).await?;
    registry.image_config(repository, &manifest, image.platform.as_str()).await
}

/// Whether the base images the image records still resolve to what it was built on;
/// `None` for an image that records none (built on `scratch`, or before xtask recorded them).
async fn base_images(ctx: &StageContext<'_>, image: &Image, config: &ImageConfig) -> Option<Check> {
    let recorded = recorded_bases(config.labels.get(BASE_IMAGES_LABEL)?);
    if recorded.is_empty() {
        return None;
    }
    let name = format!("base {}", image.name);
    let references: Vec<String> = recorded.iter().map(|b| b.reference.clone()).collect();
    let now = match ctx.docker().await {
        Ok(docker) => resolve_bases(docker, &references).await,
        Err(err) => Err(err),
    };
    let now = match now {
        Ok(now) => now,
        Err(err) => return Some(Check::warn(&name, format!("cannot tell whether its base images moved: {err:#}"))),
    };
    let moved: Vec<String> = recorded
        .iter()
        .zip(&now)
        .filter(|(then, now)| then.digest != now.digest)
        .map(|(then, now)| format!("{} ({} → {})", then.reference, short(&then.digest), short(&now.digest)))
        .collect();
    Some(if moved.is_empty() {
        Check::pass(&name, format!("built on the current {}", references.join(", ")))
    } else {
        Check::warn(
            &name,
            format!(
                "moved since the image was built: {}; rebuild on them with `cargo xtask push --stage {} --rebuild`",
                moved.join(", "),
                ctx.stage.name
            ),
        )
    })
}

/// A digest from a label (the pusher's text) for display.
fn short(digest: &str) -> &str {
    crate::support::text::short_digest(digest)
}

/// How often `check` asks for a scan result while it waits.
const SCAN_POLL: Duration = Duration::from_secs(2);

/// The scan result of the image, waited for up to `timeout` (asking every `poll`) while the
/// scan runs; findings at or above `threshold` fail, and so do a scan that never completes
/// and a status that has no result ([`crate::domain::scan::judge`]).
async fn scan(
    ecr_client: &Client,
    image: &Image,
    repository: &str,
    tag: &str,
    threshold: Severity,
    timeout: Duration,
    poll: Duration,
) -> Result<Check> {
    let name = format!("scan {}", image.name);
    let deadline = Instant::now() + timeout;
    loop {
        let last = match ecr::scan_findings(ecr_client, repository, tag).await? {
            Some(found) => match scan::judge(&found, threshold) {
                Verdict::Findings { ok: true, detail } => return Ok(Check::pass(&name, detail)),
                Verdict::Findings { ok: false, detail } | Verdict::NoResult(detail) => {
                    return Ok(Check::fail(&name, detail));
                }
                Verdict::Waiting(what) => what,
            },
            None => "no scan has started (is scan on push enabled?)".to_string(),
        };
        if Instant::now() >= deadline {
            return Ok(Check::fail(
                &name,
                format!("the scan did not complete within {}s ({last}); this is not a clean result", timeout.as_secs()),
            ));
        }
        tokio::time::sleep(poll.min(timeout)).await;
    }
}

/// The registry's scanning configuration, read once per stage; unknown (with the reason)
/// where the registry does not answer, so the repository's own flag decides instead.
async fn registry_scanning(ecr_client: &Client) -> scan::Registry {
    match ecr::registry_scanning(ecr_client).await {
        Ok(scanning) => scan::Registry::Read(scanning),
        Err(err) => scan::Registry::Unknown(format!("{err:#}")),
    }
}

/// Immutable tags, scan on push (from a rule of the registry's scanning configuration or
/// the repository's own flag, named), a lifecycle policy (the settings' own, else a warning).
async fn repository_settings(
    ecr_client: &Client,
    repository: &str,
    registry: &scan::Registry,
    expected: &crate::domain::retention::Policy,
    create_hint: &str,
) -> Result<Check> {
    let name = format!("repository {repository}");
    let repo = ecr::repository(ecr_client, repository, create_hint).await?;
    let mut problems = vec![];
    if repo.image_tag_mutability() != Some(&ImageTagMutability::Immutable) {
        problems.push("tags are mutable (a commit's tag could be moved to another image)".to_string());
    }
    let own_flag = repo.image_scanning_configuration().is_some_and(|c| c.scan_on_push());
    let scan_on_push = scan::scan_on_push(registry, repository, own_flag);
    if !scan_on_push.on() {
        problems.push(scan_on_push.to_string());
    }
    let mut stale_policy = false;
    match ecr_client.get_lifecycle_policy().repository_name(repository).send().await {
        Ok(out) if out.lifecycle_policy_text().is_some_and(|t| !t.is_empty()) => {
            let text = out.lifecycle_policy_text().unwrap_or_default();
            stale_policy =
                serde_json::from_str::<crate::domain::retention::Policy>(text).ok().as_ref() != Some(expected);
        }
        Ok(_) => problems.push("no lifecycle policy".to_string()),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_lifecycle_policy_not_found_exception()) => {
            problems.push("no lifecycle policy".to_string())
        }
        Err(err) => {
            return Err(err).sdk_context(|| format!("cannot read the lifecycle policy of `{repository}`"));
        }
    }
    Ok(if problems.is_empty() && stale_policy {
        Check::warn(
            &name,
            format!(
                "immutable tags, {scan_on_push}, but the lifecycle policy is not the settings' (deployed images and main's may not be kept apart from pull requests'); deploy the registry stack with `{create_hint}`"
            ),
        )
    } else if problems.is_empty() {
        Check::pass(&name, format!("immutable tags, {scan_on_push}, lifecycle policy"))
    } else {
        Check::fail(&name, format!("{}; deploy the registry stack with `{create_hint}`", problems.join("; ")))
    })
}

/// The scan gate against ECR answers the local stack never gives: enhanced scanning's
/// statuses and findings, registry scanning rules. Every response is shaped as the ECR API
/// reference documents it:
/// - `DescribeImageScanFindings`
///   (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DescribeImageScanFindings.html),
///   with `ImageScanStatus` (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageScanStatus.html),
///   `ImageScanFindings` (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageScanFindings.html)
///   and `EnhancedImageScanFinding`
///   (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_EnhancedImageScanFinding.html);
/// - `GetRegistryScanningConfiguration`
///   (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_GetRegistryScanningConfiguration.html),
///   with `RegistryScanningRule` (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_RegistryScanningRule.html)
///   and `ScanningRepositoryFilter`
///   (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ScanningRepositoryFilter.html);
/// - `DescribeRepositories` (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DescribeRepositories.html)
///   and `GetLifecyclePolicy` (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_GetLifecyclePolicy.html);
/// - errors as the common errors page lists them
///   (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/CommonErrors.html).
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sdk_ecr::{
        Client,
        error::ErrorMetadata,
        operation::{
            describe_image_scan_findings::{DescribeImageScanFindingsError, DescribeImageScanFindingsOutput},
            describe_repositories::DescribeRepositoriesOutput,
            get_lifecycle_policy::GetLifecyclePolicyOutput,
            get_registry_scanning_configuration::{
                GetRegistryScanningConfigurationError, GetRegistryScanningConfigurationOutput,
            },
        },
        primitives::DateTime,
        types::{
            EnhancedImageScanFinding, FindingSeverity, ImageIdentifier, ImageScanFindings, ImageScanStatus,
            ImageScanningConfiguration, ImageTagMutability, RegistryScanningConfiguration, RegistryScanningRule,
            Repository, ScanFrequency, ScanStatus, ScanType, ScanningRepositoryFilter, ScanningRepositoryFilterType,
            error::ScanNotFoundException,
        },
    };
    use aws_smithy_mocks::{Rule, mock};

    use super::{Severity, State, registry_scanning, repository_settings, scan};
    use crate::{
        clients::mocked,
        domain::{config::Image, retention::Policy, scan::Registry},
    };

    const REPOSITORY: &str = "hello/app";
    const TAG: &str = "0123456789abcdef0123456789abcdef01234567";
    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const ACCOUNT: &str = "123456789012";

    fn image() -> Image {
        Image {
            name: "app".into(),
            context: "app".into(),
            dockerfile: "app/Dockerfile".into(),
            repository: REPOSITORY.into(),
            target: None,
            platform: Default::default(),
            build_args: Default::default(),
            port: 8080,
            load_balanced: true,
            cache_stage: None,
        }
    }

    /// A `DescribeImageScanFindings` response for the image: its status and description,
    /// with `findings` when the scan has some to report.
    fn scan_output(
        status: ScanStatus,
        description: &str,
        findings: Option<ImageScanFindings>,
    ) -> DescribeImageScanFindingsOutput {
        DescribeImageScanFindingsOutput::builder()
            .registry_id(ACCOUNT)
            .repository_name(REPOSITORY)
            .image_id(ImageIdentifier::builder().image_digest(DIGEST).image_tag(TAG).build())
            .image_scan_status(ImageScanStatus::builder().status(status).description(description).build())
            .set_image_scan_findings(findings)
            .build()
    }

    /// Enhanced scanning's `ACTIVE` result: Amazon Inspector's findings in `enhancedFindings`,
    /// counted by severity (its `UNTRIAGED` too) in `findingSeverityCounts`.
    fn enhanced_active() -> DescribeImageScanFindingsOutput {
        let finding = EnhancedImageScanFinding::builder()
            .aws_account_id(ACCOUNT)
            .finding_arn(format!("arn:aws:inspector2:eu-west-1:{ACCOUNT}:finding/0123456789abcdef0123456789abcdef"))
            .title("CVE-2024-0001 - libexample")
            .description("A flaw in libexample.")
            .severity("HIGH")
            .score(7.5)
            .status("ACTIVE")
            .r#type("PACKAGE_VULNERABILITY")
            .first_observed_at(DateTime::from_secs(1_764_000_000))
            .last_observed_at(DateTime::from_secs(1_764_100_000))
            .updated_at(DateTime::from_secs(1_764_100_000))
            .build();
        let findings = ImageScanFindings::builder()
            .image_scan_completed_at(DateTime::from_secs(1_764_000_000))
            .vulnerability_source_updated_at(DateTime::from_secs(1_764_100_000))
            .finding_severity_counts(FindingSeverity::High, 1)
            .finding_severity_counts(FindingSeverity::from("UNTRIAGED"), 2)
            .enhanced_findings(finding)
            .build();
        scan_output(ScanStatus::Active, "Continuous scan is selected for image.", Some(findings))
    }

    fn scans(outputs: Vec<DescribeImageScanFindingsOutput>) -> Vec<Rule> {
        outputs
            .into_iter()
            .map(|output| mock!(Client::describe_image_scan_findings).then_output(move || output.clone()))
            .collect()
    }

    async fn judged(rules: &[Rule], threshold: Severity, timeout: Duration) -> super::Check {
        let client = mocked::ecr(&rules.iter().collect::<Vec<_>>());
        scan(&client, &image(), REPOSITORY, TAG, threshold, timeout, Duration::ZERO).await.unwrap()
    }

    #[tokio::test]
    async fn an_enhanced_active_result_with_no_finding_over_the_threshold_passes() {
        let check = judged(&scans(vec![enhanced_active()]), Severity::Critical, Duration::from_secs(60)).await;
        assert_eq!(check.name, "scan app");
        assert_eq!(check.state, State::Pass, "{}", check.detail);
        assert_eq!(check.detail, "1 HIGH, 2 UNTRIAGED (threshold CRITICAL; enhanced scanning keeps them up to date)");
        // The same findings at a lower threshold fail, naming what is over it.
        let check = judged(&scans(vec![enhanced_active()]), Severity::High, Duration::from_secs(60)).await;
        assert_eq!(check.state, State::Fail);
        assert_eq!(check.detail, "1 HIGH at or above HIGH: fix them or raise --severity");
    }

    #[tokio::test]
    async fn a_scan_still_running_is_waited_for() {
        let pending = scan_output(ScanStatus::Pending, "The scan is pending.", None);
        // Continuous scanning is on, but its first scan has not completed: still running.
        let active_empty = scan_output(ScanStatus::Active, "Continuous scan is selected for image.", None);
        let not_started = mock!(Client::describe_image_scan_findings).then_error(|| {
            DescribeImageScanFindingsError::ScanNotFoundException(
                ScanNotFoundException::builder().message("Image scan does not exist for the image").build(),
            )
        });
        let mut rules = vec![not_started];
        rules.extend(scans(vec![pending, active_empty, enhanced_active()]));
        let check = judged(&rules, Severity::Critical, Duration::from_secs(60)).await;
        assert_eq!(check.state, State::Pass, "{}", check.detail);
        assert!(rules.iter().all(|r| r.num_calls() == 1), "every answer was asked for once");
    }

    #[tokio::test]
    async fn a_scan_that_stays_in_progress_fails_at_the_deadline() {
        let in_progress = scan_output(ScanStatus::InProgress, "The scan is in progress.", None);
        let check = judged(&scans(vec![in_progress]), Severity::Critical, Duration::ZERO).await;
        assert_eq!(check.state, State::Fail);
        assert_eq!(
            check.detail,
            "the scan did not complete within 0s (scan status IN_PROGRESS); this is not a clean result"
        );
    }

    #[tokio::test]
    async fn each_status_without_a_result_fails_with_its_own_sentence() {
        let statuses = [
            (ScanStatus::Failed, "the scan failed"),
            (ScanStatus::UnsupportedImage, "the image cannot be scanned"),
            (ScanStatus::FindingsUnavailable, "the scan's findings are not available"),
            (ScanStatus::ScanEligibilityExpired, "the image is no longer eligible for scanning"),
            (ScanStatus::LimitExceeded, "a scan quota was reached"),
            (ScanStatus::ImageArchived, "the image is archived"),
        ];
        for (status, says) in statuses {
            let name = status.as_str().to_string();
            let output = scan_output(status, "Described by ECR.", None);
            let check = judged(&scans(vec![output]), Severity::Critical, Duration::from_secs(60)).await;
            assert_eq!(check.state, State::Fail, "{name}");
            assert!(check.detail.starts_with(&format!("{name}: ")), "{}", check.detail);
            assert!(check.detail.contains(says), "{name}: {}", check.detail);
            assert!(check.detail.contains("(Described by ECR.)"), "{name}: {}", check.detail);
        }
    }

    /// An enhanced-scanning registry with one rule: `frequency`, over the wildcard `filters`.
    fn enhanced_registry_with(frequency: ScanFrequency, filters: &[&str]) -> GetRegistryScanningConfigurationOutput {
        let filters = filters.iter().map(|f| {
            ScanningRepositoryFilter::builder()
                .filter(*f)
                .filter_type(ScanningRepositoryFilterType::Wildcard)
                .build()
                .unwrap()
        });
        let rule = RegistryScanningRule::builder()
            .scan_frequency(frequency)
            .set_repository_filters(Some(filters.collect()))
            .build()
            .unwrap();
        GetRegistryScanningConfigurationOutput::builder()
            .registry_id(ACCOUNT)
            .scanning_configuration(
                RegistryScanningConfiguration::builder().scan_type(ScanType::Enhanced).rules(rule).build(),
            )
            .build()
    }

    /// An enhanced-scanning registry whose continuous rule covers the project's repositories.
    fn enhanced_registry() -> GetRegistryScanningConfigurationOutput {
        enhanced_registry_with(ScanFrequency::ContinuousScan, &["hello/*", "pr/hello/*"])
    }

    /// The repository, immutable, with its own scan-on-push flag as given, and its lifecycle policy.
    fn repository_rules(own_flag: bool) -> [Rule; 2] {
        let repository = mock!(Client::describe_repositories).then_output(move || {
            DescribeRepositoriesOutput::builder()
                .repositories(
                    Repository::builder()
                        .registry_id(ACCOUNT)
                        .repository_name(REPOSITORY)
                        .repository_arn(format!("arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/{REPOSITORY}"))
                        .image_tag_mutability(ImageTagMutability::Immutable)
                        .image_scanning_configuration(
                            ImageScanningConfiguration::builder().scan_on_push(own_flag).build(),
                        )
                        .build(),
                )
                .build()
        });
        let policy = mock!(Client::get_lifecycle_policy).then_output(|| {
            GetLifecyclePolicyOutput::builder()
                .registry_id(ACCOUNT)
                .repository_name(REPOSITORY)
                .lifecycle_policy_text(r#"{"rules":[]}"#)
                .build()
        });
        [repository, policy]
    }

    async fn settings(rules: &[&Rule]) -> super::Check {
        let client = mocked::ecr(rules);
        let registry = registry_scanning(&client).await;
        let expected: Policy = serde_json::from_str(r#"{"rules":[]}"#).unwrap();
        repository_settings(&client, REPOSITORY, &registry, &expected, "cargo xtask bootstrap").await.unwrap()
    }

    #[tokio::test]
    async fn a_registry_rule_scans_on_push_where_the_repositorys_own_flag_is_off() {
        let registry = mock!(Client::get_registry_scanning_configuration).then_output(enhanced_registry);
        let [repository, policy] = repository_rules(false);
        let check = settings(&[&registry, &repository, &policy]).await;
        assert_eq!(check.state, State::Pass, "{}", check.detail);
        assert_eq!(
            check.detail,
            "immutable tags, scan on push (the registry's enhanced scanning, filter `hello/*`, continuous), lifecycle policy"
        );
    }

    #[tokio::test]
    async fn enhanced_scanning_without_a_matching_rule_fails_even_with_the_repositorys_flag() {
        let registry = mock!(Client::get_registry_scanning_configuration)
            .then_output(|| enhanced_registry_with(ScanFrequency::ScanOnPush, &["other/*"]));
        let [repository, policy] = repository_rules(true);
        let check = settings(&[&registry, &repository, &policy]).await;
        assert_eq!(check.state, State::Fail);
        assert_eq!(
            check.detail,
            "scan on push is off (no rule of the registry's enhanced scanning matches it, and enhanced scanning ignores the repository's own flag); deploy the registry stack with `cargo xtask bootstrap`"
        );
    }

    #[tokio::test]
    async fn an_unreadable_registry_configuration_falls_back_to_the_repositorys_flag_and_says_so() {
        let denied = || {
            mock!(Client::get_registry_scanning_configuration).then_error(|| {
                GetRegistryScanningConfigurationError::generic(
                    ErrorMetadata::builder()
                        .code("AccessDeniedException")
                        .message("User is not authorized to perform: ecr:GetRegistryScanningConfiguration")
                        .build(),
                )
            })
        };
        let client = mocked::ecr(&[&denied()]);
        let Registry::Unknown(why) = registry_scanning(&client).await else { panic!("the configuration is unknown") };
        assert!(why.contains("cannot read the registry's scanning configuration"), "{why}");
        let [repository, policy] = repository_rules(true);
        let check = settings(&[&denied(), &repository, &policy]).await;
        assert_eq!(check.state, State::Pass, "{}", check.detail);
        assert!(
            check.detail.starts_with(
                "immutable tags, scan on push (the repository's own flag; the registry's scanning configuration is unknown: cannot read the registry's scanning configuration"
            ),
            "{}",
            check.detail
        );
    }
}
