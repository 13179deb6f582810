#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { addStageStacks, configFromContext } from '../lib/app';
import { ConfigError } from '../lib/config';

// Settings come from the JSON file that `cargo xtask` resolves from
// [workspace.metadata.xtask] and passes as `-c xtaskConfig=<file>`.
try {
  const app = new App();
  addStageStacks(app, configFromContext(app));
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  // A settings or context mistake: its message alone, as the last line cdk prints before failing.
  console.error(`error: ${e.message}`);
  process.exit(1);
}
