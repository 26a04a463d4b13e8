// Checkpoints of a training session, each a folder under <run>/checkpoints/:
//   step-NNNNNN/state.json                    the stage, the step, the session's state() (RNG, data positions)
//   step-NNNNNN/models/<name>/                each trainee's model in Hugging Face format, or its LoRA adapter (PEFT)
//   step-NNNNNN/optimizers/<name>.safetensors each trainee's AdamW state
// A checkpoint is written into a `.tmp-` folder, fsynced and renamed, and only then named in `latest` (itself
// replaced atomically): whatever the moment of a crash, `latest` names a complete checkpoint or none exists.
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ADAPTER_CONFIG } from '../model/lora.js';
import type { TrainingSession } from '../train/common.js';
import { failpoint } from '../util/failpoint.js';
import { stepFolderName, TEMP_PREFIX, writeFileAtomic, writeFolderAtomic } from '../util/fs.js';
import { CHECKPOINTS_DIR, LATEST_FILE, type Stage } from './layout.js';

const STATE_FILE = 'state.json';
const STEP_DIR = /^step-(\d{6,})$/;

export const checkpointName = stepFolderName;

/** state.json. */
export interface CheckpointState {
  stage: Stage;
  /** Steps done when it was written. */
  step: number;
  session: Record<string, unknown>;
}

/** Writes the session's checkpoint into `runDir`, points `latest` at it, and deletes all but the newest `keep`. */
export async function saveCheckpoint(runDir: string, stage: Stage, session: TrainingSession<unknown>, keep: number): Promise<string> {
  const root = join(runDir, CHECKPOINTS_DIR);
  const step = session.stepsDone;
  const dir = join(root, checkpointName(step));
  await writeFolderAtomic(dir, async (temp) => {
    for (const [name, trainee] of Object.entries(session.trainees)) {
      const { model } = trainee;
      // The folders are new, inside the checkpoint being built: plain writes suffice.
      if (model.lora) await model.saveAdapter(join(temp, 'models', name));
      else await model.save(join(temp, 'models', name));
      await mkdir(join(temp, 'optimizers'), { recursive: true });
      await trainee.optimizer.save(join(temp, 'optimizers', `${name}.safetensors`));
    }
    failpoint('checkpoint-write', step);
    const state: CheckpointState = { stage, step, session: session.state() };
    await writeFileAtomic(join(temp, STATE_FILE), JSON.stringify(state) + '\n');
  });
  failpoint('checkpoint-latest', step);
  await writeFileAtomic(join(root, LATEST_FILE), checkpointName(step) + '\n');
  await pruneCheckpoints(root, keep);
  return dir;
}

/** The folder `latest` names, or undefined when the run has no complete checkpoint. */
export async function latestCheckpoint(runDir: string): Promise<string | undefined> {
  const root = join(runDir, CHECKPOINTS_DIR);
  const latest = join(root, LATEST_FILE);
  if (!existsSync(latest)) return undefined;
  const name = (await readFile(latest, 'utf8')).trim();
  if (!STEP_DIR.test(name) || !existsSync(join(root, name, STATE_FILE))) {
    throw new Error(`${latest} names '${name}', which is not a complete checkpoint of this run`);
  }
  return join(root, name);
}

/** A checkpoint's state.json, checked against the stage resuming it. */
export async function readCheckpoint(dir: string, stage: Stage): Promise<CheckpointState> {
  let state: CheckpointState;
  try {
    state = JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8'));
  } catch (err) {
    throw new Error(`${dir}: not a checkpoint (${STATE_FILE}: ${(err as Error).message})`);
  }
  if (state.stage !== stage) throw new Error(`${dir} is a checkpoint of a ${state.stage} run, not of ${stage}`);
  if (!Number.isInteger(state.step) || state.step < 0 || typeof state.session !== 'object') throw new Error(`${dir}/${STATE_FILE} is malformed`);
  return state;
}

/** Where a checkpoint holds a trainee's model, and whether it is a LoRA adapter (to attach to the base model). */
export function checkpointModel(dir: string, name: string): { dir: string; adapter: boolean } {
  const model = join(dir, 'models', name);
  if (!existsSync(model)) throw new Error(`${dir} holds no model '${name}'`);
  return { dir: model, adapter: existsSync(join(model, ADAPTER_CONFIG)) };
}

/** Gives a checkpoint back to a session opened on the same inputs: its optimizer states, then its state.json. */
export async function restoreSession(session: TrainingSession<unknown>, dir: string, state: CheckpointState): Promise<void> {
  for (const [name, trainee] of Object.entries(session.trainees)) {
    const file = join(dir, 'optimizers', `${name}.safetensors`);
    if (!existsSync(file)) throw new Error(`${dir} holds no optimizer state for '${name}'`);
    await trainee.optimizer.load(file);
  }
  session.restore(state.session);
}

/**
 * Clears what a crash may have left under checkpoints/ and what lies past the checkpoint a run resumes from:
 * `.tmp-` folders, and checkpoints newer than `step` (an abandoned continuation).
 */
export async function cleanCheckpoints(runDir: string, step: number): Promise<void> {
  const root = join(runDir, CHECKPOINTS_DIR);
  if (!existsSync(root)) return;
  for (const entry of await readdir(root)) {
    const match = STEP_DIR.exec(entry);
    if (entry.startsWith(TEMP_PREFIX) || (match && Number(match[1]) > step)) await rm(join(root, entry), { recursive: true, force: true });
  }
}

async function pruneCheckpoints(root: string, keep: number): Promise<void> {
  const steps = (await readdir(root))
    .map((entry) => STEP_DIR.exec(entry))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => Number(match[1]))
    .sort((a, b) => b - a);
  for (const step of steps.slice(keep)) await rm(join(root, checkpointName(step)), { recursive: true, force: true });
}
