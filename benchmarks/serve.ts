// Served generation throughput on this CPU: `prefix-rl serve` (in this process, over loopback HTTP) with 1 client
// sending requests one after another and with 16 concurrent clients, against the same sampling through the library
// (one prompt per call, and 16 prompts in one call). Every request samples `--tokens` new tokens (ignore_eos), so
// the counts are equal; tokens/s counts new tokens only.
// Run: npm run bench:serve [-- --hidden=512 --layers=6 --tokens=64 --requests=16]
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { initModel, type CausalLM } from '../lib/model/index.js';
import { ModelServer } from '../lib/serve/index.js';
import { loadTokenizer } from '../lib/tokenizer/index.js';
import { qwen3Shaped } from './qwen3-shape.js';

const flag = (name: string, fallback: string) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback);
const [hidden, layers, tokens, requests] = [flag('hidden', '512'), flag('layers', '6'), flag('tokens', '64'), flag('requests', '16')];
const FIXTURE = join(process.cwd(), 'fixtures/models/qwen3-tiny'); // its tokenizer (vocabulary 83)

const dir = await mkdtemp(join(tmpdir(), 'prefix-rl-bench-serve-'));
const config = qwen3Shaped({ hidden, layers, vocab: 83, maxPositions: 1024 });
const model: CausalLM = await initModel(config, { seed: 1, tokenizerFrom: FIXTURE });
await model.save(join(dir, 'model'));
const tokenizer = await loadTokenizer(FIXTURE);
const prompts = Array.from({ length: requests }, (_, i) =>
  tokenizer.encodeChat([{ role: 'user', content: `Compute ${i} +${i + 1} step by step.` }], { addGenerationPrompt: true }),
);

const rate = async (run: () => Promise<number>) => {
  await run(); // warm-up
  const start = performance.now();
  const produced = await run();
  return produced / ((performance.now() - start) / 1000);
};
const library1 = await rate(async () => {
  let n = 0;
  for (const prompt of prompts) n += (await model.generate([prompt], { maxNewTokens: tokens, eosTokenIds: [], seed: 1 }))[0].tokens.length;
  return n;
});
const library16 = await rate(async () =>
  (await model.generate(prompts, { maxNewTokens: tokens, eosTokenIds: [], seed: 1 })).reduce((a, g) => a + g.tokens.length, 0),
);
model.dispose();

const server = await ModelServer.start({ model: join(dir, 'model'), port: 0 });
const ask = async (prompt: number[]) => {
  const response = await fetch(`${server.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: tokens, ignore_eos: true }),
  });
  return ((await response.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens;
};
const served1 = await rate(async () => {
  let n = 0;
  for (const prompt of prompts) n += await ask(prompt);
  return n;
});
const batchesBefore = server.sampler.batches;
const served16 = await rate(async () => (await Promise.all(prompts.map(ask))).reduce((a, x) => a + x, 0));
const batches = (server.sampler.batches - batchesBefore) / 2;
await server.close();
await rm(dir, { recursive: true, force: true });

console.log(`Served generation throughput, ${cpus()[0].model.trim()}, ${cpus().length} threads`);
console.log(`model: Qwen3-shaped, hidden ${hidden}, ${layers} layers, V = 83 (random weights); ${requests} requests of ${tokens} new tokens\n`);
console.log('| clients | library (tokens/s) | prefix-rl serve (tokens/s) | served / library |');
console.log('|---|---|---|---|');
console.log(`| 1 (one request at a time) | ${library1.toFixed(0)} | ${served1.toFixed(0)} | ${(served1 / library1).toFixed(2)} |`);
console.log(
  `| ${requests} concurrent (library: one call of ${requests} prompts) | ${library16.toFixed(0)} | ${served16.toFixed(0)} (${batches.toFixed(1)} sampling calls) | ${(served16 / library16).toFixed(2)} |`,
);
