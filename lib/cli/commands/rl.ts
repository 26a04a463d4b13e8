import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CommandModule } from 'yargs';
import { parse as parseYaml } from 'yaml';
import { deepMerge, evalRolloutOptions, loadRlConfig, RL_PRESET_NAMES } from '../../config/rl.js';
import { sampledAccuracy } from '../../eval/accuracy.js';
import { loadDataset } from '../../data/records.js';
import { trainRl, type RlStep } from '../../train/rl.js';
import { loadTokenizer } from '../../tokenizer/index.js';
import { withModels } from '../models.js';

interface RlTrainArgs {
  config: string;
  model: string;
  'reward-model'?: string;
  reference?: string;
  data: string;
  'eval-data'?: string;
  out: string;
  steps?: number;
  seed?: number;
  set: string[];
}

/** `--set actor.lr=1e-5` → { actor: { lr: 1e-5 } }; the value is read as YAML (numbers, booleans, strings). */
export function parseSetting(setting: string): Record<string, unknown> {
  const eq = setting.indexOf('=');
  if (eq <= 0) throw new Error(`--set ${setting}: expected key.path=value`);
  const path = setting.slice(0, eq).split('.');
  let value: unknown = parseYaml(setting.slice(eq + 1));
  for (const key of path.reverse()) value = { [key]: value };
  return value as Record<string, unknown>;
}

const trainCommand: CommandModule<object, RlTrainArgs> = {
  command: 'train',
  describe: `RL of a policy (presets: ${RL_PRESET_NAMES.join(', ')}) with verified outcomes and an online implicit reward model`,
  builder: (y) =>
    y
      .option('config', { type: 'string', demandOption: true, describe: 'RL experiment config (YAML; see configs/rl/)' })
      .option('model', { type: 'string', demandOption: true, describe: 'Policy checkpoint to start from (with its tokenizer)' })
      .option('reward-model', { type: 'string', describe: 'Checkpoint π_φ starts from, e.g. from prefix-rl rm train (default: --model)' })
      .option('reference', { type: 'string', describe: 'Frozen π_ref when rewardModel.reference is frozen (default: --model)' })
      .option('data', { type: 'string', demandOption: true, describe: 'RL prompts (Eurus-2-RL layout, JSONL or Parquet)' })
      .option('eval-data', { type: 'string', describe: 'Held-out prompts: avg@k before training, every eval.every steps and at the end' })
      .option('out', { type: 'string', demandOption: true, describe: 'Folder for policy/, reward-model/ and metrics.jsonl' })
      .option('steps', { type: 'number', describe: 'RL steps (overrides the config)' })
      .option('seed', { type: 'number', describe: 'Seed (overrides the config)' })
      .option('set', { type: 'string', array: true, default: [], describe: 'Override a config key, e.g. --set actor.lr=1e-5' }),
  handler: async (args) => {
    const overrides = args.set.map(parseSetting).reduce(deepMerge, {});
    const config = await loadRlConfig(args.config, { ...overrides, steps: args.steps, seed: args.seed });
    const records = await loadDataset('rl', args.data);
    const evalRecords = args['eval-data'] ? await loadDataset('rl', args['eval-data']) : undefined;
    if (evalRecords?.length === 0) throw new Error(`--eval-data ${args['eval-data']} holds no prompts`);
    const tokenizer = await loadTokenizer(args.model);
    const needsRm = config.rewardModel.kind !== 'none';
    await withModels(async (load) => {
      const policy = await load(args.model);
      const rewardModel = needsRm ? await load(args['reward-model'] ?? args.model) : undefined;
      const reference = needsRm && config.rewardModel.reference === 'frozen' ? await load(args.reference ?? args.model) : undefined;
      await mkdir(args.out, { recursive: true });
      const metrics = join(args.out, 'metrics.jsonl');
      await writeFile(metrics, '');
      await writeFile(join(args.out, 'config.json'), JSON.stringify(config, null, 2) + '\n');
      const initialTestAccuracy = evalRecords && (await sampledAccuracy(policy, tokenizer, evalRecords, evalRolloutOptions(config))).accuracy;
      if (initialTestAccuracy !== undefined) process.stderr.write(`held-out accuracy before RL: ${initialTestAccuracy.toFixed(3)}\n`);
      const pending: Promise<void>[] = [];
      const history = await trainRl({ policy, rewardModel, reference }, tokenizer, records, config, {
        evalRecords,
        onStep: (s: RlStep) => {
          pending.push(appendFile(metrics, JSON.stringify(s) + '\n'));
          const rm =
            (s.rmLoss === undefined ? '' : ` rm-loss ${s.rmLoss.toFixed(4)}`) +
            (s.rmAccuracy === undefined ? '' : ` rm-acc ${s.rmAccuracy.toFixed(3)}`);
          const test = s.testAccuracy === undefined ? '' : ` held-out ${s.testAccuracy.toFixed(3)}`;
          process.stderr.write(
            `step ${s.step + 1}: acc ${s.accuracy.toFixed(3)} mixed ${s.mixedFraction.toFixed(2)} loss ${s.loss.toFixed(4)} ` +
              `pg ${s.pgLoss.toFixed(4)} dist ${s.topkPgLoss.toFixed(4)} entropy ${s.entropy.toFixed(3)} kl ${s.ppoKl.toExponential(1)}${rm} len ${s.meanResponseLength.toFixed(0)}${test} ${s.seconds.toFixed(0)} s\n`,
          );
        },
      });
      await Promise.all(pending);
      if (policy.lora) {
        // The adapter alone (PEFT layout, on the starting checkpoint), then the merged policy.
        await policy.saveAdapter(join(args.out, 'policy-lora'));
        await policy.mergeAdapter();
      }
      await policy.save(join(args.out, 'policy'));
      if (rewardModel) await rewardModel.save(join(args.out, 'reward-model'));
      const last = history.at(-1)!;
      const first = history.slice(0, Math.min(5, history.length));
      const lastFew = history.slice(-Math.min(5, history.length));
      const mean = (xs: RlStep[]) => xs.reduce((a, s) => a + s.accuracy, 0) / xs.length;
      process.stdout.write(
        JSON.stringify({
          out: args.out,
          algorithm: config.algorithm,
          steps: history.length,
          firstStepsAccuracy: mean(first),
          lastStepsAccuracy: mean(lastFew),
          ...(evalRecords && { initialTestAccuracy, testAccuracy: last.testAccuracy }),
          seconds: last.seconds,
        }) + '\n',
      );
    });
  },
};

/** `prefix-rl rl`: reinforcement-learning commands. */
export const rlCommand: CommandModule = {
  command: 'rl',
  describe: 'Reinforcement learning: train (GRPO, PRIME, GRPO+IPVRM, DistRL) from an experiment config',
  builder: (y) => y.command(trainCommand).demandCommand(1, 'Name an rl command: train.'),
  // Never runs: demandCommand always hands over to a subcommand.
  handler: () => {},
};
