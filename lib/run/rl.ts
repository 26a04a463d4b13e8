// `prefix-rl rl train` as a run: RL of a policy with an online implicit reward model, in a run folder with
// checkpoints (policy, reward model, both optimizers, the prompt stream), resume and verl-named metrics. The trained
// models land in <out>/policy (merged, with the adapter alone in <out>/policy-lora under actor.lora) and
// <out>/reward-model.
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { evalRolloutOptions, type RlConfig } from '../config/rl.js';
import { loadDataset } from '../data/records.js';
import { sampledAccuracy } from '../eval/accuracy.js';
import { loadOptions, withModels } from '../model/index.js';
import { loadTokenizer } from '../tokenizer/index.js';
import { RlSession, type RlRunOptions as TrainRlOptions } from '../train/rl.js';
import { checkpointModel, restoreSession } from './checkpoint.js';
import type { MetricsRow } from './layout.js';
import { rlMetrics } from './metrics.js';
import { createProgress } from './progress.js';
import { runLoop } from './runner.js';
import { closeRun, finishedRun, openRunFolder, type RunOutputOptions } from './stage.js';
import { checkOutputApart } from '../util/fs.js';

export interface RlRunFiles {
  /** The experiment config file, recorded as an input (the config itself is `config`). */
  configFile?: string;
  /** Policy checkpoint to start from (with its tokenizer). */
  model: string;
  /** Checkpoint π_φ starts from (default: model). */
  rewardModel?: string;
  /** Frozen π_ref when rewardModel.reference is frozen (default: model). */
  reference?: string;
  /** RL prompts, and held-out prompts for avg@k. */
  data: string;
  evalData?: string;
}

export interface RunRlOptions extends RunOutputOptions, RlRunFiles {
  config: RlConfig;
  /** Scores each rollout instead of the verifier (see trainRl's options). */
  reward?: TrainRlOptions['reward'];
}

export async function runRl(options: RunRlOptions): Promise<Record<string, unknown>> {
  const { config } = options;
  const { group } = options;
  const inputs = {
    '--config': options.configFile,
    '--model': options.model,
    '--reward-model': options.rewardModel,
    '--reference': options.reference,
    '--data': options.data,
    '--eval-data': options.evalData,
  };
  const folder = await openRunFolder({ stage: 'rl', out: options.out, resume: options.resume, overwrite: options.overwrite, inputs }, group, config);
  if (config.rollout.syncDir) checkOutputApart('rollout.syncDir', resolve(config.rollout.syncDir), inputs);
  if (folder.finished) return finishedRun(folder);
  const records = await loadDataset('rl', options.data);
  const evalRecords = options.evalData ? await loadDataset('rl', options.evalData) : undefined;
  if (evalRecords?.length === 0) throw new Error(`--eval-data ${options.evalData} holds no prompts`);
  const tokenizer = await loadTokenizer(options.model);
  const usesRm = config.rewardModel.kind !== 'none';
  const resume = folder.resumeFrom;
  return withModels(async (load) => {
    // Resuming: the trained models come from the checkpoint (a LoRA policy: the base model plus its adapter).
    const policyCheckpoint = resume && checkpointModel(resume.dir, 'policy');
    // A LoRA policy's base is frozen (its adapter trains); a reward model that is not updated is frozen too.
    const policy = await load(
      policyCheckpoint && !policyCheckpoint.adapter ? policyCheckpoint.dir : options.model,
      loadOptions(config, config.actor.lora ? 'frozen' : 'trains'),
    );
    const rmTrains = usesRm && config.rewardModel.update !== 'none';
    const rewardModel = usesRm
      ? await load(
          resume && rmTrains ? checkpointModel(resume.dir, 'reward-model').dir : (options.rewardModel ?? options.model),
          loadOptions(config, rmTrains ? 'trains' : 'frozen'),
        )
      : undefined;
    const reference =
      usesRm && config.rewardModel.reference === 'frozen' ? await load(options.reference ?? options.model, loadOptions(config, 'frozen')) : undefined;
    const session = await RlSession.open({ policy, rewardModel, reference }, tokenizer, records, config, {
      evalRecords,
      reward: options.reward,
      signal: options.signal,
      policyAdapter: policyCheckpoint?.adapter ? policyCheckpoint.dir : undefined,
      group,
      rolloutSyncDir: folder.path('rollout-weights'),
      // The run folder names the run on the server and in a shared sync folder: a resumed run is the same run.
      rolloutRunId: createHash('sha256').update(folder.dir).digest('hex').slice(0, 12),
    });
    try {
      if (resume) await restoreSession(session, resume.dir, resume.state);
      await folder.begin(config);
      const progress = createProgress(`rl ${config.algorithm}`, config.steps, {
        quiet: options.quiet,
        every: options.logEvery ?? 1,
        silent: !folder.writes,
      });
      if (!resume && evalRecords) {
        const { accuracy } = await sampledAccuracy(policy, tokenizer, evalRecords, { ...evalRolloutOptions(config), group, signal: options.signal });
        await folder.log({ step: 0, 'val/accuracy': accuracy });
        progress.note(`held-out accuracy before RL: ${accuracy.toFixed(3)}`);
      }
      await runLoop({
        stage: 'rl',
        folder,
        session,
        checkpoint: config.checkpoint,
        metrics: rlMetrics,
        progress,
        show: (row) => ({
          acc: row['critic/score/mean'],
          'rm-acc': row['reward_model/acc'],
          entropy: row['actor/entropy'],
          len: row['response_length/mean'],
          'held-out': row['val/accuracy'],
        }),
      });
      if (!folder.writes) return { out: folder.dir, rank: group!.rank };
      if (policy.lora) {
        // The adapter alone (PEFT layout, on the starting checkpoint), then the merged policy.
        await policy.saveAdapter(folder.path('policy-lora'));
        await policy.mergeAdapter();
      }
      await policy.save(folder.path('policy'));
      if (rewardModel) await rewardModel.save(folder.path('reward-model'));
      const summary = { out: options.out, algorithm: config.algorithm, ...rlSummary(await folder.metrics()) };
      await folder.finish(summary);
      return summary;
    } finally {
      await closeRun(session, folder);
    }
  });
}

/** The run's headline numbers, from its metrics (so a resumed run reports the whole run). */
export function rlSummary(rows: readonly MetricsRow[]): Record<string, number | undefined> {
  const steps = rows.filter((row) => row.step > 0);
  const mean = (xs: readonly MetricsRow[]) => xs.reduce((a, row) => a + row['critic/score/mean'], 0) / Math.max(1, xs.length);
  const held = rows.filter((row) => row['val/accuracy'] !== undefined);
  return {
    steps: steps.length,
    firstStepsAccuracy: mean(steps.slice(0, 5)),
    lastStepsAccuracy: mean(steps.slice(-5)),
    initialTestAccuracy: held.find((row) => row.step === 0)?.['val/accuracy'],
    testAccuracy: held.filter((row) => row.step > 0).at(-1)?.['val/accuracy'],
    seconds: steps.reduce((a, row) => a + (row['timing_s/step'] ?? 0), 0),
  };
}
