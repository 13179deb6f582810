import { Match, Template } from 'aws-cdk-lib/assertions';
import { fixture, stacks } from './helpers';

// The registry stack never needs a tag: it exists before any image is pushed.
const { registry } = stacks();
const template = Template.fromStack(registry);

test('matches the snapshot', () => {
  expect(template.toJSON()).toMatchSnapshot();
});

test('is named after the project and stage', () => {
  expect(registry.stackName).toBe('demo-local-registry');
  expect(stacks({ stage: 'dev' }).registry.stackName).toBe('demo-dev-registry');
  expect(registry.account).toBe('123456789012');
  expect(registry.region).toBe('us-east-1');
});

test('has one immutable, scanned, retained repository per image', () => {
  template.resourceCountIs('AWS::ECR::Repository', fixture.images.length);
  for (const image of fixture.images) {
    template.hasResource('AWS::ECR::Repository', {
      Properties: Match.objectLike({
        RepositoryName: image.repository,
        ImageTagMutability: 'IMMUTABLE',
        ImageScanningConfiguration: { ScanOnPush: true },
      }),
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  }
});

test('sets the lifecycle policy xtask resolved, verbatim', () => {
  const repositories = template.findResources('AWS::ECR::Repository');
  for (const repository of Object.values(repositories)) {
    const policy = JSON.parse(repository.Properties.LifecyclePolicy.LifecyclePolicyText);
    expect(policy).toEqual(fixture.lifecyclePolicy);
  }
});

test('keeps deployed images first, then main, then pull requests, then build cache, and never selects untagged manifests', () => {
  const rules = fixture.lifecyclePolicy.rules;
  expect(rules.map((r) => [r.rulePriority, r.selection.tagPrefixList ?? r.selection.tagPatternList, r.selection.countNumber])).toEqual([
    [1, ['deployed-dev.'], fixture.rollbackWindow],
    [2, ['deployed-local.'], fixture.rollbackWindow],
    [3, ['main-'], fixture.keepImages],
    [4, ['pr-'], 3],
    [5, ['buildcache-'], 5],
    [6, ['*'], fixture.keepImages],
  ]);
  for (const rule of rules) {
    expect(rule.selection.tagStatus).toBe('tagged');
    expect(rule.action).toEqual({ type: 'expire' });
  }
});

test('outputs each repository URI', () => {
  expect(Object.keys(template.findOutputs('*')).sort()).toEqual(['ApiGatewayRepositoryUri', 'WebRepositoryUri']);
});
