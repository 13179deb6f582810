import { Match, Template } from 'aws-cdk-lib/assertions';
import { fixture, plain, stacks, WITH_PROD } from './helpers';

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

test('has one immutable, scanned, retained repository per image, and one for its pull requests', () => {
  template.resourceCountIs('AWS::ECR::Repository', 2 * fixture.images.length);
  for (const repository of fixture.images.flatMap((i) => [i.repository, i.prRepository])) {
    template.hasResource('AWS::ECR::Repository', {
      Properties: Match.objectLike({
        RepositoryName: repository,
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

test('outputs each repository URI and signing key ARN', () => {
  expect(Object.keys(template.findOutputs('*')).sort()).toEqual([
    'ApiGatewayPrRepositoryUri',
    'ApiGatewayRepositoryUri',
    'MainSigningKeyArn',
    'PrSigningKeyArn',
    'WebPrRepositoryUri',
    'WebRepositoryUri',
  ]);
});

/** The stack's KMS keys by alias: the key resource (with its policy) of each. */
function keysByAlias(t: Template): Record<string, any> {
  const keys = t.findResources('AWS::KMS::Key');
  const aliases = Object.values(t.findResources('AWS::KMS::Alias'));
  return Object.fromEntries(aliases.map((a) => [a.Properties.AliasName, keys[a.Properties.TargetKeyId['Fn::GetAtt'][0]]]));
}

test('makes the stage\'s two signing keys: ECDSA P-256, sign and verify only, retained, under the aliases given', () => {
  const keys = keysByAlias(template);
  expect(Object.keys(keys).sort()).toEqual(['alias/demo-local-main', 'alias/demo-local-pr']);
  for (const key of Object.values(keys)) {
    expect(key.Properties).toMatchObject({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' });
    expect(key.Properties.EnableKeyRotation).toBeUndefined();
    expect(key).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  }
});

test.each([
  ['alias/demo-local-main', 'demo-local-ci-main'],
  ['alias/demo-local-pr', 'demo-local-ci-pr'],
])('%s: the account administers it, only %s signs', (alias, signer) => {
  const statements = plain(keysByAlias(template)[alias].Properties.KeyPolicy.Statement);
  expect(statements).toEqual([
    // No lock-out: the account's root keeps every right, so IAM policies grant the key's use
    // (kms:GetPublicKey and kms:DescribeKey for the roles that verify).
    {
      Sid: 'AccountAdministers',
      Effect: 'Allow',
      Principal: { AWS: 'arn:aws:iam::123456789012:root' },
      Action: 'kms:*',
      Resource: '*',
    },
    // Whatever IAM policies or grants say, no one else signs.
    {
      Sid: 'OnlyTheSignerSigns',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 'kms:Sign',
      Resource: '*',
      Condition: { ArnNotEquals: { 'aws:PrincipalArn': `arn:aws:iam::123456789012:role/${signer}` } },
    },
  ]);
});

test('without a GitHub repository (no CI roles), who signs is left to the account\'s IAM policies', () => {
  const { githubRepository: _, ...config } = fixture;
  const t = Template.fromStack(stacks({}, config).registry);
  for (const key of Object.values(keysByAlias(t))) {
    expect(key.Properties.KeyPolicy.Statement.map((s: { Sid: string }) => s.Sid)).toEqual(['AccountAdministers']);
  }
});

test('a stage that runs another\'s images has neither pull-request repositories nor keys', () => {
  const t = Template.fromStack(stacks({ stage: 'prod' }, WITH_PROD).registry);
  expect(Object.values(t.findResources('AWS::ECR::Repository')).map((r) => r.Properties.RepositoryName).sort()).toEqual([
    'demo/api-gateway',
    'demo/web',
  ]);
  t.resourceCountIs('AWS::KMS::Key', 0);
});

test('a key named by id or ARN is not made here: the stage only uses it', () => {
  const local = fixture.stages.local;
  const config = {
    ...fixture,
    stages: { ...fixture.stages, local: { ...local, signingKeys: { main: 'arn:aws:kms:us-east-1:123456789012:key/k', pr: 'alias/demo-local-pr' } } },
  };
  const t = Template.fromStack(stacks({}, config).registry);
  expect(Object.keys(keysByAlias(t))).toEqual(['alias/demo-local-pr']);
  t.resourceCountIs('AWS::KMS::Key', 1);
});

describe('the registry\'s scanning configuration (`scanning`)', () => {
  const withScanning = (scanning: 'basic' | 'enhanced' | undefined) => ({
    ...fixture,
    stages: { ...fixture.stages, dev: { ...fixture.stages.dev, scanning } },
  });
  const dev = (scanning: 'basic' | 'enhanced' | undefined) =>
    Template.fromStack(stacks({ stage: 'dev' }, withScanning(scanning)).registry);
  // Each repository name is a filter: without `*`, ECR matches every name that contains
  // it, so `demo/web` also covers `pr/demo/web`.
  const filters = [
    { Filter: 'demo/api-gateway', FilterType: 'WILDCARD' },
    { Filter: 'demo/web', FilterType: 'WILDCARD' },
  ];

  test('basic: the BASIC scan type and one rule scanning the project\'s repositories on push', () => {
    const t = dev('basic');
    t.resourceCountIs('AWS::ECR::RegistryScanningConfiguration', 1);
    t.hasResourceProperties('AWS::ECR::RegistryScanningConfiguration', {
      ScanType: 'BASIC',
      Rules: [{ ScanFrequency: 'SCAN_ON_PUSH', RepositoryFilters: filters }],
    });
  });

  test('enhanced: the ENHANCED scan type and one rule scanning them continuously (on push, then as vulnerabilities are published)', () => {
    dev('enhanced').hasResourceProperties('AWS::ECR::RegistryScanningConfiguration', {
      ScanType: 'ENHANCED',
      Rules: [{ ScanFrequency: 'CONTINUOUS_SCAN', RepositoryFilters: filters }],
    });
  });

  test('unset: the registry\'s configuration is left alone', () => {
    dev(undefined).resourceCountIs('AWS::ECR::RegistryScanningConfiguration', 0);
    // The local stage never sets it (xtask refuses it there): the snapshot's stack has none.
    template.resourceCountIs('AWS::ECR::RegistryScanningConfiguration', 0);
  });

  test('the pull-request repositories are covered by their main repository\'s filter', () => {
    for (const image of fixture.images) expect(image.prRepository).toContain(image.repository);
  });

  test('more repositories than one rule may filter is refused, saying what to do', () => {
    const images = Array.from({ length: 101 }, (_, i) => ({ ...fixture.images[0], name: `i${i}`, repository: `demo/i${i}`, prRepository: `pr/demo/i${i}` }));
    expect(() => stacks({ stage: 'dev' }, { ...withScanning('basic'), images })).toThrow(
      'a registry scanning rule holds at most 100 repository filters, and there are 101 repositories',
    );
  });
});
