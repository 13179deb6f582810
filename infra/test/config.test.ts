import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { configFromContext } from '../lib/app';
import { CONFIG_SCHEMA, ConfigError, loadConfig, resolveStage } from '../lib/config';
import { app, fixture, FIXTURE, stacks } from './helpers';

/** A scratch file holding `text`, removed after the test run. */
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'infra-config-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const p = path.join(scratch, name);
  fs.writeFileSync(p, text);
  return p;
}

test('reads the fixture', () => {
  expect(fixture.project).toBe('demo');
  expect(fixture.keepImages).toBe(5);
  expect(fixture.mainBranch).toBe('main');
  expect(fixture.githubRepository).toBe('example/demo');
  expect(fixture.images).toEqual([
    { name: 'web', repository: 'demo/web', prRepository: 'pr/demo/web', port: 8080, platform: 'linux/amd64', loadBalanced: true },
    {
      name: 'api-gateway',
      repository: 'demo/api-gateway',
      prRepository: 'pr/demo/api-gateway',
      port: 9000,
      platform: 'linux/arm64',
      loadBalanced: true,
    },
  ]);
  expect(fixture.stages.dev).toEqual({
    name: 'dev',
    signingKeys: { main: 'alias/demo-dev-main', pr: 'alias/demo-dev-pr' },
    profile: 'demo-dev',
    region: 'eu-west-1',
    account: '111111111111',
    rollout: {
      strategy: 'canary',
      bakeMinutes: 10,
      canaryPercent: 20,
      canaryBakeMinutes: 10,
      rollbackAlarms: ['demo-dev-5xx'],
    },
    scanning: 'enhanced',
  });
});

test('the local stage always exists, with defaults', () => {
  expect(resolveStage(fixture, 'local')).toStrictEqual({
    name: 'local',
    signingKeys: { main: 'alias/demo-local-main', pr: 'alias/demo-local-pr' },
    region: 'us-east-1',
    account: '123456789012',
    rollout: { strategy: 'rolling', rollbackAlarms: [] },
  });
});

test('rejects an unknown stage, listing the known ones', () => {
  expect(() => stacks({ stage: 'staging' })).toThrow(
    'unknown stage `staging`; known stages: dev, local (add one under [workspace.metadata.xtask.stages])',
  );
});

test('reads the file that the xtaskConfig context names', () => {
  expect(configFromContext(app({ xtaskConfig: FIXTURE }))).toEqual(fixture);
});

test.each([
  ['a missing', {}],
  ['an empty', { xtaskConfig: '' }],
])('rejects %s xtaskConfig context, saying how to get one', (_, context) => {
  const load = () => configFromContext(app(context));
  expect(load).toThrow(ConfigError);
  expect(load).toThrow(
    'no configuration: run cdk through cargo xtask (deploy, check, bootstrap), which passes -c xtaskConfig=<file>; ' +
      'or write one with `cargo xtask config --out FILE`',
  );
});

test('rejects a file it cannot read, naming it', () => {
  const missing = path.join(scratch, 'missing.json');
  expect(() => loadConfig(missing)).toThrow(ConfigError);
  expect(() => loadConfig(missing)).toThrow(`cannot read the configuration file ${missing}: `);
});

test('rejects a file that is not JSON, naming it', () => {
  const truncated = file('truncated.json', '{\n  "schema": 1,\n  "project": "demo",\n');
  expect(() => loadConfig(truncated)).toThrow(ConfigError);
  expect(() => loadConfig(truncated)).toThrow(`the configuration file ${truncated} is not valid JSON: `);
});

test.each([
  ['a newer schema', { ...fixture, schema: 4 }, '4'],
  ['an older schema', { ...fixture, schema: 2 }, '2'],
  ['a string schema', { ...fixture, schema: '3' }, '"3"'],
  ['no schema', fixture, 'none'],
])('rejects %s', (_, config, found) => {
  const json = file('schema.json', JSON.stringify(config));
  expect(() => loadConfig(json)).toThrow(ConfigError);
  expect(() => loadConfig(json)).toThrow(
    `${json} has configuration schema ${found}, this app reads ${CONFIG_SCHEMA}; rebuild xtask (any cargo xtask command does) and retry`,
  );
});

test('rejects JSON that is not an object as having no schema', () => {
  const json = file('array.json', '[1]\n');
  expect(() => loadConfig(json)).toThrow(`${json} has configuration schema none, this app reads ${CONFIG_SCHEMA}`);
});

/** The fixture's JSON with the images' `loadBalanced` set to these values (undefined: absent). */
function withLoadBalanced(...values: unknown[]): string {
  const data = JSON.parse(fs.readFileSync(FIXTURE, 'utf8'));
  data.images.forEach((image: Record<string, unknown>, i: number) => {
    delete image.loadBalanced;
    if (values[i] !== undefined) image.loadBalanced = values[i];
  });
  return file('load-balanced.json', JSON.stringify(data));
}

test('reads loadBalanced, which is true when absent (files written before it existed)', () => {
  expect(loadConfig(withLoadBalanced(undefined, false)).images.map((i) => i.loadBalanced)).toEqual([true, false]);
  expect(loadConfig(withLoadBalanced(false, true)).images.map((i) => i.loadBalanced)).toEqual([false, true]);
});

test.each([
  ['a string', '"false"'],
  ['a number', '0'],
  ['null', 'null'],
])('rejects a loadBalanced that is %s, naming the image', (_, value) => {
  const json = withLoadBalanced(true, JSON.parse(value));
  expect(() => loadConfig(json)).toThrow(ConfigError);
  expect(() => loadConfig(json)).toThrow(
    `${json}: images[1] (api-gateway) has loadBalanced ${value}, expected true or false`,
  );
});

/** The fixture's JSON, changed by `edit`, in a scratch file. */
function edited(edit: (data: Record<string, any>) => void): string {
  const data = JSON.parse(fs.readFileSync(FIXTURE, 'utf8'));
  edit(data);
  return file('edited.json', JSON.stringify(data));
}

test('a stage without a rollout rolls (files written before there was one)', () => {
  const config = loadConfig(edited((d) => delete d.stages.dev.rollout));
  expect(config.stages.dev.rollout).toEqual({ strategy: 'rolling', rollbackAlarms: [] });
});

test('githubRepository is optional', () => {
  const config = loadConfig(edited((d) => delete d.githubRepository));
  expect(config.githubRepository).toBeUndefined();
  expect('githubRepository' in config).toBe(false);
});

test.each([
  ['mainBranch missing', (d: Record<string, any>) => delete d.mainBranch, 'mainBranch is undefined, expected a branch name'],
  ['mainBranch empty', (d: Record<string, any>) => (d.mainBranch = ''), 'mainBranch is "", expected a branch name'],
  [
    'githubRepository without an owner',
    (d: Record<string, any>) => (d.githubRepository = 'demo'),
    'githubRepository is "demo", expected a GitHub repository such as "owner/name"',
  ],
  [
    'githubRepository with a wildcard',
    (d: Record<string, any>) => (d.githubRepository = 'example/*'),
    'githubRepository is "example/*", expected a GitHub repository such as "owner/name"',
  ],
  [
    'an image without prRepository',
    (d: Record<string, any>) => delete d.images[1].prRepository,
    'images[1] (api-gateway) has prRepository undefined, expected a repository other than demo/api-gateway',
  ],
  [
    'a prRepository that is the main one',
    (d: Record<string, any>) => (d.images[0].prRepository = 'demo/web'),
    'images[0] (web) has prRepository "demo/web", expected a repository other than demo/web',
  ],
  [
    'a building stage without signingKeys',
    (d: Record<string, any>) => delete d.stages.dev.signingKeys,
    'stages.dev builds its images (no promoteFrom) but has no signingKeys',
  ],
  [
    'a promote-to stage with signingKeys',
    (d: Record<string, any>) => (d.stages.dev.promoteFrom = 'local'),
    'stages.dev has promoteFrom "local" and signingKeys; a promote-to stage signs nothing',
  ],
  [
    'one key for both channels',
    (d: Record<string, any>) => (d.stages.dev.signingKeys.pr = d.stages.dev.signingKeys.main),
    'stages.dev.signingKeys is {"main":"alias/demo-dev-main","pr":"alias/demo-dev-main"}, expected two different KMS keys',
  ],
  [
    'an unknown strategy',
    (d: Record<string, any>) => (d.stages.dev.rollout.strategy = 'bluegreen'),
    'stages.dev.rollout is {"strategy":"bluegreen","bakeMinutes":10,"canaryPercent":20,"canaryBakeMinutes":10,"rollbackAlarms":["demo-dev-5xx"]}, expected a strategy among rolling, blue-green, canary, linear',
  ],
  [
    'a canary without its percentage',
    (d: Record<string, any>) => delete d.stages.dev.rollout.canaryPercent,
    'stages.dev.rollout.canaryPercent is undefined, expected a number for strategy canary',
  ],
  [
    'a linear rollout without its step',
    (d: Record<string, any>) => (d.stages.dev.rollout = { strategy: 'linear', bakeMinutes: 5, linearPercent: 10, rollbackAlarms: [] }),
    'stages.dev.rollout.linearStepMinutes is undefined, expected a number for strategy linear',
  ],
  [
    'an empty alarm name',
    (d: Record<string, any>) => (d.stages.dev.rollout.rollbackAlarms = ['']),
    'stages.dev.rollout.rollbackAlarms is [""], expected CloudWatch alarm names',
  ],
  [
    'a key with a blank',
    (d: Record<string, any>) => (d.stages.dev.signingKeys.pr = 'alias/x y'),
    'stages.dev.signingKeys is {"main":"alias/demo-dev-main","pr":"alias/x y"}, expected two different KMS keys',
  ],
  [
    'a scan type that is neither basic nor enhanced',
    (d: Record<string, any>) => (d.stages.dev.scanning = 'ENHANCED'),
    'stages.dev.scanning is "ENHANCED", expected "basic" or "enhanced"',
  ],
])('rejects %s, naming it', (_, edit, message) => {
  const json = edited(edit);
  expect(() => loadConfig(json)).toThrow(ConfigError);
  expect(() => loadConfig(json)).toThrow(`${json}: ${message}`);
});
