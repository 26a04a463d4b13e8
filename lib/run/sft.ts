// `prefix-rl sft` as a run: SFT of a checkpoint (or of random weights from a model config) in a run folder, with
// checkpoints, resume and metrics; the trained model lands in <out>/model.
import type { SftConfig } from '../config/sft.js';
import { loadDataset } from '../data/records.js';
import { initModel, loadModel, loadOptions, readModelConfig, type CausalLM } from '../model/index.js';
import { loadTokenizer } from '../tokenizer/index.js';
import { SftSession, sftExample } from '../train/sft.js';
import { checkpointModel } from './checkpoint.js';
import { sftMetrics } from './metrics.js';
import { createProgress } from './progress.js';
import { finishedRun, openRunFolder, runOneModelStage, type RunOutputOptions } from './stage.js';

export interface RunSftOptions extends RunOutputOptions {
  config: SftConfig;
  /** SFT records (JSONL or Parquet). */
  data: string;
  /** Start from this checkpoint, or from random weights of `initConfig` (a config.json) with `tokenizer`. */
  model?: string;
  initConfig?: string;
  /** Tokenizer folder (default: model). */
  tokenizer?: string;
}

/** Trains and resolves to the run's summary (summary.json). */
export async function runSft(options: RunSftOptions): Promise<Record<string, unknown>> {
  const { config, data } = options;
  if (!options.model === !options.initConfig) throw new Error('give exactly one of model or initConfig');
  const tokenizerDir = options.tokenizer ?? options.model;
  if (!tokenizerDir) throw new Error('a model initialised from a config needs a tokenizer folder');
  const folder = await openRunFolder(
    {
      stage: 'sft',
      out: options.out,
      resume: options.resume,
      overwrite: options.overwrite,
      inputs: { '--data': data, '--model': options.model, '--init-config': options.initConfig, '--tokenizer': options.tokenizer },
    },
    options.group,
    config,
  );
  if (folder.finished) return finishedRun(folder);
  const tokenizer = await loadTokenizer(tokenizerDir);
  const examples = (await loadDataset('sft', data)).map((record, i) => {
    try {
      return sftExample(tokenizer, record.messages);
    } catch (err) {
      throw new Error(`${data}: row ${i + 1}: ${(err as Error).message}`);
    }
  });
  const resume = folder.resumeFrom;
  const placement = loadOptions(config, 'trains');
  const model: CausalLM = resume
    ? await loadModel(checkpointModel(resume.dir, 'model').dir, placement)
    : options.model
      ? await loadModel(options.model, placement)
      : await initModel((await readModelConfig(options.initConfig!)).raw, { ...placement, seed: config.seed, tokenizerFrom: tokenizerDir });
  try {
    return await runOneModelStage(
      folder,
      config,
      new SftSession(model, examples, { ...config, signal: options.signal, group: options.group }),
      {
        stage: 'sft',
        metrics: sftMetrics,
        progress: createProgress('sft', config.steps, { quiet: options.quiet, every: options.logEvery ?? 20, silent: !folder.writes }),
        show: (row) => ({ loss: row['train/loss'], lr: row['train/lr'], 'grad-norm': row['train/grad_norm'] }),
        maxMinutes: config.maxMinutes,
      },
      (rows, stoppedEarly) => ({
        out: options.out,
        steps: rows.filter((row) => row.step > 0).length,
        examples: examples.length,
        loss: rows.at(-1)?.['train/loss'],
        stoppedEarly,
      }),
    );
  } finally {
    model.dispose();
  }
}
