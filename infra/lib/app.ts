import { App, Environment } from 'aws-cdk-lib';
import { CONFIG_CONTEXT, ConfigError, LOCAL_STAGE, loadConfig, NO_CONFIG_MESSAGE, ProjectConfig, resolveStage } from './config';
import { CiStack } from './ci-stack';
import { RegistryStack } from './registry-stack';
import { ServiceStack } from './service-stack';

/**
 * The configuration in the file that the `xtaskConfig` context names: the
 * resolved [workspace.metadata.xtask] settings that `cargo xtask` writes and
 * passes to every cdk command as `-c xtaskConfig=<file>`.
 */
export function configFromContext(app: App): ProjectConfig {
  const file = context(app, CONFIG_CONTEXT);
  if (file === undefined) throw new ConfigError(NO_CONFIG_MESSAGE);
  return loadConfig(file);
}

/**
 * Adds the stacks of one stage to `app`. The stage comes from the `stage`
 * context (default `local`); the service stack also reads `imageTag`,
 * `imageDigest` and `imageChannel`, which only `cargo xtask` passes. The CI stack (GitHub's
 * OIDC provider and the workflow's roles) exists when the settings name a GitHub
 * repository.
 */
export function addStageStacks(app: App, config: ProjectConfig) {
  const stage = resolveStage(config, context(app, 'stage') ?? LOCAL_STAGE);
  const env: Environment = {
    account: stage.account ?? process.env.CDK_DEFAULT_ACCOUNT,
    region: stage.region ?? process.env.CDK_DEFAULT_REGION,
  };
  const prefix = `${config.project}-${stage.name}`;
  const tags = { project: config.project, stage: stage.name };

  const registry = new RegistryStack(app, `${prefix}-registry`, {
    env,
    tags,
    description: `${config.project} ${stage.name}: ECR repositories`,
    project: config.project,
    stage: stage.name,
    images: config.images,
    lifecyclePolicy: config.lifecyclePolicy,
    signingKeys: stage.signingKeys,
    ciSigners: config.githubRepository !== undefined,
    scanning: stage.scanning,
  });
  const service = new ServiceStack(app, `${prefix}-service`, {
    env,
    tags,
    description: `${config.project} ${stage.name}: load-balanced Fargate services`,
    stage: stage.name,
    images: config.images,
    imageTag: context(app, 'imageTag'),
    imageDigest: context(app, 'imageDigest'),
    imageChannel: context(app, 'imageChannel'),
    rollout: stage.rollout,
  });
  const ci =
    config.githubRepository === undefined
      ? undefined
      : new CiStack(app, `${prefix}-ci`, {
          env,
          tags,
          description: `${config.project} ${stage.name}: GitHub Actions OIDC provider and CI roles`,
          project: config.project,
          stage,
          githubRepository: config.githubRepository,
          mainBranch: config.mainBranch,
          images: config.images,
          promotedTo: Object.values(config.stages)
            .filter((s) => s.promoteFrom === stage.name)
            .map((s) => s.name)
            .sort(),
        });
  return { registry, service, ci };
}

/** A string context value; `-c key=` (empty) counts as absent. */
function context(app: App, key: string): string | undefined {
  const value: unknown = app.node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  return String(value);
}
