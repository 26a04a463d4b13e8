import type { CommandModule } from 'yargs';
import { frozenModel, PLACEMENT_OPTIONS, QUIET_OPTION } from '../run-flags.js';
import { EVAL_INSTRUCTION, evaluatePolicy, loadBenchmark } from '../../eval/policy.js';
import { loadModel, type ModelDType } from '../../model/index.js';
import { batchProgress } from '../../run/index.js';
import { loadTokenizer } from '../../tokenizer/index.js';
import { samplingOptions, type SamplingArgs } from './rollout.js';

interface EvalArgs extends SamplingArgs {
  model: string;
  device: string;
  dtype: ModelDType;
  data: string[];
  limit?: number;
  instruction: string;
  quiet: boolean;
}

/** `prefix-rl eval`: a policy's avg@k per benchmark file and their average (the paper's Table 5). */
export const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval',
  describe: 'Policy avg@k on benchmark files (problem + answer, or RL layout), per file and averaged',
  builder: (y) =>
    y
      .option('model', { type: 'string', demandOption: true, describe: 'Policy checkpoint with its tokenizer' })
      .option('data', { type: 'string', array: true, demandOption: true, describe: 'Benchmark files (JSONL or Parquet), each reported' })
      .option('samples', { type: 'number', default: 8, describe: 'Samples per problem: the k of avg@k (the paper: 8)' })
      .option('temperature', { type: 'number', default: 0.6, describe: 'Sampling temperature (the paper: 0.6)' })
      .option('top-p', { type: 'number', default: 0.95, describe: 'Nucleus sampling mass (the paper: 0.95)' })
      .option('max-new-tokens', { type: 'number', default: 1024, describe: 'Most new tokens per response' })
      .option('batch-size', { type: 'number', default: 64, describe: 'Responses sampled together' })
      .option('seed', { type: 'number', default: 0, describe: 'Sampling seed' })
      .option('limit', { type: 'number', describe: 'Use the first N problems of each file' })
      .option('quiet', QUIET_OPTION)
      .options(PLACEMENT_OPTIONS)
      .option('instruction', { type: 'string', default: EVAL_INSTRUCTION, describe: 'Appended to eval-layout problems ("" for none)' }),
  handler: async (args) => {
    const sampling = samplingOptions(args);
    // Every file is read and checked before the model loads.
    const benchmarks = [];
    for (const file of args.data) {
      const { name, records } = await loadBenchmark(file, args.instruction);
      benchmarks.push({ name, records: records.slice(0, args.limit) });
    }
    const [tokenizer, model] = [await loadTokenizer(args.model), await loadModel(args.model, frozenModel(args))];
    try {
      const report = await evaluatePolicy(model, tokenizer, benchmarks, { ...sampling, onBatch: batchProgress('eval', { quiet: args.quiet }) });
      const k = args.samples;
      const names = report.benchmarks.map((b) => b.name);
      const cell = (x: number) => (100 * x).toFixed(1);
      process.stderr.write(
        [
          `| | ${names.join(' | ')} | Avg. |`,
          `|---|${names.map(() => '---|').join('')}---|`,
          `| avg@${k} | ${report.benchmarks.map((b) => cell(b.accuracy)).join(' | ')} | ${cell(report.average)} |`,
          `| pass@${k} | ${report.benchmarks.map((b) => cell(b.passAtK)).join(' | ')} | |`,
        ].join('\n') + '\n',
      );
      process.stdout.write(JSON.stringify({ model: args.model, samples: k, ...report }) + '\n');
    } finally {
      model.dispose();
    }
  },
};
