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

test('expires untagged images after 7 days and keeps the last keep-images images', () => {
  const repositories = template.findResources('AWS::ECR::Repository');
  for (const repository of Object.values(repositories)) {
    const policy = JSON.parse(repository.Properties.LifecyclePolicy.LifecyclePolicyText);
    expect(policy.rules).toEqual([
      expect.objectContaining({
        rulePriority: 1,
        selection: { tagStatus: 'untagged', countType: 'sinceImagePushed', countNumber: 7, countUnit: 'days' },
        action: { type: 'expire' },
      }),
      expect.objectContaining({
        rulePriority: 2,
        selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: fixture.keepImages },
        action: { type: 'expire' },
      }),
    ]);
  }
});

test('outputs each repository URI', () => {
  expect(Object.keys(template.findOutputs('*')).sort()).toEqual(['ApiGatewayRepositoryUri', 'WebRepositoryUri']);
});
