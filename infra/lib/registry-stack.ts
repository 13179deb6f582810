import { CfnOutput, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import { Construct } from 'constructs';
import { ImageConfig, imageId, LifecyclePolicy } from './config';

export interface RegistryStackProps extends StackProps {
  readonly images: readonly ImageConfig[];
  /** The lifecycle policy of every repository, as xtask resolved it from the settings. */
  readonly lifecyclePolicy: LifecyclePolicy;
}

/** One ECR repository per image. Deployed before any image is pushed, and never needs a tag. */
export class RegistryStack extends Stack {
  constructor(scope: Construct, id: string, props: RegistryStackProps) {
    super(scope, id, props);

    for (const image of props.images) {
      const repository = new ecr.Repository(this, `${imageId(image)}Repository`, {
        repositoryName: image.repository,
        // Images are the release history: deleting the stack must not delete them.
        removalPolicy: RemovalPolicy.RETAIN,
        // A tag is a commit SHA: it names one image forever.
        imageTagMutability: ecr.TagMutability.IMMUTABLE,
        imageScanOnPush: true,
      });
      // Verbatim: the rules come from xtask, whose `gc` evaluates the same ones.
      (repository.node.defaultChild as ecr.CfnRepository).lifecyclePolicy = {
        lifecyclePolicyText: JSON.stringify(props.lifecyclePolicy),
      };

      new CfnOutput(this, `${imageId(image)}RepositoryUri`, {
        description: `ECR repository of the ${image.name} image`,
        value: repository.repositoryUri,
      });
    }
  }
}
