// rollout.sync vllm-lora against a stand-in for vLLM's HTTP API (its /v1/models, its LoRA endpoints as vLLM answers
// them — plain text on success, 400 for a name already loaded — and a /v1/completions that returns fixed tokens): a
// run resumed after an interrupted attempt clears what that attempt left (its adapter still loaded, its weights
// folder) and touches nothing of another run's, and a finished run leaves no adapter loaded.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveRlConfig } from '../lib/config/rl.js';
import { loadModel } from '../lib/model/index.js';
import { trainRl } from '../lib/train/rl.js';
import { makeRlRecords } from '../lib/task/index.js';
import { loadTokenizer } from '../lib/tokenizer/index.js';

const FIXTURE = join(process.cwd(), 'fixtures/models/qwen3-tiny');

/** vLLM's behaviour where the trainer depends on it; `adapters` is what it has loaded (name → path). */
function fakeVllm(adapters: Map<string, string>): Promise<{ server: Server; url: string; log: string[] }> {
  const log: string[] = [];
  const body = async (request: IncomingMessage) => {
    let text = '';
    for await (const chunk of request) text += chunk;
    return JSON.parse(text || '{}');
  };
  const server = createServer(async (request, response) => {
    const send = (status: number, answer: unknown) => {
      response.writeHead(status, { 'content-type': typeof answer === 'string' ? 'text/plain' : 'application/json' });
      response.end(typeof answer === 'string' ? answer : JSON.stringify(answer));
    };
    const error = (status: number, message: string) => send(status, { error: { message, type: 'BadRequestError', code: status } });
    const path = request.url ?? '';
    if (request.method === 'GET' && path === '/v1/models')
      return send(200, { data: [{ id: 'base' }, ...[...adapters.keys()].map((id) => ({ id }))] });
    const input = await body(request);
    log.push(`${path} ${input.lora_name ?? input.model}`);
    if (path === '/v1/load_lora_adapter') {
      if (adapters.has(input.lora_name)) return error(400, `The lora adapter '${input.lora_name}' has already been loaded.`);
      if (!existsSync(join(input.lora_path, 'adapter_config.json'))) return error(400, `no adapter in ${input.lora_path}`);
      adapters.set(input.lora_name, input.lora_path);
      return send(200, `Success: LoRA adapter '${input.lora_name}' added successfully.`);
    }
    if (path === '/v1/unload_lora_adapter') {
      if (!adapters.delete(input.lora_name)) return error(404, `The lora adapter '${input.lora_name}' cannot be found.`);
      return send(200, `Success: LoRA adapter '${input.lora_name}' removed successfully.`);
    }
    if (path === '/v1/completions') {
      if (!adapters.has(input.model)) return error(404, `The model '${input.model}' does not exist.`);
      const choices = Array.from({ length: input.n }, (_, index) => ({
        index,
        finish_reason: 'length',
        token_ids: Array.from({ length: input.max_tokens }, (_, t) => 10 + ((index + t) % 5)),
        logprobs: null,
      }));
      return send(200, { choices });
    }
    error(404, `no route ${path}`);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, log })),
  );
}

test('a resumed vllm-lora run clears its interrupted attempt and leaves no adapter behind; another run is untouched', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-vllm-sync-'));
  // What an interrupted attempt of run 'r1' left (its step-0 adapter loaded, a weights folder), and another run's.
  const adapters = new Map([
    ['policy-r1-step-000000', '/gone'],
    ['policy-other-step-000003', '/elsewhere'],
  ]);
  await mkdir(join(tmp, 'sync/r1/step-000004'), { recursive: true });
  await mkdir(join(tmp, 'sync/other/step-000003'), { recursive: true });
  const { server, url, log } = await fakeVllm(adapters);
  const policy = await loadModel(FIXTURE);
  try {
    const config = resolveRlConfig({
      algorithm: 'grpo',
      steps: 2,
      rollout: {
        promptsPerStep: 2,
        samples: 2,
        oversample: 1,
        maxNewTokens: 3,
        engine: 'openai',
        url,
        sync: 'vllm-lora',
        syncDir: join(tmp, 'sync'),
      },
      actor: { lr: 1e-2, microBatch: 4, lora: { rank: 2, alpha: 4 } },
    });
    const tokenizer = await loadTokenizer(FIXTURE);
    const history = await trainRl({ policy }, tokenizer, makeRlRecords(0, 4), config, {
      reward: (rollout) => rollout.sample_index % 2,
      rolloutRunId: 'r1',
    });
    expect(history).toHaveLength(2);
    // Each step's adapter loaded under the run's name, the one before unloaded; the left-over one first.
    expect(log.filter((line) => !line.startsWith('/v1/completions'))).toEqual([
      '/v1/unload_lora_adapter policy-r1-step-000000',
      '/v1/load_lora_adapter policy-r1-step-000000',
      '/v1/load_lora_adapter policy-r1-step-000001',
      '/v1/unload_lora_adapter policy-r1-step-000000',
      '/v1/unload_lora_adapter policy-r1-step-000001',
    ]);
    // Each step samples (one request per prompt) from the adapter it just loaded.
    expect([...new Set(log.filter((line) => line.startsWith('/v1/completions')))]).toEqual([
      '/v1/completions policy-r1-step-000000',
      '/v1/completions policy-r1-step-000001',
    ]);
    expect([...adapters.keys()]).toEqual(['policy-other-step-000003']);
    // The run's folder holds only the current step's weights; the other run's are where they were.
    expect(await readdir(join(tmp, 'sync/r1'))).toEqual(['step-000001']);
    expect(await readdir(join(tmp, 'sync/other'))).toEqual(['step-000003']);
  } finally {
    policy.dispose();
    server.close();
    await rm(tmp, { recursive: true, force: true });
  }
});
