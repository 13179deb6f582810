import { Annotations, CfnOutput, Duration, Fn, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as ecsPatterns from 'aws-cdk-lib/aws-ecs-patterns';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ConfigError, ImageConfig, imageId, Platform, ROLLING, RolloutConfig, Strategy } from './config';

/** A full commit SHA, optionally marked as built from a dirty work tree. */
const IMAGE_TAG = /^[0-9a-f]{40}(-dirty-[0-9a-f]{8})?$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
/**
 * Where the load balancer (and the local stack) asks whether a task is up. An image
 * without a load balancer serves it too, and its binary's `healthcheck` command asks it.
 */
const HEALTH_CHECK_PATH = '/healthz';

/**
 * How every service runs, with or without a load balancer: one task; start the new task
 * before stopping the old one. Public IPs, since the VPC has no NAT: tasks pull from ECR
 * through the internet gateway.
 */
const SERVICE_RUN = {
  desiredCount: 1,
  minHealthyPercent: 100,
  maxHealthyPercent: 200,
  assignPublicIp: true,
} as const;

/**
 * A rolling update rolls back a deployment that never gets healthy (the circuit breaker, which
 * ECS runs for rolling updates only:
 * https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ecs-service-deploymentcircuitbreaker.html).
 */
const ROLLING_ROLLBACK = { circuitBreaker: { rollback: true } } as const;

/**
 * ECS's name of each strategy that shifts a load balancer's traffic (`DeploymentConfiguration.Strategy`:
 * https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ecs-service-deploymentconfiguration.html).
 */
const TRAFFIC_SHIFTING: Record<Exclude<Strategy, 'rolling'>, ecs.DeploymentStrategy> = {
  'blue-green': ecs.DeploymentStrategy.BLUE_GREEN,
  canary: ecs.DeploymentStrategy.CANARY,
  linear: ecs.DeploymentStrategy.LINEAR,
};

/**
 * The header that sends a request to the new revision while ECS tests it (the test listener
 * rule), before any production traffic shifts there: `curl -H 'X-Test-Traffic: 1' <url>`.
 */
export const TEST_TRAFFIC_HEADER = 'X-Test-Traffic';

const CPU_ARCHITECTURE: Record<Platform, ecs.CpuArchitecture> = {
  'linux/amd64': ecs.CpuArchitecture.X86_64,
  'linux/arm64': ecs.CpuArchitecture.ARM64,
};

export interface ServiceStackProps extends StackProps {
  readonly stage: string;
  readonly images: readonly ImageConfig[];
  /**
   * The tag every image is deployed as: the commit SHA (`-c imageTag=...`).
   * Without it the stack synthesizes with an error, so it cannot be deployed,
   * while the rest of the app (`cdk ls`, the registry stack, bootstrap) still works.
   */
  readonly imageTag?: string;
  /** `sha256:...` (one image) or `name=sha256:...,...`: pins each image by digest (`-c imageDigest=...`). */
  readonly imageDigest?: string;
  /**
   * Where the images are (`-c imageChannel=...`): `main` (the default), each image's
   * repository; `pr`, its pull-request repository (`prRepository`), for a commit whose
   * images only a pull-request push made (a branch, a dirty work tree on the local stage).
   */
  readonly imageChannel?: string;
  /** How ECS rolls the services out (the stage's `strategy` settings); rolling when absent. */
  readonly rollout?: RolloutConfig;
}

/** The lines of history whose images a service can run, and where each keeps them. */
const CHANNELS = ['main', 'pr'] as const;
export type ImageChannel = (typeof CHANNELS)[number];

/**
 * One Fargate service per image, in a VPC without NAT gateways: behind a public load
 * balancer, or without one (`loadBalanced: false`, a worker) and health-checked by ECS.
 */
export class ServiceStack extends Stack {
  constructor(scope: Construct, id: string, props: ServiceStackProps) {
    super(scope, id, props);

    const { imageTag } = props;
    if (imageTag === undefined) {
      Annotations.of(this).addError(
        `${id} needs the image tag to deploy; deploy it with \`cargo xtask deploy --stage ${props.stage}\` ` +
          '(which passes -c imageTag=<commit sha>)',
      );
      return;
    }
    validateImageTag(imageTag);
    const digests = parseImageDigests(props.imageDigest, props.images);
    const channel = parseImageChannel(props.imageChannel);

    // Public subnets only: tasks get public IPs and pull from ECR through the
    // internet gateway, so the stack pays for no NAT gateway.
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'Public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 }],
      // Nothing uses the default security group (every ENI here has its own), and
      // emptying it takes a Lambda-backed custom resource: keep the stack plain CloudFormation.
      restrictDefaultSecurityGroup: false,
    });
    const cluster = new ecs.Cluster(this, 'Cluster', { vpc });
    const rollout = props.rollout ?? ROLLING;

    for (const image of props.images) {
      const name = imageId(image);
      const taskDefinition = this.taskDefinition(image, channel, digests?.[image.name] ?? imageTag, imageTag);
      const service = image.loadBalanced
        ? this.loadBalancedService(image, cluster, taskDefinition, rollout)
        : this.backgroundService(image, cluster, taskDefinition, rollout);

      // What `cargo xtask deploy` reads to verify the rollout (ECS) and the health check
      // the local stack runs the container against.
      new CfnOutput(this, `${name}EcsCluster`, {
        description: `ECS cluster of the ${image.name} service`,
        value: cluster.clusterName,
      });
      new CfnOutput(this, `${name}EcsService`, {
        description: `ECS service of the ${image.name} image`,
        value: service.serviceName,
      });
      new CfnOutput(this, `${name}HealthCheckPath`, {
        description: `Health check path of the ${image.name} service`,
        value: HEALTH_CHECK_PATH,
      });
    }
  }

  /**
   * The task definition of an image, the same for either kind of service: its container
   * runs `imageRef` (the tag or a digest) from the channel's repository and is told the
   * deployed tag. An image without a load balancer gets a container health check instead
   * of the load balancer's.
   */
  private taskDefinition(
    image: ImageConfig,
    channel: ImageChannel,
    imageRef: string,
    imageTag: string,
  ): ecs.FargateTaskDefinition {
    const name = imageId(image);
    const repositoryName = channel === 'pr' ? image.prRepository : image.repository;
    const repository = ecr.Repository.fromRepositoryName(this, `${name}Repository`, repositoryName);

    const taskDefinition = new ecs.FargateTaskDefinition(this, `${name}Task`, {
      cpu: 256,
      memoryLimitMiB: 512,
      runtimePlatform: {
        cpuArchitecture: CPU_ARCHITECTURE[image.platform],
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    taskDefinition.addContainer(image.name, {
      image: ecs.ContainerImage.fromEcrRepository(repository, imageRef),
      portMappings: [{ containerPort: image.port }],
      // The running service reports the commit it was deployed as.
      environment: { APP_IMAGE_TAG: imageTag },
      // An init process reaps zombies and forwards SIGTERM to the app.
      linuxParameters: new ecs.LinuxParameters(this, `${name}LinuxParameters`, { initProcessEnabled: true }),
      logging: ecs.LogDrivers.awsLogs({
        streamPrefix: image.name,
        logGroup: new logs.LogGroup(this, `${name}Logs`, {
          retention: logs.RetentionDays.ONE_MONTH,
          removalPolicy: RemovalPolicy.DESTROY,
        }),
      }),
      healthCheck: image.loadBalanced ? undefined : containerHealthCheck(image),
    });
    return taskDefinition;
  }

  /**
   * A service behind a public load balancer that health-checks it, with its URL as an output,
   * rolled out as the stage's rollout says. Whatever the strategy, the load balancer, its
   * listener and the production target group stay the same resources, so a stage that changes
   * strategy keeps its URL.
   */
  private loadBalancedService(
    image: ImageConfig,
    cluster: ecs.ICluster,
    taskDefinition: ecs.FargateTaskDefinition,
    rollout: RolloutConfig,
  ): ecs.FargateService {
    const name = imageId(image);
    const pattern = new ecsPatterns.ApplicationLoadBalancedFargateService(this, `${name}Service`, {
      ...SERVICE_RUN,
      ...(rollout.strategy === 'rolling' ? ROLLING_ROLLBACK : {}),
      cluster,
      taskDefinition,
      taskSubnets: { subnetType: ec2.SubnetType.PUBLIC },
    });
    const { service, targetGroup, loadBalancer } = pattern;
    configureTargetGroup(targetGroup);
    if (rollout.strategy !== 'rolling') this.shiftTraffic(image, pattern, rollout, rollout.strategy);
    if (rollout.rollbackAlarms.length > 0) {
      service.enableDeploymentAlarms([...rollout.rollbackAlarms], { behavior: ecs.AlarmBehavior.ROLLBACK_ON_ALARM });
    }

    new CfnOutput(this, `${name}Url`, {
      description: `URL of the ${image.name} service`,
      value: `http://${loadBalancer.loadBalancerDnsName}`,
    });
    return service;
  }

  /**
   * ECS's built-in blue/green, canary or linear deployment of a load-balanced service
   * (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/alb-resources-for-blue-green.html):
   * an alternate target group the new revision registers in; a production listener rule
   * that forwards to both target groups, whose weights ECS shifts; a test listener rule that
   * sends requests carrying the test header to the new revision before production traffic
   * shifts; and the role ECS assumes to change the rules (AWS's managed
   * AmazonECSInfrastructureRolePolicyForLoadBalancers). The service's load balancer entry
   * names them (`AdvancedConfiguration`:
   * https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ecs-service-advancedconfiguration.html),
   * and its deployment configuration the strategy, bake time and steps.
   */
  private shiftTraffic(
    image: ImageConfig,
    pattern: ecsPatterns.ApplicationLoadBalancedFargateService,
    rollout: RolloutConfig,
    strategy: Exclude<Strategy, 'rolling'>,
  ): void {
    const name = imageId(image);
    const { service, listener, targetGroup } = pattern;
    const alternateTargetGroup = new elbv2.ApplicationTargetGroup(this, `${name}AlternateTargetGroup`, {
      vpc: pattern.cluster.vpc,
      port: 80,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targetType: elbv2.TargetType.IP,
    });
    configureTargetGroup(alternateTargetGroup);
    // Both rules start with all traffic on the production target group; ECS moves the weights.
    const bothGroups = () =>
      elbv2.ListenerAction.weightedForward([
        { targetGroup, weight: 100 },
        { targetGroup: alternateTargetGroup, weight: 0 },
      ]);
    const testRule = new elbv2.ApplicationListenerRule(this, `${name}TestListenerRule`, {
      listener,
      priority: 1,
      conditions: [elbv2.ListenerCondition.httpHeader(TEST_TRAFFIC_HEADER, ['1'])],
      action: bothGroups(),
    });
    const productionRule = new elbv2.ApplicationListenerRule(this, `${name}ProductionListenerRule`, {
      listener,
      priority: 2,
      conditions: [elbv2.ListenerCondition.pathPatterns(['/*'])],
      action: bothGroups(),
    });
    const role = new iam.Role(this, `${name}TrafficShiftRole`, {
      description: `Lets ECS shift the ${image.name} service's traffic between its target groups`,
      assumedBy: new iam.ServicePrincipal('ecs.amazonaws.com'),
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonECSInfrastructureRolePolicyForLoadBalancers')],
    });
    const advancedConfiguration = new ecs.AlternateTarget(`${name}AlternateTarget`, {
      role,
      alternateTargetGroup,
      productionListener: ecs.ListenerRuleConfiguration.applicationListenerRule(productionRule),
      testListener: ecs.ListenerRuleConfiguration.applicationListenerRule(testRule),
    }).bind(service);
    // The pattern attached the service to the production target group: that entry gains the rest.
    service.loadBalancers = service.loadBalancers.map((entry) => ({ ...entry, advancedConfiguration }));
    // ECS takes only target groups a load balancer forwards to: the rules come first.
    service.node.addDependency(productionRule, testRule);

    Annotations.of(service).acknowledgeWarning(
      '@aws-cdk/aws-ecs:shouldUseCircuitBreaker',
      'ECS runs the circuit breaker for rolling updates only; a failed blue/green, canary or linear deployment rolls back itself',
    );
    const resource = service.node.defaultChild as ecs.CfnService;
    const configuration = resource.deploymentConfiguration as ecs.CfnService.DeploymentConfigurationProperty;
    resource.deploymentConfiguration = {
      ...configuration,
      strategy: TRAFFIC_SHIFTING[strategy],
      bakeTimeInMinutes: rollout.bakeMinutes,
      canaryConfiguration:
        strategy === 'canary'
          ? { canaryPercent: rollout.canaryPercent, canaryBakeTimeInMinutes: rollout.canaryBakeMinutes }
          : undefined,
      linearConfiguration:
        strategy === 'linear'
          ? { stepPercent: rollout.linearPercent, stepBakeTimeInMinutes: rollout.linearStepMinutes }
          : undefined,
    };
  }

  /**
   * A service that nothing reaches (no load balancer, no ingress), kept healthy by its container
   * health check. It has no traffic to shift, so it rolls whatever the stage's strategy (with
   * the circuit breaker), and says so at synth; the stage's rollback alarms apply to it too.
   */
  private backgroundService(
    image: ImageConfig,
    cluster: ecs.ICluster,
    taskDefinition: ecs.FargateTaskDefinition,
    rollout: RolloutConfig,
  ): ecs.FargateService {
    const service = new ecs.FargateService(this, `${imageId(image)}Service`, {
      ...SERVICE_RUN,
      ...ROLLING_ROLLBACK,
      cluster,
      taskDefinition,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      deploymentAlarms:
        rollout.rollbackAlarms.length > 0
          ? { alarmNames: [...rollout.rollbackAlarms], behavior: ecs.AlarmBehavior.ROLLBACK_ON_ALARM }
          : undefined,
    });
    if (rollout.strategy !== 'rolling') {
      Annotations.of(service).addInfo(
        `${image.name} has no load balancer, so no traffic to shift: it rolls, while the stage's ` +
          `${rollout.strategy} strategy applies to the load-balanced services`,
      );
    }
    return service;
  }

  // The first two zones of the region, resolved by CloudFormation: synth needs no
  // AZ lookup (no credentials, no cdk.context.json) even with a concrete env.
  get availabilityZones(): string[] {
    return [0, 1].map((i) => Fn.select(i, Fn.getAzs()));
  }
}

/** A target group of a load-balanced service: health-checked on /healthz, quick to drain. */
function configureTargetGroup(targetGroup: elbv2.ApplicationTargetGroup): void {
  targetGroup.configureHealthCheck({ path: HEALTH_CHECK_PATH, healthyHttpCodes: '200' });
  targetGroup.setAttribute('deregistration_delay.timeout_seconds', '30');
}

/**
 * The health check of a container without a load balancer: the image's binary (installed
 * as /usr/local/bin/<image name>) asks its own server for /healthz.
 */
function containerHealthCheck(image: ImageConfig): ecs.HealthCheck {
  return {
    command: ['CMD', `/usr/local/bin/${image.name}`, 'healthcheck'],
    interval: Duration.seconds(30),
    timeout: Duration.seconds(5),
    retries: 3,
    startPeriod: Duration.seconds(10),
  };
}

/** Throws unless `tag` is a full lowercase commit SHA, optionally `-dirty-<8 hex>`. */
export function validateImageTag(tag: string): void {
  if (!IMAGE_TAG.test(tag)) {
    throw new ConfigError(
      `imageTag \`${tag}\` is not a commit: expected 40 lowercase hex digits, optionally followed by -dirty-<8 hex>`,
    );
  }
}

/** `-c imageChannel=...`: `main` when absent; anything but `main` or `pr` is a mistake. */
export function parseImageChannel(value: string | undefined): ImageChannel {
  if (value === undefined) return 'main';
  const channel = CHANNELS.find((c) => c === value);
  if (channel === undefined) {
    throw new ConfigError(`imageChannel \`${value}\` is invalid: expected ${CHANNELS.join(' or ')}`);
  }
  return channel;
}

/**
 * Parses `-c imageDigest=...` into a digest per image name: either one `sha256:<hex>`
 * (only when exactly one image is configured) or `name=sha256:<hex>` pairs, one per image,
 * separated by commas. Returns undefined when no digest is given.
 */
export function parseImageDigests(
  value: string | undefined,
  images: readonly ImageConfig[],
): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  const names = images.map((image) => image.name);
  const usage = `expected ${names.length === 1 ? 'sha256:<64 hex> or ' : ''}comma-separated <image>=sha256:<64 hex> pairs for ${names.join(', ')}`;

  if (!value.includes('=')) {
    if (!DIGEST.test(value) || names.length !== 1) {
      throw new ConfigError(`imageDigest \`${value}\` is invalid: ${usage}`);
    }
    return { [names[0]]: value };
  }

  const digests: Record<string, string> = {};
  for (const pair of value.split(',')) {
    const [name, digest, ...rest] = pair.split('=');
    if (rest.length > 0 || !names.includes(name) || !DIGEST.test(digest) || Object.hasOwn(digests, name)) {
      throw new ConfigError(`imageDigest \`${value}\` is invalid at \`${pair}\`: ${usage}`);
    }
    digests[name] = digest;
  }
  const missing = names.filter((name) => !Object.hasOwn(digests, name));
  if (missing.length > 0) {
    throw new ConfigError(`imageDigest \`${value}\` has no digest for ${missing.join(', ')}: ${usage}`);
  }
  return digests;
}
