//! `cargo xtask deploy`: deploy a commit's images with `cdk deploy`, never an
//! image that is not in ECR.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::{
    aws,
    cdk::{Cdk, ImageContext},
    commands::{bootstrap, push, stage_args::StageArgs},
    deployable,
    git::Git,
    local::Stack,
    workspace::Workspace,
};

/// Deploy the service stack at a commit: check that every image of the commit is in
/// ECR, then run `cdk deploy <service stack> -c imageTag=<sha>`, so a new image alone
/// always rolls the service. `--rev` deploys an earlier commit (a rollback) without
/// checking it out.
///
/// `--stage local` runs the whole chain on the local stack: starts it if needed,
/// bootstraps it, pushes, checks and deploys.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// Commit to deploy (SHA, branch, tag, `HEAD~3`); HEAD by default, whose work tree must be clean.
    #[arg(long, value_name = "REV")]
    rev: Option<String>,
    /// Deploy without cdk asking to approve security-sensitive changes (`--require-approval never`).
    /// The local stage never asks.
    #[arg(long)]
    yes: bool,
    /// Pin each container to its image digest (`-c imageDigest=...`) as well as the tag.
    #[arg(long)]
    pin_digest: bool,
    /// Deploy a dirty work tree's `<sha>-dirty-<hash>` image (local stage only).
    #[arg(long, conflicts_with = "rev")]
    allow_dirty: bool,
    /// Arguments passed to `cdk deploy` as they are (after `--`).
    #[arg(last = true, value_name = "CDK_ARGS")]
    cdk_args: Vec<String>,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let stage = ws.config.stage(&self.stage.stage)?;
        if self.allow_dirty && !stage.is_local() {
            bail!("--allow-dirty images are never deployed to stage `{}`; commit the changes and push them", stage.name);
        }
        let git = Git::open(&ws.root)?;
        // The work tree's tag is taken once: a file changed mid-deploy cannot change it.
        let (tag, work_tree) = match &self.rev {
            Some(rev) => (git.resolve(rev)?, None),
            None => {
                let tag = git.work_tree_tag(self.allow_dirty)?;
                (tag.to_string(), Some(tag))
            }
        };

        let (sdk, target) = aws::load(stage, self.stage.profile.as_deref(), &ws.config.local).await?;
        let client = aws_sdk_ecr::Client::new(&sdk);
        if stage.is_local() {
            let stack = Stack::new(ws);
            stack.up(ws).await?;
            if !stack.is_bootstrapped(ws, &client).await? {
                bootstrap::bootstrap(ws, stage, None, true).await?;
                stack.mark_bootstrapped(ws)?;
            }
            if let Some(tag) = &work_tree {
                push::push(ws, stage, None, tag, &[], false).await?;
            }
        }
        let stage = self.stage.resolve(ws).await?;

        aws::ensure_credentials(&sdk, &target).await?;
        let mut digests = vec![];
        for image in &ws.config.images {
            let (check, found) = deployable::presence(&client, image, &tag).await?;
            let Some((digest, _)) = found else {
                bail!(
                    "refusing to deploy: {}:{tag} is not in ECR; push the commit first with `cargo xtask push --stage {}` (CI pushes every commit on main)",
                    image.repository,
                    stage.name
                );
            };
            eprintln!("{}: {}", image.name, check.detail);
            digests.push((image.name.clone(), digest));
        }

        let cdk = Cdk::new(ws, stage, &target)?;
        let image = ImageContext { tag: tag.clone(), digests: if self.pin_digest { digests } else { vec![] } };
        let service = ws.config.service_stack(stage);
        if stage.is_local() {
            // moto's CloudFormation updates an ECS task definition by dropping its containers,
            // so on the local stack a deploy replaces the service stack instead of updating it.
            // Its delete can report the VPC's dependencies and still remove the stack, or leave
            // it: destroy until cdk reports the stack gone.
            let mut tries = 0;
            while !cdk.destroy(&service)?.success() {
                tries += 1;
                if tries == 3 {
                    bail!(
                        "cannot remove {service} from the local stack to replace it; restart the stack (`cargo xtask local down && cargo xtask local up`)"
                    );
                }
            }
        }
        let status = cdk.deploy(&service, Some(&image), self.yes || stage.is_local(), &self.cdk_args)?;
        if !status.success() {
            eprintln!("error: cdk deploy of {service} failed ({status})");
            return Ok(ExitCode::from(status.code().map_or(1, |c| c.clamp(1, 255) as u8)));
        }
        eprintln!("deployed {service} at {tag}");
        Ok(ExitCode::SUCCESS)
    }
}
