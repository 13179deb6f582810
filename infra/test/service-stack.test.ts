import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { addStageStacks } from '../lib/app';
import { app, DIGEST_API, DIGEST_WEB, fixture, plain, project, stacks, TAG, WITH_WORKER } from './helpers';

const { service } = stacks({ imageTag: TAG });
const template = Template.fromStack(service);

/** The container definition of an image's task definition. */
function container(t: Template, name: string) {
  const tasks = t.findResources('AWS::ECS::TaskDefinition');
  const containers = Object.values(tasks).flatMap((task) => task.Properties.ContainerDefinitions);
  const found = containers.find((c) => c.Name === name);
  expect(found).toBeDefined();
  return found;
}

/** The image reference after the registry host, e.g. `/demo/web:<tag>`: the host is a Fn::Join of tokens. */
function imageRef(image: any): string {
  expect(image['Fn::Join']).toBeDefined();
  const parts: unknown[] = image['Fn::Join'][1];
  expect(parts[0]).toBe('123456789012.dkr.ecr.us-east-1.');
  expect(parts[1]).toEqual({ Ref: 'AWS::URLSuffix' });
  return parts.slice(2).join('');
}

test('matches the snapshot', () => {
  expect(template.toJSON()).toMatchSnapshot();
});

test('passes CloudFormation validation', () => {
  const strict = app({ '@aws-cdk/core:failSynthOnValidationErrors': true, imageTag: TAG });
  addStageStacks(strict, fixture);
  expect(() => strict.synth()).not.toThrow();
});

test('is named after the project and stage', () => {
  expect(service.stackName).toBe('demo-local-service');
  expect(stacks({ stage: 'dev', imageTag: TAG }).service.stackName).toBe('demo-dev-service');
});

test('runs each image from its repository at the deployed tag', () => {
  expect(imageRef(container(template, 'web').Image)).toBe(`/demo/web:${TAG}`);
  expect(imageRef(container(template, 'api-gateway').Image)).toBe(`/demo/api-gateway:${TAG}`);
});

test('tells the running service its tag', () => {
  for (const image of fixture.images) {
    expect(container(template, image.name).Environment).toEqual([{ Name: 'APP_IMAGE_TAG', Value: TAG }]);
  }
});

test('accepts a dirty tag', () => {
  const dirty = `${TAG}-dirty-0badcafe`;
  const t = Template.fromStack(stacks({ imageTag: dirty }).service);
  expect(imageRef(container(t, 'web').Image)).toBe(`/demo/web:${dirty}`);
});

test('runs each image from its pull-request repository when imageChannel is pr', () => {
  const dirty = `${TAG}-dirty-0badcafe`;
  const t = Template.fromStack(stacks({ imageTag: dirty, imageChannel: 'pr' }).service);
  expect(imageRef(container(t, 'web').Image)).toBe(`/pr/demo/web:${dirty}`);
  expect(imageRef(container(t, 'api-gateway').Image)).toBe(`/pr/demo/api-gateway:${dirty}`);
  // The tasks may pull from the pull-request repositories, and from main's no more.
  const policies = JSON.stringify(plain(t.findResources('AWS::IAM::Policy')));
  expect(policies).toContain(':repository/pr/demo/web"');
  expect(policies).not.toContain(':repository/demo/web"');
});

test('runs main\'s images when imageChannel is main, as when it is absent', () => {
  const t = Template.fromStack(stacks({ imageTag: TAG, imageChannel: 'main' }).service);
  expect(t.toJSON()).toEqual(template.toJSON());
});

test('pins a pull request\'s images by digest in their repository', () => {
  const imageDigest = `web=${DIGEST_WEB},api-gateway=${DIGEST_API}`;
  const t = Template.fromStack(stacks({ imageTag: TAG, imageDigest, imageChannel: 'pr' }).service);
  expect(imageRef(container(t, 'web').Image)).toBe(`/pr/demo/web@${DIGEST_WEB}`);
});

test.each(['prod', 'PR', 'pr/', 'main,pr'])('rejects the imageChannel %s', (imageChannel) => {
  expect(() => stacks({ imageTag: TAG, imageChannel })).toThrow(`imageChannel \`${imageChannel}\` is invalid: expected main or pr`);
});

test('pins images by digest when imageDigest is given', () => {
  const imageDigest = `web=${DIGEST_WEB},api-gateway=${DIGEST_API}`;
  const t = Template.fromStack(stacks({ imageTag: TAG, imageDigest }).service);
  expect(imageRef(container(t, 'web').Image)).toBe(`/demo/web@${DIGEST_WEB}`);
  expect(imageRef(container(t, 'api-gateway').Image)).toBe(`/demo/api-gateway@${DIGEST_API}`);
  expect(container(t, 'web').Environment).toEqual([{ Name: 'APP_IMAGE_TAG', Value: TAG }]);
});

test('takes a bare digest when there is one image', () => {
  // As xtask resolves a project with one image and the default keep-images, platform and local stage.
  const single = project('one', [
    { name: 'app', repository: 'one/app', prRepository: 'pr/one/app', port: 8080, platform: 'linux/amd64', loadBalanced: true },
  ]);
  const t = Template.fromStack(stacks({ imageTag: TAG, imageDigest: DIGEST_WEB }, single).service);
  expect(imageRef(container(t, 'app').Image)).toBe(`/one/app@${DIGEST_WEB}`);
});

test.each([
  ['a bare digest with two images', DIGEST_WEB, 'expected comma-separated <image>=sha256:<64 hex> pairs for web, api-gateway'],
  ['an unknown image', `web=${DIGEST_WEB},db=${DIGEST_API}`, 'is invalid at `db='],
  ['a short digest', `web=sha256:abc,api-gateway=${DIGEST_API}`, 'is invalid at `web=sha256:abc`'],
  ['a repeated image', `web=${DIGEST_WEB},web=${DIGEST_WEB}`, 'is invalid at `web='],
  ['a missing image', `web=${DIGEST_WEB}`, 'has no digest for api-gateway'],
])('rejects an imageDigest with %s', (_, imageDigest, message) => {
  expect(() => stacks({ imageTag: TAG, imageDigest })).toThrow(message);
});

test.each([
  'latest',
  TAG.slice(0, 12),
  TAG.toUpperCase(),
  `${TAG}-dirty`,
  `${TAG}-dirty-0BADCAFE`,
  `${TAG}0`,
])('rejects the tag %s', (imageTag) => {
  expect(() => stacks({ imageTag })).toThrow(`imageTag \`${imageTag}\` is not a commit`);
});

test('without a tag, only the service stack fails, telling how to deploy it', () => {
  const { registry, service: untagged } = stacks({ stage: 'dev' });
  Annotations.fromStack(untagged).hasError(
    '/demo-dev-service',
    'demo-dev-service needs the image tag to deploy; deploy it with `cargo xtask deploy --stage dev` ' +
      '(which passes -c imageTag=<commit sha>)',
  );
  expect(Annotations.fromStack(registry).findError('*', Match.anyValue())).toEqual([]);
  Template.fromStack(untagged).resourceCountIs('AWS::ECS::Service', 0);
});

test('runs Fargate tasks on the image platform, 256 CPU / 512 MiB, with an init process', () => {
  for (const [name, arch] of [['web', 'X86_64'], ['api-gateway', 'ARM64']]) {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '256',
      Memory: '512',
      RequiresCompatibilities: ['FARGATE'],
      RuntimePlatform: { CpuArchitecture: arch, OperatingSystemFamily: 'LINUX' },
      ContainerDefinitions: [Match.objectLike({ Name: name, LinuxParameters: Match.objectLike({ InitProcessEnabled: true }) })],
    });
  }
});

test('routes the load balancer to each container port, health-checked on /healthz', () => {
  for (const image of fixture.images) {
    expect(container(template, image.name).PortMappings).toEqual([{ ContainerPort: image.port, Protocol: 'tcp' }]);
  }
  template.resourceCountIs('AWS::ElasticLoadBalancingV2::LoadBalancer', 2);
  template.allResourcesProperties('AWS::ElasticLoadBalancingV2::TargetGroup', { HealthCheckPath: '/healthz' });
  expect(Object.keys(template.findOutputs('*'))).toEqual(expect.arrayContaining(['WebUrl', 'ApiGatewayUrl']));
});

test('rolls back failed deployments and runs in public subnets without NAT', () => {
  template.resourceCountIs('AWS::ECS::Service', 2);
  template.allResourcesProperties('AWS::ECS::Service', {
    DeploymentConfiguration: Match.objectLike({ DeploymentCircuitBreaker: { Enable: true, Rollback: true } }),
    NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'ENABLED' }) },
  });
  template.resourceCountIs('AWS::EC2::NatGateway', 0);
  template.resourceCountIs('AWS::EC2::Subnet', 2);
  // Plain CloudFormation: no Lambda-backed custom resource, no asset to publish.
  template.resourceCountIs('AWS::Lambda::Function', 0);
});

describe('an image without a load balancer', () => {
  const t = Template.fromStack(stacks({ imageTag: TAG }, WITH_WORKER).service);
  const outputs = t.findOutputs('*');

  /** The ECS service that an image's `<Id>EcsService` output names. */
  function serviceOf(id: string) {
    const name = outputs[`${id}EcsService`].Value;
    expect(name['Fn::GetAtt'][1]).toBe('Name');
    return t.findResources('AWS::ECS::Service')[name['Fn::GetAtt'][0]];
  }

  test('matches the snapshot', () => {
    expect(t.toJSON()).toMatchSnapshot();
  });

  test('passes CloudFormation validation', () => {
    const strict = app({ '@aws-cdk/core:failSynthOnValidationErrors': true, imageTag: TAG });
    addStageStacks(strict, WITH_WORKER);
    expect(() => strict.synth()).not.toThrow();
  });

  test('runs as an ECS service without a listener or target group', () => {
    t.resourceCountIs('AWS::ECS::Service', 2);
    t.resourceCountIs('AWS::ElasticLoadBalancingV2::LoadBalancer', 1);
    t.resourceCountIs('AWS::ElasticLoadBalancingV2::Listener', 1);
    t.resourceCountIs('AWS::ElasticLoadBalancingV2::TargetGroup', 1);
    // CDK renders the worker's as an empty list.
    expect(serviceOf('Worker').Properties.LoadBalancers ?? []).toEqual([]);
    expect(serviceOf('Worker').Properties.HealthCheckGracePeriodSeconds).toBeUndefined();
    expect(serviceOf('App').Properties.LoadBalancers).toEqual([
      expect.objectContaining({ ContainerName: 'app', ContainerPort: 8080 }),
    ]);
    // Nothing may reach the worker: the only ingress rules are the app's load balancer's and its tasks'.
    t.resourceCountIs('AWS::EC2::SecurityGroupIngress', 1);
    const workerGroup = serviceOf('Worker').Properties.NetworkConfiguration.AwsvpcConfiguration.SecurityGroups[0];
    expect(t.findResources('AWS::EC2::SecurityGroup')[workerGroup['Fn::GetAtt'][0]].Properties.SecurityGroupIngress).toBeUndefined();
  });

  test('rolls out like the load-balanced one: one task, 100-200%, rollback, public subnets', () => {
    for (const id of ['App', 'Worker']) {
      expect(serviceOf(id).Properties).toMatchObject({
        LaunchType: 'FARGATE',
        DesiredCount: 1,
        DeploymentConfiguration: {
          MinimumHealthyPercent: 100,
          MaximumPercent: 200,
          DeploymentCircuitBreaker: { Enable: true, Rollback: true },
        },
        NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'ENABLED' } },
      });
    }
    expect(serviceOf('Worker').Properties.NetworkConfiguration.AwsvpcConfiguration.Subnets).toEqual(
      serviceOf('App').Properties.NetworkConfiguration.AwsvpcConfiguration.Subnets,
    );
    t.resourceCountIs('AWS::EC2::NatGateway', 0);
  });

  test('is health-checked by ECS running its binary, and only it', () => {
    expect(container(t, 'worker').HealthCheck).toEqual({
      Command: ['CMD', '/usr/local/bin/worker', 'healthcheck'],
      Interval: 30,
      Timeout: 5,
      Retries: 3,
      StartPeriod: 10,
    });
    expect(container(t, 'app').HealthCheck).toBeUndefined();
  });

  test('has the same task definition shape: tag, init process, logs, port', () => {
    const worker = container(t, 'worker');
    expect(imageRef(worker.Image)).toBe(`/two/worker:${TAG}`);
    expect(worker.Environment).toEqual([{ Name: 'APP_IMAGE_TAG', Value: TAG }]);
    expect(worker.LinuxParameters).toMatchObject({ InitProcessEnabled: true });
    expect(worker.LogConfiguration).toMatchObject({ LogDriver: 'awslogs', Options: { 'awslogs-stream-prefix': 'worker' } });
    expect(worker.PortMappings).toEqual([{ ContainerPort: 8081, Protocol: 'tcp' }]);
    t.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '256',
      Memory: '512',
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
      ContainerDefinitions: [Match.objectLike({ Name: 'worker' })],
    });
  });

  test('outputs its cluster, service and health check path, but no URL', () => {
    const keys = Object.keys(outputs);
    expect(keys.filter((key) => key.startsWith('Worker')).sort()).toEqual([
      'WorkerEcsCluster',
      'WorkerEcsService',
      'WorkerHealthCheckPath',
    ]);
    expect(keys).toEqual(expect.arrayContaining(['AppUrl', 'AppEcsCluster', 'AppEcsService', 'AppHealthCheckPath']));
    expect(outputs.WorkerHealthCheckPath.Value).toBe('/healthz');
    expect(outputs.WorkerEcsCluster.Value).toEqual(outputs.AppEcsCluster.Value);
  });
});
