// Project settings: [workspace.metadata.xtask] in the workspace's Cargo.toml, the
// one file that `cargo xtask` and this app both read.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'smol-toml';

/** The workspace manifest, found from this file so the app works from any cwd. */
export const CARGO_TOML = path.join(__dirname, '..', '..', 'Cargo.toml');

/** The stage that runs on the local stack; it exists even when the file omits it. */
export const LOCAL_STAGE = 'local';
const LOCAL_DEFAULTS = { region: 'us-east-1', account: '123456789012' };

export type Platform = 'linux/amd64' | 'linux/arm64';
const PLATFORMS: readonly string[] = ['linux/amd64', 'linux/arm64'];

export interface ImageConfig {
  readonly name: string;
  /** ECR repository name, without the registry host. */
  readonly repository: string;
  /** The port the container listens on. */
  readonly port: number;
  readonly platform: Platform;
}

export interface StageConfig {
  readonly name: string;
  readonly profile?: string;
  readonly region?: string;
  readonly account?: string;
}

export interface ProjectConfig {
  /** Prefix of every stack name. */
  readonly project: string;
  /** How many images the ECR lifecycle policy keeps per repository. */
  readonly keepImages: number;
  readonly images: readonly ImageConfig[];
  readonly stages: Readonly<Record<string, StageConfig>>;
}

/** A mistake in the settings or the context: reported without a stack trace. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Table = Record<string, unknown>;

/** Reads [workspace.metadata.xtask] from a Cargo.toml (the workspace's by default). */
export function loadConfig(file: string = CARGO_TOML): ProjectConfig {
  const text = fs.readFileSync(file, 'utf8');
  try {
    return parseConfig(text);
  } catch (e) {
    throw new ConfigError(`invalid [workspace.metadata.xtask] in ${file}: ${(e as Error).message}`);
  }
}

export function parseConfig(cargoToml: string): ProjectConfig {
  const manifest = parse(cargoToml) as Table;
  const xtask = table(table(table(manifest, 'workspace'), 'metadata'), 'xtask');
  if (Object.keys(xtask).length === 0) {
    throw new ConfigError('the table is missing; add it to the workspace Cargo.toml');
  }

  const project = str(xtask, 'project', '[workspace.metadata.xtask]');
  if (project === undefined || !/^[A-Za-z][A-Za-z0-9-]*$/.test(project)) {
    throw new ConfigError('`project` must be a stack-name prefix: a letter, then letters, digits or dashes');
  }

  const keepImages = xtask['keep-images'] ?? 30;
  if (typeof keepImages !== 'number' || !Number.isInteger(keepImages) || keepImages < 1) {
    throw new ConfigError('`keep-images` must be a positive integer');
  }

  const rawImages = xtask.images ?? [];
  if (!Array.isArray(rawImages) || rawImages.length === 0) {
    throw new ConfigError('no images configured; add an [[workspace.metadata.xtask.images]] entry');
  }
  const images = rawImages.map((raw: unknown, i) => {
    if (!isTable(raw)) throw new ConfigError(`images[${i}] must be a table`);
    return parseImage(raw, i);
  });
  const names = new Set<string>();
  for (const image of images) {
    if (names.has(image.name)) throw new ConfigError(`image \`${image.name}\` is configured twice`);
    names.add(image.name);
  }

  const stages: Record<string, StageConfig> = {};
  const stageTables = table(xtask, 'stages');
  for (const name of Object.keys(stageTables)) {
    if (!/^[A-Za-z0-9-]+$/.test(name)) {
      throw new ConfigError(`stage \`${name}\`: a stage name may hold only letters, digits and dashes`);
    }
    const stage = table(stageTables, name);
    const where = `stages.${name}`;
    stages[name] = {
      name,
      profile: str(stage, 'profile', where),
      region: str(stage, 'region', where),
      account: str(stage, 'account', where),
    };
  }
  const local = stages[LOCAL_STAGE];
  stages[LOCAL_STAGE] = {
    name: LOCAL_STAGE,
    profile: local?.profile,
    region: local?.region ?? LOCAL_DEFAULTS.region,
    account: local?.account ?? LOCAL_DEFAULTS.account,
  };
  for (const stage of Object.values(stages)) {
    if (stage.account !== undefined && !/^\d{12}$/.test(stage.account)) {
      throw new ConfigError(`stages.${stage.name}.account must be a 12-digit AWS account id`);
    }
  }

  return { project, keepImages, images, stages };
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

function parseImage(raw: Table, index: number): ImageConfig {
  const name = str(raw, 'name', `images[${index}]`);
  if (name === undefined || !/^[a-z0-9][a-z0-9_-]*$/.test(name)) {
    throw new ConfigError(`images[${index}].name must be lowercase letters, digits, '-' or '_'`);
  }
  const where = `image \`${name}\``;
  const repository = str(raw, 'repository', where);
  // ECR's own rule for repository names.
  if (repository === undefined || !/^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*\/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$/.test(repository)) {
    throw new ConfigError(`${where}: \`repository\` must be an ECR repository name such as "project/app"`);
  }
  const port = raw.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(`${where}: \`port\` must be the TCP port the container listens on (the load balancer routes to it)`);
  }
  const platform = str(raw, 'platform', where) ?? 'linux/amd64';
  if (!PLATFORMS.includes(platform)) {
    throw new ConfigError(`${where}: platform \`${platform}\` is not supported; use ${PLATFORMS.join(' or ')}`);
  }
  return { name, repository, port, platform: platform as Platform };
}

function isTable(value: unknown): value is Table {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function table(parent: Table, key: string): Table {
  const value = parent[key];
  if (value === undefined) return {};
  if (!isTable(value)) throw new ConfigError(`\`${key}\` must be a table`);
  return value;
}

function str(parent: Table, key: string, where: string): string | undefined {
  const value = parent[key];
  if (value !== undefined && typeof value !== 'string') {
    throw new ConfigError(`${where}: \`${key}\` must be a string`);
  }
  return value;
}
