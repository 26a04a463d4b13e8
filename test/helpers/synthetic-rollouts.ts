// Outcome-labelled rollouts on the tiny fixture model's tokenizer, for the reward-model tests.
import { join } from 'node:path';
import type { Rollout } from '../../lib/rollout/rollouts.js';
import { makeSftRecords } from '../../lib/task/index.js';
import { loadTokenizer } from '../../lib/tokenizer/index.js';

const FIXTURE = join(process.cwd(), 'fixtures/models/qwen3-tiny');

/**
 * Per prompt: the right response (score 1) and a wrong one (score 0), twice each. The wrong one goes astray at its
 * first step (result off by one) and ends with an answer off by one, so most of its prefixes differ from the right one's.
 */
export async function syntheticRollouts(prompts: number): Promise<Rollout[]> {
  const tokenizer = await loadTokenizer(FIXTURE);
  return makeSftRecords(3, prompts, { minDepth: 2, maxDepth: 2 }).flatMap((record, prompt_index) => {
    const [user, assistant] = record.messages;
    const promptIds = tokenizer.encodeChat([user], { addGenerationPrompt: true });
    const offByOne = (_: string, prefix: string, n: string) => `${prefix}${Number(n) + 1}`;
    const wrong = assistant.content.replace(/(=)(\d+)/, offByOne).replace(/(\\boxed\{)(\d+)/, offByOne);
    return [assistant.content, wrong, assistant.content, wrong].map((response, sample_index): Rollout => ({
      prompt_index,
      sample_index,
      data_source: 'prefix-rl/arith',
      prompt_ids: promptIds,
      response_ids: [...tokenizer.encode(response, { addSpecialTokens: false }), tokenizer.eosTokenId!],
      response,
      logprobs: [],
      finish_reason: 'eos',
      ground_truth: '',
      score: sample_index % 2 === 0 ? 1 : 0,
    }));
  });
}
