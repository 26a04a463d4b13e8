// Saves checkpoints and a LoRA adapter with prefix-rl, together with the logits prefix-rl computes from them, so that
// scripts/check_saved_models.py can reload them in transformers/peft and compare. Run that script, not this one.
//
//   node dist/scripts/export-saved-models.js OUT
//
// OUT/<name>/ gets model/ (a full checkpoint, one AdamW step away from the fixture, so that every saved weight differs
// from the fixture's; or an adapter on the tied head merged into it) or adapter/ (a PEFT adapter on the unchanged
// fixture, trained one step so that B ≠ 0; one of them on the head too), and
// expected.json: { base, adapter?, input_ids, attention_mask, logits }.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AdamW, loadModel, type CausalLM } from '../lib/model/index.js';
import { Tensor, tidy } from '../lib/tensor/index.js';

const FIXTURES = join(process.cwd(), 'fixtures', 'models');

interface Inputs {
  input_ids: number[][];
  attention_mask: number[][];
}

const int64 = (rows: number[][]) => Tensor.from(rows.flat().map(BigInt), [rows.length, rows[0].length], { dtype: 'int64' });

async function readInputs(fixture: string): Promise<Inputs> {
  const { input_ids, attention_mask } = JSON.parse(await readFile(join(FIXTURES, fixture, 'reference.json'), 'utf8')) as Inputs;
  return { input_ids, attention_mask };
}

/** One AdamW step on the inputs' negative log-likelihood, over `parameters`. */
async function trainOneStep(model: CausalLM, parameters: Map<string, Tensor>, inputs: Inputs): Promise<void> {
  for (const parameter of parameters.values()) parameter.requiresGrad = true;
  const optimizer = new AdamW(parameters, { lr: 1e-2, weightDecay: 0 });
  await tidy(async () => {
    const logprobs = await model.tokenLogprobs(int64(inputs.input_ids), int64(inputs.attention_mask));
    await logprobs.sum().neg().backwardAsync();
  });
  await optimizer.step();
  await optimizer.zeroGrad();
  for (const parameter of parameters.values()) parameter.dispose();
}

async function writeExpected(dir: string, model: CausalLM, inputs: Inputs, extra: Record<string, string>): Promise<void> {
  const logits = await tidy(async () => (await model.forward(int64(inputs.input_ids), int64(inputs.attention_mask))).toNested());
  await writeFile(join(dir, 'expected.json'), JSON.stringify({ ...extra, ...inputs, logits }));
}

const out = process.argv[2];
if (!out) throw new Error('usage: node dist/scripts/export-saved-models.js OUT');

for (const fixture of ['qwen3-tiny', 'llama-tiny']) {
  const dir = join(out, fixture);
  await mkdir(dir, { recursive: true });
  const inputs = await readInputs(fixture);
  const model = await loadModel(join(FIXTURES, fixture));
  await trainOneStep(model, model.parameters(), inputs);
  // The llama fixture is sharded; a small shard size keeps the saved copy sharded too.
  await model.save(join(dir, 'model'), fixture === 'llama-tiny' ? { maxShardBytes: 64 * 1024 } : {});
  await writeExpected(dir, model, inputs, { model: 'model' });
  model.dispose();
  console.log(`wrote ${dir}`);
}

const loraDir = join(out, 'qwen3-tiny-lora');
await mkdir(loraDir, { recursive: true });
const inputs = await readInputs('qwen3-tiny');
const base = await loadModel(join(FIXTURES, 'qwen3-tiny'));
await base.addLora({ rank: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'], seed: 7 });
await trainOneStep(base, base.loraParameters(), inputs);
await base.saveAdapter(join(loraDir, 'adapter'));
await writeExpected(loraDir, base, inputs, { base: join(FIXTURES, 'qwen3-tiny'), adapter: 'adapter' });
base.dispose();
console.log(`wrote ${loraDir}`);

// An adapter on the tied LM head too, and the checkpoint it merges into (the head untied: lm_head.weight of its own).
const headDir = join(out, 'qwen3-tiny-lora-head');
const mergedDir = join(out, 'qwen3-tiny-lora-head-merged');
await mkdir(headDir, { recursive: true });
await mkdir(mergedDir, { recursive: true });
const head = await loadModel(join(FIXTURES, 'qwen3-tiny'));
await head.addLora({ rank: 4, alpha: 8, targetModules: ['q_proj', 'lm_head'], seed: 8 });
await trainOneStep(head, head.loraParameters(), inputs);
await head.saveAdapter(join(headDir, 'adapter'));
await writeExpected(headDir, head, inputs, { base: join(FIXTURES, 'qwen3-tiny'), adapter: 'adapter' });
await head.mergeAdapter();
await head.save(join(mergedDir, 'model'));
await writeExpected(mergedDir, head, inputs, { model: 'model' });
head.dispose();
console.log(`wrote ${headDir} and ${mergedDir}`);
