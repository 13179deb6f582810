import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { addStageStacks } from '../lib/app';
import { ProjectConfig, RolloutConfig } from '../lib/config';
import { TEST_TRAFFIC_HEADER } from '../lib/service-stack';
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

describe('deployment strategies', () => {
  /** `config` with its local stage rolled out as `rollout` says. */
  function withRollout(rollout: RolloutConfig, config: ProjectConfig = fixture): ProjectConfig {
    return { ...config, stages: { ...config.stages, local: { ...config.stages.local, rollout } } };
  }
  const BLUE_GREEN: RolloutConfig = { strategy: 'blue-green', bakeMinutes: 15, rollbackAlarms: [] };
  const CANARY: RolloutConfig = {
    strategy: 'canary',
    bakeMinutes: 10,
    canaryPercent: 12.5,
    canaryBakeMinutes: 20,
    rollbackAlarms: ['demo-p99-latency'],
  };
  const LINEAR: RolloutConfig = { strategy: 'linear', bakeMinutes: 5, linearPercent: 25, linearStepMinutes: 3, rollbackAlarms: [] };
  const SHIFTING = { 'blue-green': BLUE_GREEN, canary: CANARY, linear: LINEAR };
  const templates = Object.fromEntries(
    Object.entries(SHIFTING).map(([strategy, rollout]) => [
      strategy,
      Template.fromStack(stacks({ imageTag: TAG }, withRollout(rollout)).service),
    ]),
  );

  /** The web service's resource and the resources of `t` that the rolling template lacks. */
  function added(t: Template) {
    const rolling = template.toJSON().Resources;
    return Object.fromEntries(Object.entries(t.toJSON().Resources).filter(([id]) => !(id in rolling)));
  }
  function webService(t: Template) {
    const id = t.findOutputs('WebEcsService').WebEcsService.Value['Fn::GetAtt'][0];
    return t.findResources('AWS::ECS::Service')[id].Properties;
  }
  /** The logical id of the web service's resource of `type` whose id starts with `prefix`. */
  function idOf(t: Template, type: string, prefix: string): string {
    const ids = Object.keys(t.findResources(type)).filter((id) => id.startsWith(prefix));
    expect(ids).toHaveLength(1);
    return ids[0];
  }

  test.each(Object.keys(SHIFTING))('%s: matches the snapshot (the web service and what the strategy adds)', (strategy) => {
    const t = templates[strategy];
    expect({ service: webService(t), added: added(t) }).toMatchSnapshot();
  });

  test.each(Object.keys(SHIFTING))('%s: passes CloudFormation validation', (strategy) => {
    const strict = app({ '@aws-cdk/core:failSynthOnValidationErrors': true, imageTag: TAG });
    addStageStacks(strict, withRollout(SHIFTING[strategy as keyof typeof SHIFTING]));
    expect(() => strict.synth()).not.toThrow();
  });

  test.each(Object.keys(SHIFTING))('%s: synthesizes without warnings', (strategy) => {
    const stack = stacks({ imageTag: TAG }, withRollout(SHIFTING[strategy as keyof typeof SHIFTING])).service;
    expect(Annotations.fromStack(stack).findWarning('*', Match.anyValue())).toEqual([]);
  });

  test('a stage that says rolling gets the template of one that says nothing', () => {
    const t = Template.fromStack(stacks({ imageTag: TAG }, withRollout({ strategy: 'rolling', rollbackAlarms: [] })).service);
    expect(t.toJSON()).toEqual(template.toJSON());
  });

  test.each(Object.keys(SHIFTING))('%s: keeps the load balancer, listener and production target group of rolling', (strategy) => {
    const rolling = template.toJSON().Resources;
    for (const type of ['AWS::ElasticLoadBalancingV2::LoadBalancer', 'AWS::ElasticLoadBalancingV2::Listener', 'AWS::ECS::Service']) {
      expect(Object.keys(templates[strategy].findResources(type))).toEqual(Object.keys(template.findResources(type)));
    }
    // Only the web and api-gateway services' blue/green resources are new; nothing is removed.
    const resources = templates[strategy].toJSON().Resources;
    expect(Object.keys(rolling).filter((id) => !(id in resources))).toEqual([]);
  });

  test.each(Object.entries(SHIFTING))('%s: the service names its strategy and bake time, without the rolling circuit breaker', (strategy, rollout) => {
    const configuration = webService(templates[strategy]).DeploymentConfiguration;
    expect(configuration.Strategy).toBe({ 'blue-green': 'BLUE_GREEN', canary: 'CANARY', linear: 'LINEAR' }[strategy]);
    expect(configuration.BakeTimeInMinutes).toBe(rollout.bakeMinutes);
    expect(configuration.DeploymentCircuitBreaker).toBeUndefined();
    expect(configuration).toMatchObject({ MinimumHealthyPercent: 100, MaximumPercent: 200 });
  });

  test('canary and linear render their steps, and only their own', () => {
    const canary = webService(templates.canary).DeploymentConfiguration;
    expect(canary.CanaryConfiguration).toEqual({ CanaryPercent: 12.5, CanaryBakeTimeInMinutes: 20 });
    expect(canary.LinearConfiguration).toBeUndefined();
    const linear = webService(templates.linear).DeploymentConfiguration;
    expect(linear.LinearConfiguration).toEqual({ StepPercent: 25, StepBakeTimeInMinutes: 3 });
    expect(linear.CanaryConfiguration).toBeUndefined();
    const blueGreen = webService(templates['blue-green']).DeploymentConfiguration;
    expect([blueGreen.CanaryConfiguration, blueGreen.LinearConfiguration]).toEqual([undefined, undefined]);
  });

  test.each(Object.keys(SHIFTING))('%s: ECS shifts between two target groups through a production and a test rule', (strategy) => {
    const t = templates[strategy];
    const blue = idOf(t, 'AWS::ElasticLoadBalancingV2::TargetGroup', 'WebServiceLBPublicListener');
    const green = idOf(t, 'AWS::ElasticLoadBalancingV2::TargetGroup', 'WebAlternateTargetGroup');
    const production = idOf(t, 'AWS::ElasticLoadBalancingV2::ListenerRule', 'WebProductionListenerRule');
    const testRule = idOf(t, 'AWS::ElasticLoadBalancingV2::ListenerRule', 'WebTestListenerRule');
    const listener = idOf(t, 'AWS::ElasticLoadBalancingV2::Listener', 'WebServiceLBPublicListener');
    const role = idOf(t, 'AWS::IAM::Role', 'WebTrafficShiftRole');

    const [entry] = webService(t).LoadBalancers;
    expect(entry).toEqual({
      ContainerName: 'web',
      ContainerPort: 8080,
      TargetGroupArn: { Ref: blue },
      AdvancedConfiguration: {
        AlternateTargetGroupArn: { Ref: green },
        ProductionListenerRule: { Ref: production },
        TestListenerRule: { Ref: testRule },
        RoleArn: { 'Fn::GetAtt': [role, 'Arn'] },
      },
    });
    // ECS accepts the alternate group once a rule forwards to it: the service waits for the rules.
    const serviceId = t.findOutputs('WebEcsService').WebEcsService.Value['Fn::GetAtt'][0];
    expect(t.findResources('AWS::ECS::Service')[serviceId].DependsOn).toEqual(expect.arrayContaining([production, testRule]));
    // Both rules start with all traffic on the production group: ECS moves the weights.
    const forward = {
      Type: 'forward',
      ForwardConfig: { TargetGroups: [{ TargetGroupArn: { Ref: blue }, Weight: 100 }, { TargetGroupArn: { Ref: green }, Weight: 0 }] },
    };
    const rules = t.findResources('AWS::ElasticLoadBalancingV2::ListenerRule');
    expect(rules[production].Properties).toEqual({
      ListenerArn: { Ref: listener },
      Priority: 2,
      Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: ['/*'] } }],
      Actions: [forward],
    });
    expect(rules[testRule].Properties).toEqual({
      ListenerArn: { Ref: listener },
      Priority: 1,
      Conditions: [{ Field: 'http-header', HttpHeaderConfig: { HttpHeaderName: TEST_TRAFFIC_HEADER, Values: ['1'] } }],
      Actions: [forward],
    });
    // The alternate group is checked and drained as the production one.
    const groups = t.findResources('AWS::ElasticLoadBalancingV2::TargetGroup');
    expect(groups[green].Properties).toEqual(groups[blue].Properties);
    // The role ECS assumes to move the weights: AWS's policy for load balancers, nothing more.
    const { Properties: roleProperties } = t.findResources('AWS::IAM::Role')[role];
    expect(roleProperties.Description).toBe("Lets ECS shift the web service's traffic between its target groups");
    expect(roleProperties.AssumeRolePolicyDocument.Statement).toEqual([
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'ecs.amazonaws.com' } },
    ]);
    expect(plain(roleProperties.ManagedPolicyArns)).toEqual([
      'arn:aws:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers',
    ]);
    expect(t.findResources('AWS::IAM::Policy')).toEqual(template.findResources('AWS::IAM::Policy'));
  });

  test('rollback alarms roll any strategy back, the rolling one too', () => {
    const alarms = { AlarmNames: ['demo-p99-latency'], Enable: true, Rollback: true };
    expect(webService(templates.canary).DeploymentConfiguration.Alarms).toEqual(alarms);
    const rolling = Template.fromStack(
      stacks({ imageTag: TAG }, withRollout({ strategy: 'rolling', rollbackAlarms: ['demo-p99-latency'] })).service,
    );
    expect(webService(rolling).DeploymentConfiguration).toMatchObject({
      Alarms: alarms,
      DeploymentCircuitBreaker: { Enable: true, Rollback: true },
    });
    expect(webService(rolling).DeploymentConfiguration.Strategy).toBeUndefined();
  });

  test('a service without a load balancer rolls in a canary stage, says so, and keeps the alarms', () => {
    const stack = stacks({ imageTag: TAG }, withRollout(CANARY, WITH_WORKER)).service;
    const t = Template.fromStack(stack);
    const services = t.findResources('AWS::ECS::Service');
    const worker = services[t.findOutputs('WorkerEcsService').WorkerEcsService.Value['Fn::GetAtt'][0]].Properties;
    expect(worker.DeploymentConfiguration).toEqual({
      MinimumHealthyPercent: 100,
      MaximumPercent: 200,
      DeploymentCircuitBreaker: { Enable: true, Rollback: true },
      Alarms: { AlarmNames: ['demo-p99-latency'], Enable: true, Rollback: true },
    });
    const app = services[t.findOutputs('AppEcsService').AppEcsService.Value['Fn::GetAtt'][0]].Properties;
    expect(app.DeploymentConfiguration.Strategy).toBe('CANARY');
    Annotations.fromStack(stack).hasInfo(
      '/two-local-service/WorkerService',
      'worker has no load balancer, so no traffic to shift: it rolls, while the stage\'s canary strategy applies to the load-balanced services',
    );
    t.resourceCountIs('AWS::ElasticLoadBalancingV2::TargetGroup', 2);
  });

  test('reads the stage\'s rollout as xtask resolved it (the fixture\'s dev stage: canary, 20%)', () => {
    const dev = Template.fromStack(stacks({ stage: 'dev', imageTag: TAG }).service);
    expect(webService(dev).DeploymentConfiguration).toMatchObject({
      Strategy: 'CANARY',
      BakeTimeInMinutes: 10,
      CanaryConfiguration: { CanaryPercent: 20, CanaryBakeTimeInMinutes: 10 },
      Alarms: { AlarmNames: ['demo-dev-5xx'], Enable: true, Rollback: true },
    });
  });
});
