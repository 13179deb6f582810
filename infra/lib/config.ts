// Project settings. They live in [workspace.metadata.xtask] in the workspace's
// Cargo.toml, but this app never reads that file: `cargo xtask` validates it,
// fills in the defaults (such as the `local` stage) and hands the app the
// resolved configuration as a JSON file, passed as `-c xtaskConfig=<file>`.
import * as fs from 'node:fs';

/** The context key that holds the path of the configuration file. */
export const CONFIG_CONTEXT = 'xtaskConfig';

/** The version of the configuration file's format that this app reads. */
export const CONFIG_SCHEMA = 2;

/** The stage that runs on the local stack; xtask always writes it. */
export const LOCAL_STAGE = 'local';

export type Platform = 'linux/amd64' | 'linux/arm64';

export interface ImageConfig {
  readonly name: string;
  /** ECR repository name, without the registry host. */
  readonly repository: string;
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

export interface StageConfig {
  readonly name: string;
  readonly profile?: string;
  readonly region?: string;
  readonly account?: string;
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
 * validated it already; only the schema version and each image's `loadBalanced`
 * (optional: older files lack it) are checked here.
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
  return {
    project: config.project,
    keepImages: config.keepImages,
    rollbackWindow: config.rollbackWindow,
    lifecyclePolicy: config.lifecyclePolicy,
    images: config.images.map((image, i) => readImage(file, image, i)),
    stages: config.stages,
  };
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
    port: image.port,
    platform: image.platform,
    loadBalanced,
  };
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
