#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { addStageStacks } from '../lib/app';
import { ConfigError, loadConfig } from '../lib/config';

// Settings come from [workspace.metadata.xtask] in the workspace's Cargo.toml.
try {
  addStageStacks(new App(), loadConfig());
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  // A settings or context mistake: its message alone, as the last line cdk prints before failing.
  console.error(`error: ${e.message}`);
  process.exit(1);
}
