import { CfnOutput, Duration, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import { Construct } from 'constructs';
import { ImageConfig, imageId } from './config';

export interface RegistryStackProps extends StackProps {
  readonly images: readonly ImageConfig[];
  /** How many images each repository keeps; older ones expire (rollback reaches back this far). */
  readonly keepImages: number;
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
        lifecycleRules: [
          {
            rulePriority: 1,
            description: 'Expire untagged images after 7 days',
            tagStatus: ecr.TagStatus.UNTAGGED,
            maxImageAge: Duration.days(7),
          },
          {
            // ECR evaluates rules by priority; a TagStatus.ANY rule must come last.
            rulePriority: 2,
            description: `Keep the last ${props.keepImages} images`,
            tagStatus: ecr.TagStatus.ANY,
            maxImageCount: props.keepImages,
          },
        ],
      });

      new CfnOutput(this, `${imageId(image)}RepositoryUri`, {
        description: `ECR repository of the ${image.name} image`,
        value: repository.repositoryUri,
      });
    }
  }
}
