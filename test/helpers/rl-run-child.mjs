// A child process for the kill/resume tests: one `rl train` run through the run layer (compiled dist/), with a
// reward the tiny fixture policy can earn (the first response token's id is even) instead of the verifier, so its
// groups have mixed outcomes and the online reward model trains. argv[2]: JSON of runRl's options minus `reward`.
import { resolveRlConfig } from '../../dist/lib/config/index.js';
import { runRl } from '../../dist/lib/run/index.js';

const options = JSON.parse(process.argv[2]);
const summary = await runRl({
  ...options,
  config: resolveRlConfig(options.config),
  reward: (rollout) => (rollout.response_ids[0] % 2 === 0 ? 1 : 0),
});
process.stdout.write(JSON.stringify(summary) + '\n');
