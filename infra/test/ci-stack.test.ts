import { Template } from 'aws-cdk-lib/assertions';
import { fixture, plain, stacks, WITH_PROD } from './helpers';

// The fixture names a GitHub repository (example/demo): each stage gets a CI stack.
const ci = stacks().ci!;
const template = Template.fromStack(ci);

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}
interface Role {
  trust: Statement[];
  statements: Statement[];
}

/** Each role of a template by name, with its trust policy and its permissions, ARNs made plain. */
function roles(t: Template): Record<string, Role> {
  return Object.fromEntries(
    Object.values(t.findResources('AWS::IAM::Role')).map((r) => [
      r.Properties.RoleName,
      {
        trust: plain(r.Properties.AssumeRolePolicyDocument.Statement) as Statement[],
        statements: (r.Properties.Policies ?? []).flatMap((p: any) => plain(p.PolicyDocument.Statement) as Statement[]),
      },
    ]),
  );
}

const list = (v: string | string[]) => (Array.isArray(v) ? v : [v]);
const ecrRepo = (account: string, region: string, name: string) => `arn:aws:ecr:${region}:${account}:repository/${name}`;
const LOCAL = (name: string) => ecrRepo('123456789012', 'us-east-1', name);
const MAIN_REPOS = fixture.images.map((i) => LOCAL(i.repository));
const PR_REPOS = fixture.images.map((i) => LOCAL(i.prRepository));
const WRITES = ['ecr:PutImage', 'ecr:InitiateLayerUpload', 'ecr:UploadLayerPart', 'ecr:CompleteLayerUpload', 'ecr:BatchDeleteImage'];

/** The resources a role may use `action` on (wildcard actions count). */
function resourcesFor(role: Role, action: string): { resource: string; condition?: unknown }[] {
  return role.statements
    .filter((s) => s.Effect === 'Allow' && list(s.Action).some((a) => a === action || (a.endsWith('*') && action.startsWith(a.slice(0, -1)))))
    .flatMap((s) => list(s.Resource).map((resource) => ({ resource, condition: s.Condition })));
}

/** The one trust statement of a role: web identity from the stack's GitHub provider, with these `sub`s. */
function trust(sub: string | string[]): Statement[] {
  return [
    {
      Effect: 'Allow',
      Action: 'sts:AssumeRoleWithWebIdentity',
      Principal: { Federated: { Ref: expect.stringMatching(/^GithubOidc/) } },
      Condition: {
        StringEquals: { 'token.actions.githubusercontent.com:aud': 'sts.amazonaws.com', 'token.actions.githubusercontent.com:sub': sub },
      },
    } as unknown as Statement,
  ];
}

test('matches the snapshot', () => {
  expect(template.toJSON()).toMatchSnapshot();
});

test('exists only when the settings name a GitHub repository', () => {
  expect(ci.stackName).toBe('demo-local-ci');
  expect(stacks({ stage: 'dev' }).ci!.stackName).toBe('demo-dev-ci');
  const { githubRepository: _, ...config } = fixture;
  expect(stacks({}, config).ci).toBeUndefined();
});

test("trusts GitHub's OIDC provider for the STS audience", () => {
  template.resourceCountIs('AWS::IAM::OIDCProvider', 1);
  template.hasResourceProperties('AWS::IAM::OIDCProvider', {
    Url: 'https://token.actions.githubusercontent.com',
    ClientIdList: ['sts.amazonaws.com'],
  });
});

test('a stage that builds has the main push, pull-request and plan roles, with fixed names', () => {
  expect(Object.keys(roles(template)).sort()).toEqual(['demo-local-ci-main', 'demo-local-ci-plan', 'demo-local-ci-pr']);
});

test.each([
  ['demo-local-ci-main', 'repo:example/demo:ref:refs/heads/main'],
  ['demo-local-ci-pr', 'repo:example/demo:pull_request'],
  ['demo-local-ci-plan', ['repo:example/demo:pull_request', 'repo:example/demo:ref:refs/heads/main']],
])('%s is assumable only by the repository with the audience and subject %j', (name, sub) => {
  expect(roles(template)[name].trust).toEqual(trust(sub));
});

test('the main branch setting decides which branch the main push role trusts', () => {
  const t = Template.fromStack(stacks({}, { ...fixture, mainBranch: 'trunk' }).ci!);
  const condition = roles(t)['demo-local-ci-main'].trust[0].Condition!;
  expect(condition.StringEquals['token.actions.githubusercontent.com:sub']).toBe('repo:example/demo:ref:refs/heads/trunk');
});

test("the pull-request role writes only the pr/ repositories, reads main's, and cannot sign with the main key", () => {
  const pr = roles(template)['demo-local-ci-pr'];
  for (const action of WRITES.filter((a) => a !== 'ecr:BatchDeleteImage')) {
    expect(resourcesFor(pr, action).map((r) => r.resource).sort()).toEqual([...PR_REPOS].sort());
  }
  expect(resourcesFor(pr, 'ecr:BatchDeleteImage')).toEqual([]);
  for (const repository of MAIN_REPOS) {
    for (const action of WRITES) expect(resourcesFor(pr, action).map((r) => r.resource)).not.toContain(repository);
    expect(resourcesFor(pr, 'ecr:BatchGetImage').map((r) => r.resource)).toContain(repository);
  }
  const sign = resourcesFor(pr, 'kms:Sign');
  expect(sign).toEqual([
    {
      resource: 'arn:aws:kms:us-east-1:123456789012:key/*',
      condition: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/demo-local-pr' } },
    },
  ]);
  expect(JSON.stringify(sign)).not.toContain('alias/demo-local-main');
});

test("the main push role writes main's repositories, signs with the main key, and never touches a pull request's", () => {
  const main = roles(template)['demo-local-ci-main'];
  for (const action of WRITES) expect(resourcesFor(main, action).map((r) => r.resource).sort()).toEqual([...MAIN_REPOS].sort());
  expect(JSON.stringify(main.statements)).not.toContain('repository/pr/');
  expect(resourcesFor(main, 'kms:Sign').map((r) => r.condition)).toEqual([
    { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/demo-local-main' } },
  ]);
});

test('the plan role only reads', () => {
  const plan = roles(template)['demo-local-ci-plan'];
  for (const action of [...WRITES, 'kms:Sign']) expect(resourcesFor(plan, action)).toEqual([]);
  expect(resourcesFor(plan, 'ecr:DescribeImages').map((r) => r.resource).sort()).toEqual([...MAIN_REPOS, ...PR_REPOS].sort());
});

test('every ECR action names the repositories, except the two that have no resource to name', () => {
  for (const [name, role] of Object.entries(roles(template))) {
    for (const s of role.statements) {
      if (list(s.Resource).includes('*')) {
        expect([name, s.Action]).toEqual([name, ['ecr:GetAuthorizationToken', 'ecr:GetRegistryScanningConfiguration']]);
      }
    }
  }
});

test('outputs each role ARN, for the workflow variables', () => {
  expect(Object.keys(template.findOutputs('*')).sort()).toEqual(['MainRoleArn', 'PlanRoleArn', 'PrRoleArn']);
});

describe('with a prod stage that promotes from dev', () => {
  const dev = roles(Template.fromStack(stacks({ stage: 'dev' }, WITH_PROD).ci!));
  const prodTemplate = Template.fromStack(stacks({ stage: 'prod' }, WITH_PROD).ci!);
  const prod = roles(prodTemplate);
  const DEV_MAIN = fixture.images.map((i) => ecrRepo('111111111111', 'eu-west-1', i.repository));
  const PROD = fixture.images.map((i) => ecrRepo('222222222222', 'eu-west-1', i.repository));

  test("dev's release role: only the prod environment assumes it, to read main's images", () => {
    expect(dev['demo-dev-ci-release'].trust[0].Condition!.StringEquals['token.actions.githubusercontent.com:sub']).toBe(
      'repo:example/demo:environment:prod',
    );
    const release = dev['demo-dev-ci-release'];
    for (const action of [...WRITES, 'kms:Sign']) expect(resourcesFor(release, action)).toEqual([]);
    expect(resourcesFor(release, 'ecr:BatchGetImage').map((r) => r.resource).sort()).toEqual([...DEV_MAIN].sort());
    expect(resourcesFor(release, 'kms:GetPublicKey').map((r) => r.condition)).toEqual([
      { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/demo-dev-main' } },
    ]);
  });

  test("prod's roles: only the prod environment assumes them; the release role writes prod's repositories and deploys", () => {
    expect(Object.keys(prod).sort()).toEqual(['demo-prod-ci-plan', 'demo-prod-ci-release']);
    for (const role of Object.values(prod)) {
      expect(role.trust[0].Condition!.StringEquals['token.actions.githubusercontent.com:sub']).toBe('repo:example/demo:environment:prod');
    }
    const release = prod['demo-prod-ci-release'];
    for (const action of WRITES) expect(resourcesFor(release, action).map((r) => r.resource).sort()).toEqual([...PROD].sort());
    expect(resourcesFor(release, 'kms:Sign')).toEqual([]);
    expect(resourcesFor(release, 'sts:AssumeRole').map((r) => r.resource)).toContain(
      'arn:aws:iam::222222222222:role/cdk-*-deploy-role-222222222222-eu-west-1',
    );
    const plan = prod['demo-prod-ci-plan'];
    for (const action of [...WRITES, 'kms:Sign']) expect(resourcesFor(plan, action)).toEqual([]);
    expect(resourcesFor(plan, 'sts:AssumeRole').map((r) => r.resource)).toEqual([
      'arn:aws:iam::222222222222:role/cdk-*-lookup-role-222222222222-eu-west-1',
    ]);
  });

  test("prod's release role follows ECS's service deployments and can roll one back; its plan role only reads them", () => {
    const [release, plan] = [prod['demo-prod-ci-release'], prod['demo-prod-ci-plan']];
    for (const role of [release, plan]) {
      for (const action of ['ecs:ListServiceDeployments', 'ecs:DescribeServiceDeployments', 'ecs:DescribeServiceRevisions']) {
        expect(resourcesFor(role, action).map((r) => r.resource)).toEqual(['*']);
      }
    }
    expect(resourcesFor(release, 'ecs:StopServiceDeployment').map((r) => r.resource)).toEqual([
      'arn:aws:ecs:eu-west-1:222222222222:service-deployment/*',
    ]);
    expect(resourcesFor(plan, 'ecs:StopServiceDeployment')).toEqual([]);
  });

  test('no pull request and no branch can assume a role of prod', () => {
    const subjects = JSON.stringify(Object.values(prod).map((r) => r.trust));
    expect(subjects).not.toContain('pull_request');
    expect(subjects).not.toContain('ref:refs/heads');
  });
});
