#!/usr/bin/env node
// Synthesizes every stack of every stage of each configuration file given, in one process,
// into OUT/<file name>/<stage>/, with cdk.json's feature flags (as the CLI would) and a
// placeholder commit for the service stacks: what `cfn-lint` checks in the tidy gate.
// A configuration that names no GitHub repository gets a placeholder one, so that its
// stages' CI stacks are checked too; and its first stage is also synthesized under each
// deployment strategy that shifts traffic (into OUT/<file name>/<stage>-<strategy>/), so the
// resources of every strategy are checked whatever the stages choose.
//
//   npx tsx bin/synth-all.ts OUT CONFIG.json...
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { addStageStacks } from '../lib/app';
import { ConfigError, loadConfig, ProjectConfig, RolloutConfig } from '../lib/config';

const [out, ...files] = process.argv.slice(2);
if (out === undefined || files.length === 0) {
  console.error('usage: synth-all OUT CONFIG.json...');
  process.exit(2);
}
const flags = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'cdk.json'), 'utf8')).context;
const PLACEHOLDER_COMMIT = '0'.repeat(40);
/** Each strategy that shifts traffic, with a rollback alarm, as xtask would resolve it. */
const STRATEGY_SWEEP: RolloutConfig[] = [
  { strategy: 'blue-green', bakeMinutes: 10, rollbackAlarms: ['placeholder-alarm'] },
  { strategy: 'canary', bakeMinutes: 10, canaryPercent: 5, canaryBakeMinutes: 10, rollbackAlarms: ['placeholder-alarm'] },
  { strategy: 'linear', bakeMinutes: 10, linearPercent: 10, linearStepMinutes: 6, rollbackAlarms: ['placeholder-alarm'] },
];

function synth(outdir: string, stage: string, config: ProjectConfig) {
  const app = new App({ outdir, context: { ...flags, stage, imageTag: PLACEHOLDER_COMMIT } });
  addStageStacks(app, config);
  app.synth();
}
try {
  fs.rmSync(out, { recursive: true, force: true });
  for (const file of files) {
    const loaded = loadConfig(file);
    const config = { ...loaded, githubRepository: loaded.githubRepository ?? 'placeholder/repository' };
    const stages = Object.keys(config.stages).sort();
    for (const stage of stages) synth(path.join(out, path.basename(file, '.json'), stage), stage, config);
    const [first] = stages;
    for (const rollout of STRATEGY_SWEEP) {
      const swept = { ...config, stages: { ...config.stages, [first]: { ...config.stages[first], rollout } } };
      synth(path.join(out, path.basename(file, '.json'), `${first}-${rollout.strategy}`), first, swept);
    }
  }
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  console.error(`error: ${e.message}`);
  process.exit(1);
}
