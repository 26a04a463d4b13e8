// The paper's analysis of the TD advantage (§4.3.3): does DistRL's one-step TD at a candidate token say anything
// about the eventual outcome? For each sampled trajectory a truncation point t is drawn at random; π_old's top-K
// next tokens there are the branches; each branch s_t ⊕ y′ is completed once by the policy and verified. Reported:
// the AUC of |V_φ(s_t ⊕ y′)| (the accumulated prefix value β·Σ log π_φ/π_ref) for the branch's outcome, the same for
// the signed V_φ, and the Pearson correlation of TD = β·log π_φ/π_ref(y′ | s_t) with the outcome, over every branch.
import type { RlRecord } from '../data/schemas.js';
import { padBatch, type CausalLM } from '../model/index.js';
import { sampleRollouts, verifyRequestFor } from '../rollout/rollouts.js';
import { Tensor, tidy, type AsyncOptions } from '../tensor/index.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { deriveSeed, Rng } from '../util/rng.js';
import { VerifierPool } from '../verify/pool.js';

export interface TdAnalysisOptions extends AsyncOptions {
  /** Branches per truncation point: π_old's top-K next tokens (the paper: 5). */
  candidates?: number;
  /** β of the implicit reward (IPVRM: 10). */
  beta?: number;
  /** Sampling of the trajectories and of each branch's completion (temperature 1, as π_old samples in RL). */
  temperature?: number;
  /** Most new tokens of a trajectory, and of each branch's completion after its branch token (default 256). */
  maxNewTokens?: number;
  /** Sequences per forward pass and per sampling batch (default 16). */
  batchSize?: number;
  seed?: number;
}

export interface TdBranch {
  prompt: number;
  /** The truncation point: response tokens before the branch token. */
  t: number;
  token: number;
  /** The response tokens through the branch token (its first t + 1 tokens: the trajectory's t, then y′). */
  branch: number[];
  /** β·(log π_φ − log π_ref)(y′ | s_t). */
  td: number;
  /** β·Σ (log π_φ − log π_ref) over the response through y′. */
  prefixValue: number;
  /** The verdict of the branch's one completion. */
  outcome: number;
}

export interface TdAnalysisReport {
  trajectories: number;
  branches: number;
  /** Share of branches whose completion is right. */
  meanOutcome: number;
  /** AUC-ROC of |V_φ(s_t ⊕ y′)| for the outcome (the paper: 0.64), and of the signed V_φ. */
  aucAbsPrefixValue: number;
  aucPrefixValue: number;
  /** Pearson correlation of the TD with the outcome (the paper: 0.0226); NaN when either is constant. */
  pearsonTd: number;
  items: TdBranch[];
}

/** AUC-ROC of `scores` for binary `labels` (1 positive): P(score of a positive > a negative's), ties half. NaN without both classes. */
export function rocAuc(scores: readonly number[], labels: readonly number[]): number {
  const pos = scores.filter((_, i) => labels[i] === 1);
  const neg = scores.filter((_, i) => labels[i] !== 1);
  if (pos.length === 0 || neg.length === 0) return NaN;
  let wins = 0;
  for (const p of pos) for (const n of neg) wins += p > n ? 1 : p === n ? 0.5 : 0;
  return wins / (pos.length * neg.length);
}

/** Pearson's r; NaN when either series is constant. */
export function pearson(x: readonly number[], y: readonly number[]): number {
  const mean = (v: readonly number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const [mx, my] = [mean(x), mean(y)];
  let [sxy, sxx, syy] = [0, 0, 0];
  x.forEach((xi, i) => {
    sxy += (xi - mx) * (y[i] - my);
    sxx += (xi - mx) ** 2;
    syy += (y[i] - my) ** 2;
  });
  return sxx === 0 || syy === 0 ? NaN : sxy / Math.sqrt(sxx * syy);
}

interface PrefixScores {
  /** log p of each sequence's tokens after its first. */
  tokens: number[][];
  /** The candidate next tokens after each sequence and their log p. */
  candidates: number[][];
  logprobs: number[][];
}

/**
 * `model`'s log-probs on each sequence, and at the next position: of the given candidates, or of its own top-K (one
 * pass gives π_old's candidates and, when π_ref is π_old, the reference's log-probs too).
 */
async function scorePrefixes(
  model: CausalLM,
  sequences: readonly number[][],
  next: readonly number[][] | { topK: number },
  batchSize: number,
  signal?: AbortSignal,
): Promise<PrefixScores> {
  const out: PrefixScores = { tokens: [], candidates: [], logprobs: [] };
  for (let start = 0; start < sequences.length; start += batchSize) {
    const batch = sequences.slice(start, start + batchSize);
    await tidy(async () => {
      const { inputIds, attentionMask } = padBatch(batch);
      const logp = (await model.forward(inputIds, attentionMask, { noGrad: true, signal })).logSoftmax(-1);
      batch.forEach((tokens, i) => {
        const row = logp.select(0, i);
        const following = Tensor.from(BigInt64Array.from(tokens.slice(1), BigInt), [tokens.length - 1, 1], { device: model.device });
        out.tokens.push(
          row
            .slice(0, 0, tokens.length - 1)
            .gather(1, following)
            .toNumbers(),
        );
        const last = row.select(0, tokens.length - 1);
        if ('topK' in next) {
          const [values, indices] = last.topk(next.topK);
          out.candidates.push(indices.toNumbers());
          out.logprobs.push(values.toNumbers());
        } else {
          const ids = next[start + i];
          out.candidates.push([...ids]);
          out.logprobs.push(last.indexSelect(0, Tensor.from(BigInt64Array.from(ids, BigInt), [ids.length], { device: model.device })).toNumbers());
        }
      });
    });
  }
  return out;
}

/**
 * The TD analysis on `records` (one trajectory each) with the policy (π_old), the implicit reward model π_φ and its
 * reference π_ref (the policy itself unless given, as π_ref = π_old in the online phase).
 */
export async function analyzeTd(
  models: { policy: CausalLM; rewardModel: CausalLM; reference?: CausalLM },
  tokenizer: Tokenizer,
  records: readonly RlRecord[],
  options: TdAnalysisOptions = {},
): Promise<TdAnalysisReport> {
  const { candidates: K = 5, beta = 10, temperature = 1, maxNewTokens = 256, batchSize = 16, seed = 0, signal } = options;
  if (!(Number.isInteger(K) && K >= 1)) throw new Error('candidates must be a positive integer');
  if (records.length === 0) throw new Error('the TD analysis needs at least one prompt');
  const { policy, rewardModel } = models;
  const reference = models.reference ?? policy;
  const verifier = new VerifierPool();
  try {
    const sampling = { temperature, maxNewTokens, batchSize, signal };
    // 1. One trajectory per prompt (its own verdict is not needed); a truncation point in each response with a token after it.
    const sampled = await sampleRollouts(policy, tokenizer, records, { ...sampling, seed: deriveSeed(seed, 'td-trajectories'), reward: () => 0 });
    const trajectories = sampled.filter((r) => r.response_ids.length >= 2);
    if (trajectories.length === 0) throw new Error('no sampled response has two tokens to truncate between');
    const rng = new Rng(deriveSeed(seed, 'td-truncation'));
    const cuts = trajectories.map((r) => ({ rollout: r, t: Math.floor(rng.next() * (r.response_ids.length - 1)) }));
    const prefixes = cuts.map(({ rollout, t }) => [...rollout.prompt_ids, ...rollout.response_ids.slice(0, t)]);
    // 2. π_old's top-K next tokens at each truncation point; π_φ and π_ref on each prefix: the response's log
    // ratios so far and at each candidate.
    const old = await scorePrefixes(policy, prefixes, { topK: K }, batchSize, signal);
    const tops = old.candidates;
    const rm = await scorePrefixes(rewardModel, prefixes, tops, batchSize, signal);
    const ref = reference === policy ? old : await scorePrefixes(reference, prefixes, tops, batchSize, signal);
    // 3. One completion of each branch, verified. A branch whose token ends the response (an EOS id) is complete as
    // it is: generating on would sample past the end.
    const branches = cuts.flatMap(({ rollout, t }, i) => tops[i].map((token, k) => ({ i, rollout, t, token, k })));
    const ends = new Set(policy.config.eosTokenIds);
    const open = branches.map((branch, b) => ({ ...branch, b })).filter(({ token }) => !ends.has(token));
    const completions: number[][] = branches.map(() => []);
    for (let start = 0; start < open.length; start += batchSize) {
      const batch = open.slice(start, start + batchSize);
      const prompts = batch.map(({ i, token }) => [...prefixes[i], token]);
      const generated = await policy.generate(prompts, { maxNewTokens, temperature, seed: deriveSeed(seed, 'td-completions') + start, signal });
      batch.forEach(({ b }, j) => (completions[b] = generated[j].tokens));
    }
    const outcomes = await Promise.all(
      branches.map(async ({ rollout, t, token }, b) => {
        const response = tokenizer.decode([...rollout.response_ids.slice(0, t), token, ...completions[b]], { skipSpecialTokens: true });
        const result = await verifier.verify(verifyRequestFor(records[rollout.prompt_index], response));
        return result.status === 'pass' ? 1 : 0;
      }),
    );
    const items: TdBranch[] = branches.map(({ i, rollout, t, token, k }, b) => {
      const from = rollout.prompt_ids.length - 1; // entry j scores token j + 1: the response starts at from
      const sofar = rm.tokens[i].slice(from).reduce((a, v, j) => a + v - ref.tokens[i][from + j], 0);
      const td = beta * (rm.logprobs[i][k] - ref.logprobs[i][k]);
      const branch = [...rollout.response_ids.slice(0, t), token];
      return { prompt: rollout.prompt_index, t, token, branch, td, prefixValue: beta * sofar + td, outcome: outcomes[b] };
    });
    const outcome = items.map((x) => x.outcome);
    return {
      trajectories: trajectories.length,
      branches: items.length,
      meanOutcome: outcome.reduce((a, v) => a + v, 0) / items.length,
      aucAbsPrefixValue: rocAuc(
        items.map((x) => Math.abs(x.prefixValue)),
        outcome,
      ),
      aucPrefixValue: rocAuc(
        items.map((x) => x.prefixValue),
        outcome,
      ),
      pearsonTd: pearson(
        items.map((x) => x.td),
        outcome,
      ),
      items,
    };
  } finally {
    await verifier.close();
  }
}
