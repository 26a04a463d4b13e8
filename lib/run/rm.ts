// `prefix-rl rm train` as a run: offline training of an implicit reward model on outcome-labelled rollouts, π_φ
// from the policy checkpoint and π_ref that checkpoint frozen; the trained model lands in <out>/model.
import { join } from 'node:path';
import type { RmConfig } from '../config/rm.js';
import { loadModel, loadOptions, readModelConfig } from '../model/index.js';
import { readRollouts } from '../rollout/rollouts.js';
import { outcomePairs, referenceLogprobs, RmSession } from '../train/rm.js';
import { checkpointModel } from './checkpoint.js';
import { rmMetrics } from './metrics.js';
import { createProgress } from './progress.js';
import { finishedRun, openRunFolder, runOneModelStage, type RunOutputOptions } from './stage.js';

export interface RunRmOptions extends RunOutputOptions {
  config: RmConfig;
  /** Rollouts file (prefix-rl rollout). */
  rollouts: string;
  /** The policy checkpoint: π_φ starts from it, π_ref is it frozen. */
  model: string;
}

export async function runRm(options: RunRmOptions): Promise<Record<string, unknown>> {
  const { config } = options;
  const folder = await openRunFolder(
    {
      stage: 'rm',
      out: options.out,
      resume: options.resume,
      overwrite: options.overwrite,
      inputs: { '--rollouts': options.rollouts, '--model': options.model },
    },
    options.group,
    config,
  );
  if (folder.finished) return finishedRun(folder);
  // Token ids checked against the model's vocabulary while reading, so that an error names the line.
  const { vocabSize } = (await readModelConfig(join(options.model, 'config.json'))).config;
  const pairs = outcomePairs(await readRollouts(options.rollouts, { vocabSize }), config.seed, config.pairs);
  if (pairs.length === 0) throw new Error(`${options.rollouts}: no prompt has both right and wrong rollouts, so there are no pairs to train on`);
  const reference = await loadModel(options.model, loadOptions(config, 'frozen'));
  try {
    await referenceLogprobs(
      reference,
      pairs.flatMap((p) => [p.chosen, p.rejected]),
      32,
      { signal: options.signal },
    );
  } finally {
    reference.dispose();
  }
  const resume = folder.resumeFrom;
  const model = await loadModel(resume ? checkpointModel(resume.dir, 'model').dir : options.model, loadOptions(config, 'trains'));
  try {
    return await runOneModelStage(
      folder,
      config,
      new RmSession(model, pairs, { ...config, signal: options.signal, group: options.group }),
      {
        stage: 'rm',
        metrics: rmMetrics,
        progress: createProgress(`rm ${config.method}`, config.steps, {
          quiet: options.quiet,
          every: options.logEvery ?? 10,
          silent: !folder.writes,
        }),
        show: (row) => ({ loss: row['reward_model/loss'], 'pair-acc': row['reward_model/pair_acc'], lr: row['reward_model/lr'] }),
      },
      (rows) => ({
        out: options.out,
        method: config.method,
        pairs: pairs.length,
        steps: rows.filter((row) => row.step > 0).length,
        loss: rows.at(-1)?.['reward_model/loss'],
      }),
    );
  } finally {
    model.dispose();
  }
}
