// What the registry stack and the CI stack must agree on without referencing each other:
// the CI roles' names (a key policy names its signer by ARN, built from the name, so either
// stack can be deployed first) and how an IAM statement names a signing key.
import { ArnFormat, Stack } from 'aws-cdk-lib';

/**
 * The CI roles of a stage:
 * - `main`: pushes the main branch's images and signs them with the main key;
 * - `pr`: pushes pull-request images to the `pr/` repositories, signs them with the pr key;
 * - `plan`: reads, for `cargo xtask plan`;
 * - `release`: the job of a promote-to stage's GitHub environment (promote, check, deploy).
 */
export type CiRole = 'main' | 'pr' | 'plan' | 'release';

/** A CI role's name: deterministic, so key policies and the workflow's variables can name it. */
export function ciRoleName(project: string, stage: string, role: CiRole): string {
  return `${project}-${stage}-ci-${role}`;
}

/** A CI role's ARN in `stack`'s account. */
export function ciRoleArn(stack: Stack, project: string, stage: string, role: CiRole): string {
  return stack.formatArn({
    service: 'iam',
    region: '',
    resource: 'role',
    resourceName: ciRoleName(project, stage, role),
    arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
  });
}

/** GitHub Actions' OIDC issuer, and the audience aws-actions/configure-aws-credentials asks for. */
export const GITHUB_OIDC_HOST = 'token.actions.githubusercontent.com';
export const GITHUB_OIDC_AUDIENCE = 'sts.amazonaws.com';

/** The alias name (`alias/…`) of a key given as an alias or alias ARN; undefined for a key id or key ARN. */
export function aliasName(key: string): string | undefined {
  if (key.startsWith('alias/')) return key;
  const at = key.indexOf(':alias/');
  return key.startsWith('arn:') && at >= 0 ? key.slice(at + 1) : undefined;
}

/**
 * How an IAM statement in `stack` names the key `key` (id, key ARN, alias or alias ARN):
 * a key ARN as is; an alias through `kms:ResourceAliases` on the account's keys, which
 * matches the key that carries the alias whichever name the caller uses (the key's ARN
 * lives in the registry stack, and the stacks do not reference each other).
 */
export function keyStatement(stack: Stack, key: string): { resources: string[]; conditions?: Record<string, unknown> } {
  const alias = aliasName(key);
  if (alias !== undefined) {
    return {
      resources: [stack.formatArn({ service: 'kms', resource: 'key', resourceName: '*' })],
      conditions: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': alias } },
    };
  }
  if (key.startsWith('arn:')) return { resources: [key] };
  return { resources: [stack.formatArn({ service: 'kms', resource: 'key', resourceName: key })] };
}
