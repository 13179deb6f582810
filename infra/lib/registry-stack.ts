import { CfnOutput, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { aliasName, CiRole, ciRoleArn } from './ci';
import { ConfigError, ImageConfig, imageId, LifecyclePolicy, Scanning, SigningKeys } from './config';

/** How many repository filters one registry scanning rule may hold (the ECR API's limit). */
const MAX_SCANNING_FILTERS = 100;

export interface RegistryStackProps extends StackProps {
  readonly project: string;
  readonly stage: string;
  readonly images: readonly ImageConfig[];
  /** The lifecycle policy of every repository, as xtask resolved it from the settings. */
  readonly lifecyclePolicy: LifecyclePolicy;
  /**
   * The keys that sign the provenance of the stage's images; absent for a stage that runs
   * another's (promote-from), which then has no pull-request repositories either.
   */
  readonly signingKeys?: SigningKeys;
  /**
   * Whether the stage's CI stack exists (a GitHub repository is set): then only its roles
   * may sign (main key: the main push role; pr key: the pull-request role). Without one,
   * who signs is left to the account's IAM policies.
   */
  readonly ciSigners: boolean;
  /**
   * The registry's scan type, set with one rule that scans the project's repositories on
   * push (continuously, for enhanced); absent: the registry's configuration is left alone.
   */
  readonly scanning?: Scanning;
}

/**
 * One ECR repository per image, and for a stage that builds its images, one more per image
 * for pull requests (`pr/<repository>`) and the two KMS keys that sign provenance. Deployed
 * before any image is pushed, and never needs a tag.
 */
export class RegistryStack extends Stack {
  constructor(scope: Construct, id: string, props: RegistryStackProps) {
    super(scope, id, props);

    for (const image of props.images) {
      const repository = this.repository(`${imageId(image)}Repository`, image.repository, props.lifecyclePolicy);
      new CfnOutput(this, `${imageId(image)}RepositoryUri`, {
        description: `ECR repository of the ${image.name} image`,
        value: repository.repositoryUri,
      });
      if (props.signingKeys === undefined) continue;
      // A pull request's images live apart: what main and prod reuse is never writable by
      // a pull request's code. Same settings: the same tags, scans and retention apply.
      const pr = this.repository(`${imageId(image)}PrRepository`, image.prRepository, props.lifecyclePolicy);
      new CfnOutput(this, `${imageId(image)}PrRepositoryUri`, {
        description: `ECR repository of the ${image.name} image's pull-request pushes`,
        value: pr.repositoryUri,
      });
    }

    if (props.scanning !== undefined) this.registryScanning(props.scanning, props.images);

    if (props.signingKeys !== undefined) {
      const keys: [string, string, CiRole, string][] = [
        ['Main', props.signingKeys.main, 'main', 'images pushed from the main branch'],
        ['Pr', props.signingKeys.pr, 'pr', 'pull-request images'],
      ];
      for (const [name, key, signer, what] of keys) {
        const alias = aliasName(key);
        // A key named by id or ARN is someone else's: the stage only uses it.
        if (alias === undefined || !key.startsWith('alias/')) continue;
        const signerArn = props.ciSigners ? ciRoleArn(this, props.project, props.stage, signer) : undefined;
        const signingKey = this.signingKey(`${name}SigningKey`, alias, `${props.project} ${props.stage}: signs the provenance of ${what}`, signerArn);
        new CfnOutput(this, `${name}SigningKeyArn`, {
          description: `KMS key (${alias}) that signs the provenance of ${what}`,
          value: signingKey.keyArn,
        });
      }
    }
  }

  private repository(id: string, name: string, lifecyclePolicy: LifecyclePolicy): ecr.Repository {
    const repository = new ecr.Repository(this, id, {
      repositoryName: name,
      // Images are the release history: deleting the stack must not delete them.
      removalPolicy: RemovalPolicy.RETAIN,
      // A tag is a commit SHA: it names one image forever.
      imageTagMutability: ecr.TagMutability.IMMUTABLE,
      imageScanOnPush: true,
    });
    // Verbatim: the rules come from xtask, whose `gc` evaluates the same ones.
    (repository.node.defaultChild as ecr.CfnRepository).lifecyclePolicy = {
      lifecyclePolicyText: JSON.stringify(lifecyclePolicy),
    };
    return repository;
  }

  /**
   * The registry's scanning configuration (one per account and region: it replaces what the
   * registry had): `scanning`'s scan type and one rule over the project's repositories, on
   * push for basic, continuous (on push, then as new vulnerabilities are published) for
   * enhanced, where repositories no rule matches are not scanned at all. A filter without
   * `*` matches every repository whose name contains it, so each image's repository name
   * also covers its pull-request repository (`pr/<repository>`).
   */
  private registryScanning(scanning: Scanning, images: readonly ImageConfig[]) {
    const repositories = [...new Set(images.map((image) => image.repository))].sort();
    if (repositories.length > MAX_SCANNING_FILTERS) {
      throw new ConfigError(
        `scanning: a registry scanning rule holds at most ${MAX_SCANNING_FILTERS} repository filters, and there are ${repositories.length} repositories; unset scanning and configure the registry's scanning by hand`,
      );
    }
    new ecr.CfnRegistryScanningConfiguration(this, 'RegistryScanning', {
      scanType: scanning === 'enhanced' ? 'ENHANCED' : 'BASIC',
      rules: [
        {
          scanFrequency: scanning === 'enhanced' ? 'CONTINUOUS_SCAN' : 'SCAN_ON_PUSH',
          repositoryFilters: repositories.map((filter) => ({ filter, filterType: 'WILDCARD' })),
        },
      ],
    });
  }

  /**
   * An ECDSA P-256 signing key under `alias`. The account administers it (no lock-out: the
   * account's IAM policies grant its use, `kms:GetPublicKey` for verification included);
   * when `signerArn` is given, an explicit deny keeps `kms:Sign` from every other principal,
   * whatever their IAM policies or grants say.
   */
  private signingKey(id: string, alias: string, description: string, signerArn?: string): kms.Key {
    const policy = new iam.PolicyDocument({
      statements: [
        new iam.PolicyStatement({
          sid: 'AccountAdministers',
          principals: [new iam.AccountRootPrincipal()],
          actions: ['kms:*'],
          resources: ['*'],
        }),
      ],
    });
    if (signerArn !== undefined) {
      policy.addStatements(
        new iam.PolicyStatement({
          sid: 'OnlyTheSignerSigns',
          effect: iam.Effect.DENY,
          principals: [new iam.AnyPrincipal()],
          actions: ['kms:Sign'],
          resources: ['*'],
          conditions: { ArnNotEquals: { 'aws:PrincipalArn': signerArn } },
        }),
      );
    }
    return new kms.Key(this, id, {
      description,
      alias,
      keySpec: kms.KeySpec.ECC_NIST_P256,
      keyUsage: kms.KeyUsage.SIGN_VERIFY,
      policy,
      // Signatures must stay verifiable after the stack is gone: the key stays.
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}
