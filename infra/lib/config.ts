// Project settings. They live in [workspace.metadata.xtask] in the workspace's
// Cargo.toml, but this app never reads that file: `cargo xtask` validates it,
// fills in the defaults (such as the `local` stage) and hands the app the
// resolved configuration as a JSON file, passed as `-c xtaskConfig=<file>`.
import * as fs from 'node:fs';

/** The context key that holds the path of the configuration file. */
export const CONFIG_CONTEXT = 'xtaskConfig';

/** The version of the configuration file's format that this app reads. */
export const CONFIG_SCHEMA = 3;

/** The stage that runs on the local stack; xtask always writes it. */
export const LOCAL_STAGE = 'local';

export type Platform = 'linux/amd64' | 'linux/arm64';

export interface ImageConfig {
  readonly name: string;
  /** ECR repository name, without the registry host. */
  readonly repository: string;
  /**
   * The repository of the image's pull-request pushes (`pr/<repository>`): the pull-request
   * role writes there and nowhere else; main's pushes never read it.
   */
  readonly prRepository: string;
  /** The port the container listens on. */
  readonly port: number;
  readonly platform: Platform;
  /**
   * Whether the image serves the public behind a load balancer (an HTTP service), or
   * runs without one (a worker, which still serves its health check on `port`).
   * Absent in older configuration files: true.
   */
  readonly loadBalanced: boolean;
}

/** The KMS keys (id, ARN or alias) that sign the provenance of a stage's images. */
export interface SigningKeys {
  /** Signs what is pushed from the main branch: what the stage (and its promote-to stages) trust. */
  readonly main: string;
  /** Signs pull-request images: trusted by no stage unless it says so. */
  readonly pr: string;
}

/** ECS's built-in deployment strategies, as the settings name them. */
export const STRATEGIES = ['rolling', 'blue-green', 'canary', 'linear'] as const;
export type Strategy = (typeof STRATEGIES)[number];

/**
 * How ECS rolls a stage's services out, resolved by xtask (`xtask/release/src/domain/rollout.rs`):
 * each value the strategy uses is set, none other. Blue-green, canary and linear shift a load
 * balancer's traffic; a service without one always rolls. Rollback alarms apply to every service.
 */
export interface RolloutConfig {
  readonly strategy: Strategy;
  /** Minutes both revisions run once all traffic has shifted (blue-green, canary, linear). */
  readonly bakeMinutes?: number;
  readonly canaryPercent?: number;
  readonly canaryBakeMinutes?: number;
  readonly linearPercent?: number;
  readonly linearStepMinutes?: number;
  /** CloudWatch alarms whose ALARM state fails a deployment and rolls it back. */
  readonly rollbackAlarms: readonly string[];
}

/** The rollout of a stage whose settings choose none (and of files written before there was one). */
export const ROLLING: RolloutConfig = { strategy: 'rolling', rollbackAlarms: [] };

/**
 * The scan type the registry stack gives the stage's registry (`scanning` in the settings):
 * ECR's basic scanning, or Amazon Inspector's enhanced scanning.
 */
export type Scanning = 'basic' | 'enhanced';

export interface StageConfig {
  readonly name: string;
  /** How the service stack has ECS roll the services out; absent in older files: rolling. */
  readonly rollout?: RolloutConfig;
  /** The stage whose images this one runs (copied by `promote`); it builds none itself. */
  readonly promoteFrom?: string;
  /** The keys of a stage that builds its images (one without `promoteFrom`). */
  readonly signingKeys?: SigningKeys;
  readonly profile?: string;
  readonly region?: string;
  readonly account?: string;
  /** The registry's scanning configuration, set by the registry stack; absent: left alone. */
  readonly scanning?: Scanning;
}

/**
 * An ECR lifecycle policy (the `LifecyclePolicyText` JSON). xtask builds it from the
 * settings (`xtask/src/retention.rs`, which also evaluates it for `gc`); the registry
 * stack sets it verbatim, so the two never disagree.
 */
export interface LifecyclePolicy {
  readonly rules: readonly {
    readonly rulePriority: number;
    readonly description: string;
    readonly selection: Readonly<Record<string, unknown>>;
    readonly action: { readonly type: string };
  }[];
}

export interface ProjectConfig {
  /** Prefix of every stack name. */
  readonly project: string;
  /** How many images of commits on main the ECR lifecycle policy keeps per repository. */
  readonly keepImages: number;
  /** How many images last deployed to each stage are kept for a rollback. */
  readonly rollbackWindow: number;
  /** The branch whose commits are main's: the only one the main push role trusts. */
  readonly mainBranch: string;
  /** `owner/name` of the GitHub repository whose workflow releases; the CI stack trusts it. */
  readonly githubRepository?: string;
  /** The lifecycle policy of every repository. */
  readonly lifecyclePolicy: LifecyclePolicy;
  readonly images: readonly ImageConfig[];
  readonly stages: Readonly<Record<string, StageConfig>>;
}

/** A mistake in the settings or the context: reported without a stack trace. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** The error when the app runs without `-c xtaskConfig=<file>`. */
export const NO_CONFIG_MESSAGE =
  `no configuration: run cdk through cargo xtask (deploy, check, bootstrap), which passes -c ${CONFIG_CONTEXT}=<file>; ` +
  'or write one with `cargo xtask config --out FILE`';

/**
 * Reads the resolved configuration that `cargo xtask` writes. xtask has
 * validated it already; the schema version, each image's `loadBalanced`
 * (optional: older files lack it) and the fields that name IAM and KMS resources
 * (a mistake there would grant the wrong thing) are checked here.
 */
export function loadConfig(file: string): ProjectConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read the configuration file ${file}: ${errorMessage(e)}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`the configuration file ${file} is not valid JSON: ${errorMessage(e)}`);
  }
  const schema = isObject(data) ? data.schema : undefined;
  if (schema !== CONFIG_SCHEMA) {
    const found = schema === undefined ? 'none' : JSON.stringify(schema);
    throw new ConfigError(
      `${file} has configuration schema ${found}, this app reads ${CONFIG_SCHEMA}; ` +
        'rebuild xtask (any cargo xtask command does) and retry',
    );
  }
  const config = data as unknown as ProjectConfig;
  const mainBranch: unknown = config.mainBranch;
  if (typeof mainBranch !== 'string' || mainBranch === '') {
    throw new ConfigError(`${file}: mainBranch is ${JSON.stringify(mainBranch)}, expected a branch name`);
  }
  const githubRepository: unknown = config.githubRepository;
  if (githubRepository !== undefined && (typeof githubRepository !== 'string' || !GITHUB_REPOSITORY.test(githubRepository))) {
    throw new ConfigError(
      `${file}: githubRepository is ${JSON.stringify(githubRepository)}, expected a GitHub repository such as "owner/name"`,
    );
  }
  const stages: Record<string, StageConfig> = {};
  for (const [name, stage] of Object.entries(config.stages)) stages[name] = readStage(file, stage);
  return {
    project: config.project,
    keepImages: config.keepImages,
    rollbackWindow: config.rollbackWindow,
    mainBranch,
    ...(githubRepository === undefined ? {} : { githubRepository }),
    lifecyclePolicy: config.lifecyclePolicy,
    images: config.images.map((image, i) => readImage(file, image, i)),
    stages,
  };
}

/** `owner/name`, as xtask validates `github-repository`. */
const GITHUB_REPOSITORY = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;

/** A KMS key id, key ARN, alias (`alias/…`) or alias ARN: no blanks. */
const KMS_KEY = /^\S+$/;

/** One stage of the file: its signing keys are there exactly when it builds its images. */
function readStage(file: string, stage: StageConfig): StageConfig {
  const keys: unknown = stage.signingKeys;
  const builds = stage.promoteFrom === undefined;
  if (keys === undefined && builds) {
    throw new ConfigError(`${file}: stages.${stage.name} builds its images (no promoteFrom) but has no signingKeys`);
  }
  if (keys !== undefined && !builds) {
    throw new ConfigError(
      `${file}: stages.${stage.name} has promoteFrom ${JSON.stringify(stage.promoteFrom)} and signingKeys; a promote-to stage signs nothing`,
    );
  }
  if (keys !== undefined) {
    const valid = (k: unknown) => typeof k === 'string' && KMS_KEY.test(k);
    if (!isObject(keys) || !valid(keys.main) || !valid(keys.pr) || keys.main === keys.pr) {
      throw new ConfigError(
        `${file}: stages.${stage.name}.signingKeys is ${JSON.stringify(keys)}, expected two different KMS keys { "main": …, "pr": … }`,
      );
    }
  }
  const scanning: unknown = stage.scanning;
  if (scanning !== undefined && scanning !== 'basic' && scanning !== 'enhanced') {
    throw new ConfigError(`${file}: stages.${stage.name}.scanning is ${JSON.stringify(scanning)}, expected "basic" or "enhanced"`);
  }
  return { ...stage, rollout: readRollout(file, stage) };
}

/**
 * A stage's rollout: rolling when absent. xtask has checked the values; the strategy and
 * the presence of what it needs are checked here, since a mistake would deploy another way.
 */
function readRollout(file: string, stage: StageConfig): RolloutConfig {
  const rollout: unknown = stage.rollout;
  if (rollout === undefined) return ROLLING;
  const at = `${file}: stages.${stage.name}.rollout`;
  if (!isObject(rollout) || !STRATEGIES.some((s) => s === rollout.strategy)) {
    throw new ConfigError(`${at} is ${JSON.stringify(rollout)}, expected a strategy among ${STRATEGIES.join(', ')}`);
  }
  const alarms: unknown = rollout.rollbackAlarms ?? [];
  if (!Array.isArray(alarms) || !alarms.every((a) => typeof a === 'string' && a !== '')) {
    throw new ConfigError(`${at}.rollbackAlarms is ${JSON.stringify(alarms)}, expected CloudWatch alarm names`);
  }
  const needs: Record<Strategy, string[]> = {
    rolling: [],
    'blue-green': ['bakeMinutes'],
    canary: ['bakeMinutes', 'canaryPercent', 'canaryBakeMinutes'],
    linear: ['bakeMinutes', 'linearPercent', 'linearStepMinutes'],
  };
  for (const key of needs[rollout.strategy as Strategy]) {
    if (typeof rollout[key] !== 'number') {
      throw new ConfigError(`${at}.${key} is ${JSON.stringify(rollout[key])}, expected a number for strategy ${rollout.strategy}`);
    }
  }
  return { ...(rollout as unknown as RolloutConfig), rollbackAlarms: alarms };
}

/** One image of the file, with `loadBalanced` defaulting to true (files written before it existed). */
function readImage(file: string, image: ImageConfig, index: number): ImageConfig {
  const value: unknown = image.loadBalanced;
  const loadBalanced = value === undefined ? true : value;
  if (typeof loadBalanced !== 'boolean') {
    throw new ConfigError(
      `${file}: images[${index}] (${image.name}) has loadBalanced ${JSON.stringify(loadBalanced)}, expected true or false`,
    );
  }
  return {
    name: image.name,
    repository: image.repository,
    prRepository: readPrRepository(file, image, index),
    port: image.port,
    platform: image.platform,
    loadBalanced,
  };
}

/** The image's pull-request repository, which must differ from its main one. */
function readPrRepository(file: string, image: ImageConfig, index: number): string {
  const value: unknown = image.prRepository;
  if (typeof value !== 'string' || value === '' || value === image.repository) {
    throw new ConfigError(
      `${file}: images[${index}] (${image.name}) has prRepository ${JSON.stringify(value)}, expected a repository other than ${image.repository}`,
    );
  }
  return value;
}

/** The named stage, or an error that lists the known ones. */
export function resolveStage(config: ProjectConfig, name: string): StageConfig {
  const stage = Object.hasOwn(config.stages, name) ? config.stages[name] : undefined;
  if (!stage) {
    const known = Object.keys(config.stages).sort().join(', ');
    throw new ConfigError(
      `unknown stage \`${name}\`; known stages: ${known} (add one under [workspace.metadata.xtask.stages])`,
    );
  }
  return stage;
}

/** An image's name as a construct id and output-name prefix: `my-app` → `MyApp`. */
export function imageId(image: ImageConfig): string {
  return image.name
    .split(/[-_]/)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
