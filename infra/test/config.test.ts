import { CARGO_TOML, loadConfig, parseConfig, resolveStage } from '../lib/config';
import { fixture, stacks } from './helpers';

const MINIMAL = `
[workspace.metadata.xtask]
project = "p"
[[workspace.metadata.xtask.images]]
name = "app"
repository = "p/app"
port = 8080
`;

test('reads the fixture', () => {
  expect(fixture.project).toBe('demo');
  expect(fixture.keepImages).toBe(5);
  expect(fixture.images).toEqual([
    { name: 'web', repository: 'demo/web', port: 8080, platform: 'linux/amd64' },
    { name: 'api-gateway', repository: 'demo/api-gateway', port: 9000, platform: 'linux/arm64' },
  ]);
  expect(fixture.stages.dev).toEqual({ name: 'dev', profile: 'demo-dev', region: 'eu-west-1', account: '111111111111' });
});

test('the local stage always exists, with defaults', () => {
  expect(resolveStage(fixture, 'local')).toEqual({
    name: 'local',
    profile: undefined,
    region: 'us-east-1',
    account: '123456789012',
  });
});

test('defaults keep-images and platform', () => {
  const config = parseConfig(MINIMAL);
  expect(config.keepImages).toBe(30);
  expect(config.images[0].platform).toBe('linux/amd64');
});

test("the workspace's own Cargo.toml is valid", () => {
  const config = loadConfig(CARGO_TOML);
  expect(config.images.length).toBeGreaterThan(0);
  expect(Object.keys(config.stages)).toContain('local');
});

test('rejects an unknown stage, listing the known ones', () => {
  expect(() => stacks({ stage: 'staging' })).toThrow(
    'unknown stage `staging`; known stages: dev, local (add one under [workspace.metadata.xtask.stages])',
  );
});

test.each([
  ['a missing table', '[workspace]\nmembers = []\n', 'the table is missing'],
  ['a duplicate image', MINIMAL + MINIMAL.split('\n').slice(3).join('\n'), 'image `app` is configured twice'],
  ['an unknown platform', MINIMAL + 'platform = "windows/amd64"\n', 'platform `windows/amd64` is not supported'],
  ['a missing port', MINIMAL.replace('port = 8080', ''), '`port` must be the TCP port'],
  ['a bad repository name', MINIMAL.replace('p/app', 'P/App'), '`repository` must be an ECR repository name'],
  ['a bad keep-images', MINIMAL.replace('project = "p"', 'project = "p"\nkeep-images = 0'), '`keep-images` must be a positive integer'],
  ['a bad account', MINIMAL + '[workspace.metadata.xtask.stages.dev]\naccount = "42"\n', 'stages.dev.account must be a 12-digit'],
])('rejects %s', (_, toml, message) => {
  expect(() => parseConfig(toml)).toThrow(message);
});
