import { CfnOutput, Stack, StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { CiRole, ciRoleName, GITHUB_OIDC_AUDIENCE, GITHUB_OIDC_HOST, keyStatement } from './ci';
import { ImageConfig, SigningKeys, StageConfig } from './config';

export interface CiStackProps extends StackProps {
  readonly project: string;
  readonly stage: StageConfig;
  /** `owner/name`: the only repository whose workflow tokens the roles trust. */
  readonly githubRepository: string;
  /** The only branch the main push role trusts. */
  readonly mainBranch: string;
  readonly images: readonly ImageConfig[];
  /** The stages that promote from this one: their GitHub environments read its images. */
  readonly promotedTo: readonly string[];
}

/**
 * Reads images and their repositories: a pull (build cache, retag source, promote source),
 * referrers (provenance: BatchGetImage), and what `check` reads (scan findings, settings).
 */
const ECR_PULL = [
  'ecr:BatchCheckLayerAvailability',
  'ecr:BatchGetImage',
  'ecr:DescribeImageScanFindings',
  'ecr:DescribeImages',
  'ecr:DescribeRepositories',
  'ecr:GetDownloadUrlForLayer',
  'ecr:GetLifecyclePolicy',
  'ecr:ListImages',
];
/** Writes an image (layers, manifests, tags). Tags are immutable: a push adds, never overwrites. */
const ECR_PUSH = [
  ...ECR_PULL,
  'ecr:CompleteLayerUpload',
  'ecr:InitiateLayerUpload',
  'ecr:PutImage',
  'ecr:UploadLayerPart',
];
/** Removes tags and images: push prunes main's tags, deploy settles its deployed- tags. */
const ECR_DELETE = ['ecr:BatchDeleteImage'];
/** The ECR actions on no resource (the Service Authorization Reference lists none for them). */
const REGISTRY_WIDE = ['ecr:GetAuthorizationToken', 'ecr:GetRegistryScanningConfiguration'];
/** Reads a signing key's public half, to verify provenance. */
const KMS_VERIFY = ['kms:DescribeKey', 'kms:GetPublicKey'];

/**
 * What a stage's GitHub workflow may do in its account, as code: GitHub's OIDC provider and
 * one role per kind of job, each assumable only by the repository's tokens from the right
 * place (the main branch, a pull request, a GitHub environment), each with only what its
 * job needs. Roles have fixed names (`<project>-<stage>-ci-<kind>`): the registry stack's
 * key policies name the signers by them.
 */
export class CiStack extends Stack {
  private readonly provider: iam.IOidcProvider;
  private readonly props: CiStackProps;

  constructor(scope: Construct, id: string, props: CiStackProps) {
    super(scope, id, props);
    this.props = props;
    this.provider = new iam.OidcProviderNative(this, 'GithubOidc', {
      url: `https://${GITHUB_OIDC_HOST}`,
      clientIds: [GITHUB_OIDC_AUDIENCE],
    });

    const repo = `repo:${props.githubRepository}`;
    const mainRef = `${repo}:ref:refs/heads/${props.mainBranch}`;
    const pullRequest = `${repo}:pull_request`;
    const main = props.images.map((i) => this.repositoryArn(i.repository));
    const pr = props.images.map((i) => this.repositoryArn(i.prRepository));
    const keys = props.stage.signingKeys;

    if (keys !== undefined) {
      // The main branch's pushes: main's repositories only; never a pull request's, so
      // nothing a pull request wrote can be retagged or read as build cache by main.
      this.role('main', [mainRef], 'pushes and signs the main branch\'s images', [
        this.ecr(ECR_PUSH, main),
        this.ecr(ECR_DELETE, main),
        ...this.kms(['kms:Sign', ...KMS_VERIFY], keys.main),
      ]);
      // A pull request runs its own code: it writes only the pr/ repositories, reads
      // main's (build cache) and signs with the pull-request key, which no stage trusts.
      this.role('pr', [pullRequest], 'pushes and signs pull-request images to the pr/ repositories', [
        this.ecr(ECR_PUSH, pr),
        this.ecr(ECR_PULL, main),
        ...this.kms(['kms:Sign', ...KMS_VERIFY], keys.pr),
        ...this.kms(KMS_VERIFY, keys.main),
      ]);
      this.role('plan', [pullRequest, mainRef], 'reads images for cargo xtask plan', [
        this.ecr(ECR_PULL, [...main, ...pr]),
        ...this.kms(KMS_VERIFY, keys.main),
        ...this.kms(KMS_VERIFY, keys.pr),
      ]);
      // The source side of a promotion: the promote-to stage's environment reads main's
      // images and verifies their provenance here, and writes nothing.
      if (props.promotedTo.length > 0) {
        const environments = props.promotedTo.map((s) => `${repo}:environment:${s}`);
        this.role('release', environments, `reads images for promotion to ${props.promotedTo.join(', ')}`, [
          this.ecr(ECR_PULL, main),
          ...this.kms(KMS_VERIFY, keys.main),
        ]);
      }
    } else {
      // A promote-to stage: only its own GitHub environment (whose reviewers approve the
      // job) promotes into it, checks and deploys it.
      const environment = `${repo}:environment:${props.stage.name}`;
      this.role('release', [environment], 'promotes images into the stage and deploys it', [
        this.ecr([...ECR_PUSH, ...ECR_DELETE], main),
        ...this.deploy(),
      ]);
      this.role('plan', [environment], 'reads images and stacks for cargo xtask plan', [this.ecr(ECR_PULL, main), ...this.deploy(true)]);
    }
  }

  /** A role that only the repository's workflow tokens with one of these `sub` claims assume. */
  private role(kind: CiRole, subjects: string[], what: string, statements: iam.PolicyStatement[]): iam.Role {
    const { project, stage } = this.props;
    const name = ciRoleName(project, stage.name, kind);
    const role = new iam.Role(this, `${kind.charAt(0).toUpperCase()}${kind.slice(1)}Role`, {
      roleName: name,
      description: `${project} ${stage.name} CI: ${what}`,
      assumedBy: new iam.WebIdentityPrincipal(this.provider.oidcProviderArn, {
        StringEquals: {
          [`${GITHUB_OIDC_HOST}:aud`]: GITHUB_OIDC_AUDIENCE,
          [`${GITHUB_OIDC_HOST}:sub`]: subjects.length === 1 ? subjects[0] : subjects,
        },
      }),
      inlinePolicies: {
        // Two ECR actions have no resource to name and are granted on `*` by necessity:
        // logging in (GetAuthorizationToken) and reading the registry's scanning
        // configuration (which repositories ECR scans on push, and how: `check`). Every
        // other ECR action names the repositories.
        Ci: new iam.PolicyDocument({
          statements: [new iam.PolicyStatement({ actions: REGISTRY_WIDE, resources: ['*'] }), ...statements],
        }),
      },
    });
    new CfnOutput(this, `${role.node.id}Arn`, { description: `Role: ${what}`, value: role.roleArn });
    return role;
  }

  private ecr(actions: string[], repositories: string[]): iam.PolicyStatement {
    return new iam.PolicyStatement({ actions, resources: repositories });
  }

  private kms(actions: string[], key: string): iam.PolicyStatement[] {
    return [new iam.PolicyStatement({ actions, ...keyStatement(this, key) })];
  }

  /**
   * `cdk deploy` (or `cdk diff` when `readOnly`) through the account's bootstrap roles,
   * and the reads that deploy's verification and `check` make.
   */
  private deploy(readOnly = false): iam.PolicyStatement[] {
    const bootstrapRole = (kind: string) =>
      this.formatArn({ service: 'iam', region: '', resource: 'role', resourceName: `cdk-*-${kind}-role-${this.account}-${this.region}` });
    const roles = readOnly ? ['lookup'] : ['deploy', 'file-publishing', 'image-publishing', 'lookup'];
    const stacks = this.formatArn({ service: 'cloudformation', resource: 'stack', resourceName: `${this.props.project}-${this.props.stage.name}-*/*` });
    return [
      new iam.PolicyStatement({ actions: ['sts:AssumeRole', 'sts:TagSession'], resources: roles.map(bootstrapRole) }),
      new iam.PolicyStatement({
        actions: ['cloudformation:DescribeStackEvents', 'cloudformation:DescribeStacks', 'cloudformation:GetTemplate'],
        resources: [stacks],
      }),
      // ECS reads by task, task definition, service deployment and revision ids known only at
      // run time, and DescribeTaskDefinition has no resource-level permissions: read-only, on
      // `*`. Deploy follows the service deployment ECS starts, and proves the digest its
      // revision runs.
      new iam.PolicyStatement({
        actions: [
          'ecs:DescribeServiceDeployments',
          'ecs:DescribeServiceRevisions',
          'ecs:DescribeServices',
          'ecs:DescribeTaskDefinition',
          'ecs:DescribeTasks',
          'ecs:ListServiceDeployments',
          'ecs:ListTasks',
        ],
        resources: ['*'],
      }),
      // A rollback during a deployment's bake asks ECS to roll that deployment back: the
      // service deployments of this account and region (their clusters' names are CDK's).
      ...(readOnly
        ? []
        : [
            new iam.PolicyStatement({
              actions: ['ecs:StopServiceDeployment'],
              resources: [this.formatArn({ service: 'ecs', resource: 'service-deployment', resourceName: '*' })],
            }),
          ]),
    ];
  }

  private repositoryArn(name: string): string {
    return this.formatArn({ service: 'ecr', resource: 'repository', resourceName: name });
  }
}
