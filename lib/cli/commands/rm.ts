import { checkOutputFile } from '../../util/fs.js';
import { writeJsonl } from '../../data/jsonl.js';
import { loadBenchmark } from '../../eval/policy.js';
import { analyzeTd } from '../../eval/td-analysis.js';
import { withModels, type ModelDType } from '../../model/index.js';
import type { CommandModule } from 'yargs';
import { loadDataset } from '../../data/records.js';
import { readRollouts } from '../../rollout/rollouts.js';
import { STEP_SCORE_MODES } from '../../eval/processbench.js';
import {
  averageProcessBench,
  evaluateBestOfN,
  evaluateStepVerification,
  PROCESSBENCH_PROTOCOLS,
  stepSequences,
  type ModeSummary,
  type StepVerificationReport,
} from '../../eval/reward-model.js';
import { loadTokenizer } from '../../tokenizer/index.js';
import { IPVRM_WEIGHTINGS, PAIR_STRATEGIES, RM_METHODS, type IpvrmWeightingName, type PairStrategy, type RmMethod } from '../../train/rm.js';
import { configInput } from '../../config/common.js';
import { resolveRmConfig } from '../../config/rm.js';
import { batchProgress, runRm } from '../../run/index.js';
import { basename } from 'node:path';
import { runLaunched } from '../launched.js';
import { frozenModel, PLACEMENT_OPTIONS, placementFlags, QUIET_OPTION, runOutput, withRunFlags, type RunFlags } from '../run-flags.js';

interface RmTrainArgs extends RunFlags {
  method?: RmMethod;
  rollouts: string;
  model: string;
  steps?: number;
  'pairs-per-step'?: number;
  lr?: number;
  beta?: number;
  margin?: number;
  weighting?: IpvrmWeightingName;
  pairs?: PairStrategy;
  seed?: number;
}

const trainCommand: CommandModule<object, RmTrainArgs> = {
  command: 'train',
  describe: 'Train an implicit reward model on outcome-labelled rollouts (prefix-rl rollout), from the policy checkpoint',
  builder: (y) =>
    withRunFlags(y)
      .option('config', { type: 'string', describe: 'RM config (YAML; see configs/rm/); flags and --set override it' })
      .option('method', { choices: RM_METHODS, describe: 'ipvrm (BCE on every prefix value), implicit-prm (CE), dpo-rm (pairs); config method' })
      .option('rollouts', { type: 'string', demandOption: true, describe: 'Rollouts file (.jsonl)' })
      .option('model', { type: 'string', demandOption: true, describe: 'Policy checkpoint: π_φ starts from it, π_ref is it frozen' })
      .option('out', { type: 'string', demandOption: true, describe: 'Run folder: run.json, metrics.jsonl, checkpoints/, model/, summary.json' })
      .option('steps', { type: 'number', describe: 'Optimizer steps (default 150)' })
      .option('pairs-per-step', { type: 'number', describe: 'Pairs per step, 2× as many sequences (default 16)' })
      .option('lr', { type: 'number', describe: 'Peak learning rate, 3 % warm-up then cosine to 0 (default 1e-4)' })
      .option('beta', { type: 'number', describe: 'β of the implicit reward (default: ipvrm 10, else 0.05)' })
      .option('margin', { type: 'number', describe: 'IPVRM margin m (default 0)' })
      .option('weighting', {
        choices: IPVRM_WEIGHTINGS,
        describe: 'IPVRM reduction over prefixes: token-mean (reference, default), sequence-mean, uniform (eq. 9), early (eq. 17), late (eq. 18)',
      })
      .option('pairs', { choices: PAIR_STRATEGIES, describe: 'Pair per mixed prompt: random (default), or best-worst (reference CLI)' })
      .option('seed', { type: 'number', describe: 'Seed of the pair choice and batch order (default 0)' }),
  handler: async (args) => {
    const flags = {
      method: args.method,
      steps: args.steps,
      pairsPerStep: args['pairs-per-step'],
      lr: args.lr,
      beta: args.beta,
      margin: args.margin,
      weighting: args.weighting,
      pairs: args.pairs,
      seed: args.seed,
      ...placementFlags(args),
    };
    const config = resolveRmConfig(await configInput(args.config, args.set, flags));
    await runLaunched(config.device, (group) => runRm({ ...runOutput(args), config, rollouts: args.rollouts, model: args.model, group }));
  },
};

interface RmEvalArgs {
  rm: string;
  device: string;
  dtype: ModelDType;
  reference: string;
  processbench: string[];
  'bon-rollouts'?: string;
  'bon-n': number[];
  coef: number;
  'num-thresholds': number;
  quiet: boolean;
}

const evalCommand: CommandModule<object, RmEvalArgs> = {
  command: 'eval',
  describe: 'Evaluate an implicit reward model: ProcessBench step F1 / AUC and Best-of-N, beside the reference likelihood',
  builder: (y) =>
    y
      .option('rm', { type: 'string', demandOption: true, describe: 'Reward model checkpoint (π_φ, with its tokenizer)' })
      .option('reference', { type: 'string', demandOption: true, describe: 'Its reference π_ref (the checkpoint it was trained from)' })
      .option('processbench', { type: 'string', array: true, default: [], describe: 'ProcessBench-layout files (JSONL or Parquet), each reported' })
      .option('bon-rollouts', { type: 'string', describe: 'Verified rollouts of held-out prompts (prefix-rl rollout) for Best-of-N' })
      .option('bon-n', { type: 'number', array: true, default: [4, 16, 64], describe: 'The N of Best-of-N (the paper: 4 16 64)' })
      .option('coef', { type: 'number', default: 0.001, describe: 'Step-score coefficient (reference 0.001; the RM β is the paper reading)' })
      .option('num-thresholds', { type: 'number', default: 1000, describe: 'Points of the oracle threshold grid' })
      .option('quiet', QUIET_OPTION)
      .options(PLACEMENT_OPTIONS)
      .check((args) => {
        if (args.processbench.length === 0 && !args['bon-rollouts']) throw new Error('give --processbench files, --bon-rollouts, or both');
        return true;
      }),
  handler: async (args) => {
    const tokenizer = await loadTokenizer(args.rm);
    await withModels(async (load) => {
      const [rm, reference] = [await load(args.rm, frozenModel(args)), await load(args.reference, frozenModel(args))];
      const options = { coef: args.coef, numThresholds: args['num-thresholds'] };
      const processBench: Record<string, StepVerificationReport> = {};
      for (const file of args.processbench) {
        const sequences = stepSequences(tokenizer, await loadDataset('processbench', file));
        const onProgress = batchProgress(`rm eval ${basename(file)}`, { quiet: args.quiet });
        const report = (processBench[file] = await evaluateStepVerification(rm, reference, sequences, { ...options, onProgress }));
        process.stderr.write(
          `${file} (${report.items} items): step F1 at the oracle threshold / AUC\n  mode        reward model    reference likelihood\n`,
        );
        for (const mode of STEP_SCORE_MODES) {
          const cell = (m: ModeSummary) => `${m.f1.toFixed(3)} / ${m.auc.toFixed(3)}`;
          process.stderr.write(`  ${mode.padEnd(10)}  ${cell(report.rewardModel[mode]).padEnd(14)}  ${cell(report.referenceLikelihood[mode])}\n`);
        }
      }
      const reports = Object.values(processBench);
      const processBenchAverage = reports.length > 0 ? averageProcessBench(reports) : undefined;
      if (processBenchAverage) {
        // The paper's Table 2 layout: a column per subset (file) and their average, F1 at the oracle threshold.
        const names = Object.keys(processBench);
        process.stderr.write(`ProcessBench step F1 (IPVRM grid; ImplicitPRM grid in parentheses)\n| | ${names.join(' | ')} | Avg. |\n`);
        process.stderr.write(`|---|${names.map(() => '---|').join('')}---|\n`);
        for (const [protocol, mode] of Object.entries(PROCESSBENCH_PROTOCOLS)) {
          for (const score of ['rewardModel', 'referenceLikelihood'] as const) {
            const cell = (m: { f1: number; implicitPrmF1: number }) => `${(100 * m.f1).toFixed(1)} (${(100 * m.implicitPrmF1).toFixed(1)})`;
            const row = reports.map((r) => cell(r[score][mode]));
            process.stderr.write(`| ${score} ${protocol} | ${row.join(' | ')} | ${cell(processBenchAverage[score][mode])} |\n`);
          }
        }
      }
      const bestOfN = args['bon-rollouts']
        ? await evaluateBestOfN(rm, reference, tokenizer, await readRollouts(args['bon-rollouts']), args['bon-n'], {
            ...options,
            onProgress: batchProgress('rm eval best-of-n', { quiet: args.quiet }),
          })
        : undefined;
      if (bestOfN) {
        // The paper's Table 1 layout: a row per N.
        process.stderr.write(
          `Best-of-N accuracy (${bestOfN.prompts} prompts)\n| N | RM mean | RM sum | RM min | reference likelihood | random | oracle |\n`,
        );
        process.stderr.write('|---|---|---|---|---|---|---|\n');
        for (const row of bestOfN.byN) {
          const cells = [row.rewardModel, row.rewardModelSum, row.rewardModelMin, row.referenceLikelihood, row.random, row.oracle].map((x) =>
            x.toFixed(3),
          );
          process.stderr.write(`| ${row.n} | ${cells.join(' | ')} |\n`);
        }
      }
      process.stdout.write(
        JSON.stringify({ rm: args.rm, reference: args.reference, coef: args.coef, processBench, processBenchAverage, bestOfN }) + '\n',
      );
    });
  },
};

interface AnalyzeTdArgs {
  model: string;
  device: string;
  dtype: ModelDType;
  rm: string;
  reference?: string;
  data: string;
  limit?: number;
  candidates: number;
  beta: number;
  temperature: number;
  'max-new-tokens': number;
  'batch-size': number;
  seed: number;
  out?: string;
  overwrite: boolean;
}

/** `prefix-rl rm analyze-td`: does the one-step TD at π_old's candidates predict the outcome? (§4.3.3) */
const analyzeTdCommand: CommandModule<object, AnalyzeTdArgs> = {
  command: 'analyze-td',
  describe: "The paper's TD analysis: random truncation points, top-K branches completed once each; AUC of |V_φ| and Pearson(TD, outcome)",
  builder: (y) =>
    y
      .option('model', {
        type: 'string',
        demandOption: true,
        describe: 'The policy (π_old) that samples trajectories and completions, with its tokenizer',
      })
      .option('rm', { type: 'string', demandOption: true, describe: 'The implicit reward model π_φ' })
      .option('reference', { type: 'string', describe: 'Its reference π_ref (default: the policy, π_ref = π_old)' })
      .option('data', { type: 'string', demandOption: true, describe: 'Prompts (RL layout, or a benchmark file: problem + answer)' })
      .option('limit', { type: 'number', describe: 'Use the first N prompts (one trajectory each)' })
      .option('candidates', { type: 'number', default: 5, describe: "Branches per truncation point: π_old's top-K" })
      .option('beta', { type: 'number', default: 10, describe: 'β of the implicit reward' })
      .option('temperature', { type: 'number', default: 1, describe: 'Sampling temperature of trajectories and completions' })
      .option('max-new-tokens', { type: 'number', default: 256, describe: 'Most new tokens of a trajectory and of a completion' })
      .option('batch-size', { type: 'number', default: 16, describe: 'Sequences per forward pass and sampling batch' })
      .option('seed', { type: 'number', default: 0, describe: 'Seed of the sampling and of the truncation points' })
      .option('out', { type: 'string', describe: 'Also write every branch (prompt, t, token, td, prefixValue, outcome) as JSON lines' })
      .option('overwrite', { type: 'boolean', default: false, describe: 'Replace an existing --out file' })
      .options(PLACEMENT_OPTIONS),
  handler: async (args) => {
    if (args.out !== undefined) {
      const inputs = { '--data': args.data, '--model': args.model, '--rm': args.rm, '--reference': args.reference };
      await checkOutputFile('--out', args.out, inputs, args.overwrite);
    }
    const records = (await loadBenchmark(args.data)).records.slice(0, args.limit);
    const tokenizer = await loadTokenizer(args.model);
    await withModels(async (load) => {
      const policy = await load(args.model, frozenModel(args));
      const rewardModel = await load(args.rm, frozenModel(args));
      const reference = args.reference ? await load(args.reference, frozenModel(args)) : undefined;
      const report = await analyzeTd({ policy, rewardModel, reference }, tokenizer, records, {
        candidates: args.candidates,
        beta: args.beta,
        temperature: args.temperature,
        maxNewTokens: args['max-new-tokens'],
        batchSize: args['batch-size'],
        seed: args.seed,
      });
      const { items, ...summary } = report;
      if (args.out) await writeJsonl(args.out, items, { replace: args.overwrite });
      process.stderr.write(
        `${summary.branches} branches from ${summary.trajectories} trajectories: AUC |V_φ| ${summary.aucAbsPrefixValue.toFixed(3)} ` +
          `(V_φ ${summary.aucPrefixValue.toFixed(3)}), Pearson(TD, outcome) ${summary.pearsonTd.toFixed(4)}, right ${summary.meanOutcome.toFixed(3)}\n`,
      );
      process.stdout.write(JSON.stringify({ model: args.model, rm: args.rm, ...summary, ...(args.out && { out: args.out }) }) + '\n');
    });
  },
};

/** `prefix-rl rm`: reward-model commands. */
export const rmCommand: CommandModule = {
  command: 'rm',
  describe: 'Reward models: train (IPVRM, Implicit PRM, DPO-RM) on rollouts; eval (ProcessBench, Best-of-N); analyze-td',
  builder: (y) =>
    y.command(trainCommand).command(evalCommand).command(analyzeTdCommand).demandCommand(1, 'Name an rm command: train, eval or analyze-td.'),
  // Never runs: demandCommand always hands over to a subcommand.
  handler: () => {},
};
