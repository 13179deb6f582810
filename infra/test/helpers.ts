import * as fs from 'node:fs';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { addStageStacks } from '../lib/app';
import { ImageConfig, LOCAL_STAGE, loadConfig, ProjectConfig } from '../lib/config';

/** A fixed tag: a new commit never changes a snapshot. */
export const TAG = '0123456789abcdef0123456789abcdef01234567';
export const DIGEST_WEB = `sha256:${'a'.repeat(64)}`;
export const DIGEST_API = `sha256:${'b'.repeat(64)}`;

// The feature flags of cdk.json, which the CLI synthesizes with: the tests see the same templates.
const featureFlags = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'cdk.json'), 'utf8')).context;

/** The resolved form of fixtures/Cargo.toml, as `cargo xtask config --out` writes it. */
export const FIXTURE = path.join(__dirname, 'fixtures', 'config.json');
export const fixture: ProjectConfig = loadConfig(FIXTURE);

/**
 * A project as xtask resolves one with these images, the default keep-images and only the
 * local stage; its lifecycle policy is cut to one rule (the registry stack sets it verbatim).
 */
export function project(name: string, images: ImageConfig[]): ProjectConfig {
  return {
    project: name,
    keepImages: 30,
    rollbackWindow: 10,
    mainBranch: 'main',
    lifecyclePolicy: {
      rules: [
        {
          rulePriority: 1,
          description: 'Keep the last 30 tagged images',
          selection: { tagStatus: 'tagged', tagPatternList: ['*'], countType: 'imageCountMoreThan', countNumber: 30 },
          action: { type: 'expire' },
        },
      ],
    },
    images,
    stages: {
      [LOCAL_STAGE]: {
        name: LOCAL_STAGE,
        signingKeys: { main: `alias/${name}-local-main`, pr: `alias/${name}-local-pr` },
        region: 'us-east-1',
        account: '123456789012',
      },
    },
  };
}

/** An HTTP app behind a load balancer and a worker without one, which serves only its health check. */
export const WITH_WORKER = project('two', [
  { name: 'app', repository: 'two/app', prRepository: 'pr/two/app', port: 8080, platform: 'linux/amd64', loadBalanced: true },
  { name: 'worker', repository: 'two/worker', prRepository: 'pr/two/worker', port: 8081, platform: 'linux/arm64', loadBalanced: false },
]);

/**
 * An app as the CLI runs it: cdk.json's feature flags, and a stack's validation
 * errors (such as a missing tag) fail only that stack, not the whole synth.
 */
export function app(context: Record<string, unknown> = {}): App {
  return new App({ context: { ...featureFlags, '@aws-cdk/core:failSynthOnValidationErrors': false, ...context } });
}

/** The app's stacks for the fixture config and the given context (`stage`, `imageTag`, `imageDigest`). */
export function stacks(context: Record<string, string> = {}, config: ProjectConfig = fixture) {
  return addStageStacks(app(context), config);
}

/** The fixture with a prod stage that runs dev's images (promote-from), in its own account. */
export const WITH_PROD: ProjectConfig = {
  ...fixture,
  stages: {
    ...fixture.stages,
    prod: { name: 'prod', promoteFrom: 'dev', profile: 'demo-prod', region: 'eu-west-1', account: '222222222222' },
  },
};

/**
 * A template value with CloudFormation's functions that name the partition resolved as
 * they would be in the `aws` partition: ARNs become plain strings to compare.
 */
export function plain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value !== 'object' || value === null) return value;
  const object = value as Record<string, unknown>;
  if (object.Ref === 'AWS::Partition') return 'aws';
  if ('Fn::Join' in object) {
    const [separator, parts] = object['Fn::Join'] as [string, unknown[]];
    return parts.map(plain).join(separator);
  }
  return Object.fromEntries(Object.entries(object).map(([k, v]) => [k, plain(v)]));
}
