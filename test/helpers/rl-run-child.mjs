// A child process for the kill/resume and data-parallel tests: one `rl train` run through the run layer (compiled
// dist/), with a reward the tiny fixture policy can earn (the first response token's id is even) instead of the
// verifier, so its groups have mixed outcomes and the online reward model trains. argv[2]: JSON of runRl's options
// minus `reward`. Under a launcher (WORLD_SIZE > 1) it runs as one rank, as the CLI's training commands do; the
// summary is printed on stdout (by rank 0).
import { runLaunched } from '../../dist/lib/cli/launched.js';
import { resolveRlConfig } from '../../dist/lib/config/index.js';
import { runRl } from '../../dist/lib/run/index.js';

const options = JSON.parse(process.argv[2]);
const config = resolveRlConfig(options.config);
await runLaunched(config.device, (group) => runRl({ ...options, config, group, reward: (rollout) => (rollout.response_ids[0] % 2 === 0 ? 1 : 0) }));
