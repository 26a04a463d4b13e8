// SFT: examples mask everything before the final assistant turn; a few steps from scratch lower the loss on the
// controlled task; bad input is refused; the sft command writes a loadable checkpoint.
import { jest } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../lib/cli/main.js';
import { writeJsonl } from '../lib/data/index.js';
import { initModel, loadModel } from '../lib/model/index.js';
import { makeSftRecords } from '../lib/task/index.js';
import { loadTokenizer } from '../lib/tokenizer/index.js';
import { sft, sftExample } from '../lib/train/sft.js';
import { readFile } from 'node:fs/promises';
import { captureStdout } from './helpers/stdout.js';

const FIXTURE = join(process.cwd(), 'fixtures/models/qwen3-tiny'); // its tokenizer is the task tokenizer

test('an example scores exactly the answer tokens and the end of turn', async () => {
  const tokenizer = await loadTokenizer(FIXTURE);
  const example = sftExample(tokenizer, [
    { role: 'user', content: 'Compute 2 +3 step by step.' },
    { role: 'assistant', content: '5' },
  ]);
  // <bos> prompt <sep> | 5 <eos>
  expect(example.tokens.slice(example.lossStart)).toEqual([...tokenizer.encode('5', { addSpecialTokens: false }), tokenizer.eosTokenId]);
  expect(() => sftExample(tokenizer, [{ role: 'user', content: 'x' }])).toThrow(/final assistant turn/);
});

test('training from scratch lowers the loss on controlled-task chats', async () => {
  const tokenizer = await loadTokenizer(FIXTURE);
  const config = JSON.parse(await readFile(join(FIXTURE, 'config.json'), 'utf8')) as Record<string, unknown>;
  const model = await initModel(config, { seed: 0 });
  try {
    const examples = makeSftRecords(5, 64, { minDepth: 2, maxDepth: 2 }).map((record) => sftExample(tokenizer, record.messages));
    const seen: number[] = [];
    const history = await sft(model, examples, { steps: 30, batchSize: 16, lr: 3e-3, warmupSteps: 5, onStep: (s) => seen.push(s.step) });
    expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => i));
    const first = history.slice(0, 3).reduce((sum, s) => sum + s.loss, 0) / 3;
    const last = history.slice(-3).reduce((sum, s) => sum + s.loss, 0) / 3;
    expect(first).toBeGreaterThan(3.5); // about ln 83 from scratch
    expect(last).toBeLessThan(0.7 * first);
    expect(history.every((s) => Number.isFinite(s.gradNorm))).toBe(true);
    expect(history[0].lr).toBeCloseTo(3e-3 / 5, 10);
    const parameters = [...model.parameters().values()];
    expect(parameters.some((p) => p.requiresGrad || p.grad !== null)).toBe(false); // back to inference, no gradients held
    for (const p of parameters) p.dispose();
    await expect(sft(model, [], { steps: 1, batchSize: 1 })).rejects.toThrow(/at least one example/);
    await expect(sft(model, examples, { steps: 0, batchSize: 1 })).rejects.toThrow(/positive integers/);
  } finally {
    model.dispose();
  }
});

describe('prefix-rl sft', () => {
  let stdout: string[];
  beforeEach(() => {
    stdout = captureStdout();
    jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  });
  afterEach(() => jest.restoreAllMocks());

  test('trains a new model from a config and writes a loadable checkpoint with its tokenizer', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-sft-'));
    try {
      await writeJsonl(join(tmp, 'sft.jsonl'), makeSftRecords(1, 8, { minDepth: 2, maxDepth: 3 }));
      const args = ['--data', join(tmp, 'sft.jsonl'), '--init-config', 'configs/models/task-qwen3-0.8m.json'];
      await main(['sft', ...args, '--tokenizer', 'fixtures/task-tokenizer', '--out', join(tmp, 'model'), '--steps', '3', '--batch-size', '4']);
      const summary = JSON.parse(stdout.join('').trim()) as { steps: number; examples: number; loss: number };
      expect(summary).toMatchObject({ steps: 3, examples: 8 });
      expect(Number.isFinite(summary.loss)).toBe(true);
      expect(existsSync(join(tmp, 'model', 'model', 'tokenizer.json'))).toBe(true);
      const model = await loadModel(join(tmp, 'model', 'model'));
      expect(model.config.hiddenSize).toBe(128);
      model.dispose();
      await expect(main(['sft', ...args, '--out', join(tmp, 'x')])).rejects.toThrow(/--init-config needs --tokenizer/);
      // A malformed --init-config names the file and where its JSON breaks.
      await writeFile(join(tmp, 'broken.json'), '{\n  "model_type": "qwen3",\n  "hidden_size": 64,,\n}\n');
      const broken = ['--data', join(tmp, 'sft.jsonl'), '--init-config', join(tmp, 'broken.json'), '--tokenizer', 'fixtures/task-tokenizer'];
      await expect(main(['sft', ...broken, '--out', join(tmp, 'y')])).rejects.toThrow(/broken\.json: not valid JSON \(.*\(line 3, column 21\)/);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
