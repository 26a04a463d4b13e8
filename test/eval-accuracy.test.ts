// Rollouts and sampled accuracy end to end: a tiny model trained to memorise one controlled-task answer is scored
// right on its prompt and wrong against another ground truth; the rollout and accuracy commands agree.
import { jest } from '@jest/globals';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../lib/cli/main.js';
import { writeJsonl } from '../lib/data/index.js';
import type { RlRecord } from '../lib/data/schemas.js';
import { EVAL_INSTRUCTION, evalProblemRecords, sampledAccuracy } from '../lib/eval/index.js';
import { initModel, type CausalLM } from '../lib/model/index.js';
import { sampleRollouts, verifyRequestFor, type Rollout } from '../lib/rollout/rollouts.js';
import { TASK_SOURCE, makeRlRecords, makeSftRecords } from '../lib/task/index.js';
import { loadTokenizer, type Tokenizer } from '../lib/tokenizer/index.js';
import { sft, sftExample } from '../lib/train/sft.js';
import { lastBoxed, VerifierPool, type VerifyRequest, type VerifyResult } from '../lib/verify/index.js';
import { captureStdout } from './helpers/stdout.js';

const FIXTURE = join(process.cwd(), 'fixtures/models/qwen3-tiny');
let model: CausalLM;
let tokenizer: Tokenizer;
let record: RlRecord;

beforeAll(async () => {
  tokenizer = await loadTokenizer(FIXTURE);
  const [chat] = makeSftRecords(11, 1, { minDepth: 2, maxDepth: 2 });
  // The RL record of the same problem: its prompt, and the boxed answer of the SFT response as ground truth.
  const [template] = makeRlRecords(11, 1);
  record = {
    ...template,
    prompt: [chat.messages[0]],
    reward_model: { ...template.reward_model, ground_truth: lastBoxed(chat.messages[1].content)! },
  };
  model = await initModel(JSON.parse(await readFile(join(FIXTURE, 'config.json'), 'utf8')), { seed: 2, tokenizerFrom: FIXTURE });
  const example = sftExample(tokenizer, chat.messages);
  await sft(model, [example], { steps: 150, batchSize: 2, lr: 1e-2, warmupSteps: 10 });
});
afterAll(() => model?.dispose());

test('a memorised answer scores 1 greedily; the same response against another ground truth scores 0', async () => {
  const right = await sampledAccuracy(model, tokenizer, [record], { temperature: 0, maxNewTokens: 120 });
  expect(right).toEqual({ accuracy: 1, prompts: 1, samples: 1, mixed: 0 });
  const wrongTruth = { ...record, reward_model: { ...record.reward_model, ground_truth: String(Number(record.reward_model.ground_truth) + 1) } };
  const both = await sampledAccuracy(model, tokenizer, [record, wrongTruth], { temperature: 0, maxNewTokens: 120, samples: 2 });
  expect(both).toEqual({ accuracy: 0.5, prompts: 2, samples: 2, mixed: 0 });
  expect(record.data_source).toBe(TASK_SOURCE);
});

test('prefix-rl accuracy prints the report', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-accuracy-'));
  const out = captureStdout();
  try {
    await model.save(join(tmp, 'model'));
    await writeJsonl(join(tmp, 'rl.jsonl'), [record]);
    await main(['accuracy', '--model', join(tmp, 'model'), '--data', join(tmp, 'rl.jsonl'), '--temperature', '0', '--max-new-tokens', '120']);
    expect(JSON.parse(out.join(''))).toEqual({ accuracy: 1, prompts: 1, samples: 1, mixed: 0 });
  } finally {
    jest.restoreAllMocks();
    await rm(tmp, { recursive: true, force: true });
  }
});

test('prefix-rl rollout writes verified rollouts with their tokens', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-rollout-'));
  const out = captureStdout();
  try {
    await model.save(join(tmp, 'model'));
    const wrongTruth = { ...record, reward_model: { ...record.reward_model, ground_truth: '-1' } };
    await writeJsonl(join(tmp, 'rl.jsonl'), [record, wrongTruth]);
    const file = join(tmp, 'rollouts.jsonl');
    await main([
      'rollout',
      '--model',
      join(tmp, 'model'),
      '--data',
      join(tmp, 'rl.jsonl'),
      '--out',
      file,
      '--samples',
      '2',
      '--temperature',
      '0',
      '--max-new-tokens',
      '120',
    ]);
    expect(JSON.parse(out.join(''))).toEqual({ accuracy: 0.5, prompts: 2, samples: 2, mixed: 0, out: file });
    const rollouts = (await readFile(file, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Rollout);
    expect(rollouts.map((r) => [r.prompt_index, r.sample_index, r.score])).toEqual([
      [0, 0, 1],
      [0, 1, 1],
      [1, 0, 0],
      [1, 1, 0],
    ]);
    const [first] = rollouts;
    expect(first.prompt_ids).toEqual(tokenizer.encodeChat(record.prompt, { addGenerationPrompt: true }));
    expect(first.response_ids.at(-1)).toBe(tokenizer.eosTokenId);
    expect(first.finish_reason).toBe('eos');
    expect(first.logprobs).toHaveLength(first.response_ids.length);
    expect(tokenizer.decode(first.response_ids, { skipSpecialTokens: true })).toBe(first.response);
  } finally {
    jest.restoreAllMocks();
    await rm(tmp, { recursive: true, force: true });
  }
});

test('rollouts are judged on the verifier pool by their prompt: the controlled task, code (its tests), or math', async () => {
  const requests: VerifyRequest[] = [];
  class Recording extends VerifierPool {
    override verify(request: VerifyRequest): Promise<VerifyResult> {
      requests.push(request);
      return super.verify(request);
    }
  }
  const tests = JSON.stringify({ inputs: ['3\n'], outputs: ['9\n'] });
  const code: RlRecord = { ...record, data_source: 'taco', ability: 'code', reward_model: { style: 'rule', ground_truth: tests } };
  const math: RlRecord = { ...record, data_source: 'numina_olympiads', ability: 'math' };
  const pool = new Recording({ workers: 1 });
  try {
    const rollouts = await sampleRollouts(model, tokenizer, [record, code, math], { temperature: 0, maxNewTokens: 120, verifier: pool });
    expect(requests.map((r) => r.kind)).toEqual(['controlled', 'code', 'math']);
    expect(requests[1]).toMatchObject({ kind: 'code', tests });
    expect(requests[2]).toMatchObject({ kind: 'math', groundTruth: record.reward_model.ground_truth });
    // The memorised arithmetic answer is right for its own row and, read as math, for the same ground truth; it is
    // no program, so the code row fails.
    expect(rollouts.map((r) => r.score)).toEqual([1, 0, 1]);
  } finally {
    await pool.close();
  }
  expect(verifyRequestFor(code, 'x')).toEqual({ kind: 'code', response: 'x', tests });
  // A custom reward replaces the verifier: nothing is verified.
  requests.length = 0;
  const unused = new Recording({ workers: 1 });
  const scored = await sampleRollouts(model, tokenizer, [record], {
    temperature: 0,
    maxNewTokens: 4,
    verifier: unused,
    reward: (r) => r.response_ids.length,
  });
  await unused.close();
  expect(scored[0].score).toBe(scored[0].response_ids.length);
  expect(requests).toHaveLength(0);
  // A ground truth its verifier cannot read is an error naming the prompt, not a score of 0.
  const unreadable: RlRecord = { ...record, reward_model: { style: 'rule', ground_truth: 'thirty-two' } };
  await expect(sampleRollouts(model, tokenizer, [record, unreadable], { temperature: 0, maxNewTokens: 4 })).rejects.toThrow(
    /prompt 1 \(.*\) could not be verified: ground truth is not an integer: "thirty-two"/,
  );
});

test('prefix-rl eval: avg@k and pass@k per benchmark file, RL or eval layout, and their average', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-eval-'));
  const out = captureStdout();
  jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    await model.save(join(tmp, 'model'));
    await writeJsonl(join(tmp, 'task.jsonl'), [record]);
    // Eval-layout problems in the tiny tokenizer's alphabet (letters, digits, a little punctuation).
    const math = join(tmp, 'primes.jsonl');
    await writeJsonl(math, [
      { problem: 'What is the largest prime below 100?', answer: '97' },
      { problem: 'How many primes lie below 20?', answer: '8' },
      { problem: 'What is 17 times 3?', answer: '51' },
    ]);
    const args = ['eval', '--model', join(tmp, 'model'), '--data', join(tmp, 'task.jsonl'), math, '--temperature', '0', '--samples', '2'];
    await main([...args, '--max-new-tokens', '120']);
    const report = JSON.parse(out.join(''));
    expect(report.benchmarks).toEqual([
      { name: 'task', prompts: 1, samples: 2, accuracy: 1, passAtK: 1 },
      { name: 'primes', prompts: 3, samples: 2, accuracy: 0, passAtK: 0 }, // a tiny arithmetic model
    ]);
    expect(report.average).toBeCloseTo(0.5, 12);
    // MATH-500's LaTeX is outside that alphabet: the prompt is refused, naming the character, not encoded without it.
    const math500 = join(process.cwd(), 'fixtures/data/math500.jsonl');
    await expect(main(['eval', '--model', join(tmp, 'model'), '--data', math500, '--samples', '1', '--max-new-tokens', '4'])).rejects.toThrow(
      /character ".*" \(U\+[0-9A-F]{4}\) at index \d+ is not in this tokenizer's vocabulary/,
    );
    // Bad files are named before any model loads.
    await writeFile(join(tmp, 'no-answer.jsonl'), '{"problem": "What is 1 + 1?"}\n');
    await expect(main(['eval', '--model', join(tmp, 'missing'), '--data', join(tmp, 'no-answer.jsonl')])).rejects.toThrow(
      /no-answer.jsonl:1: .*answer/,
    );
    await writeFile(join(tmp, 'other.jsonl'), '{"text": "hello"}\n');
    await expect(main(['eval', '--model', join(tmp, 'missing'), '--data', join(tmp, 'other.jsonl')])).rejects.toThrow(
      /other.jsonl: its first row is neither an eval row/,
    );
  } finally {
    jest.restoreAllMocks();
    await rm(tmp, { recursive: true, force: true });
  }
});

test('eval-layout problems become RL prompts with the answer as ground truth and the instruction after a blank line', () => {
  const [row] = evalProblemRecords([{ problem: 'What is 2 + 2?', answer: '4', id: 'p1' }], 'math500');
  expect(row).toEqual({
    data_source: 'math500',
    prompt: [{ role: 'user', content: `What is 2 + 2?\n\n${EVAL_INSTRUCTION}` }],
    ability: 'math',
    reward_model: { style: 'rule', ground_truth: '4' },
    extra_info: { id: 'p1' },
  });
  expect(evalProblemRecords([{ problem: 'x', answer: '1' }], 's', '')[0].prompt[0].content).toBe('x');
});
