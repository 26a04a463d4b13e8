// RL experiment configs: defaults per algorithm, the YAML files in configs/rl, overrides, and clear errors.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRlConfig, resolveRlConfig, RL_PRESET_NAMES } from '../lib/config/rl.js';
import { deepMerge, parseSetting } from '../lib/config/common.js';

test('defaults follow the released code, per algorithm', () => {
  const distrl = resolveRlConfig({ algorithm: 'distrl' });
  expect(distrl.actor).toMatchObject({
    clipRatioLow: 0.2,
    clipRatioHigh: 0.28,
    clipRatioC: 3,
    cliprangeTopk: 0.2,
    policyLosses: { 'tok-ppo': 1, 'dist-ppo': 0.1 },
    candidateTopK: 5,
    candidateMinP: 0.1,
  });
  expect(distrl.rewardModel).toMatchObject({ beta: 10, margin: 5, useAdb: true, useDlw: true, update: 'before', reference: 'old', maxGradNorm: 10 });
  expect(distrl.advantage).toMatchObject({ rewardGtCoef: 1, rewardGaeCoef: 0.05, gamma: 1, lam: 1 });
  const prime = resolveRlConfig({ algorithm: 'prime' });
  expect(prime.actor.clipRatioHigh).toBe(0.2);
  expect(prime.actor.entropyCoeff).toBe(0.001); // prime_trainer.yaml
  expect(prime.advantage.rewardGtCoef).toBe(5);
  expect(prime.rewardModel.lr).toBe(1e-6);
  expect(distrl.rewardModel.lr).toBe(2e-6);
  expect(distrl.actor.entropyCoeff).toBe(0); // computed, then overwritten, in the released code
  expect(prime.rewardModel).toMatchObject({ beta: 0.05, reference: 'frozen' });
  expect(resolveRlConfig({ algorithm: 'prime', actor: { clipRatioHigh: 0.3 } }).actor.clipRatioHigh).toBe(0.3);
  // The paper's eq. 13 adds the GAE term without a coefficient.
  expect(resolveRlConfig({ algorithm: 'distrl', conventions: 'paper' }).advantage.rewardGaeCoef).toBe(1);
});

test('every config in configs/rl loads, and every preset has one for the controlled task and one at full size', async () => {
  const dir = join(process.cwd(), 'configs/rl');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml'));
  for (const preset of RL_PRESET_NAMES) expect(files).toEqual(expect.arrayContaining([`${preset}.yaml`, `${preset}-reference.yaml`]));
  for (const file of files) {
    const config = await loadRlConfig(join(dir, file));
    expect(file.replace(/(-reference)?\.yaml$/, '')).toBe(config.algorithm);
  }
});

test('--set refuses key paths that would reach an object prototype', () => {
  for (const setting of ['__proto__.x=1', 'actor.constructor.x=1', 'a..b=1', 'rollout.prototype=2']) {
    expect(() => parseSetting(setting)).toThrow(/bad key path/);
  }
  expect(({} as Record<string, unknown>).x).toBeUndefined();
  expect(parseSetting('actor.lr=1e-5')).toEqual({ actor: { lr: 1e-5 } });
});

test('bad configs name every bad key', async () => {
  expect(() => resolveRlConfig({ algorithm: 'ppo' })).toThrow(/algorithm/);
  expect(() => resolveRlConfig({ algorithm: 'grpo', actor: { lr: -1, lrr: 1 } })).toThrow(/actor\.lr.*|.*lrr/);
  expect(() => resolveRlConfig({ algorithm: 'grpo', rollout: { samples: 1 } })).toThrow(/rollout\.samples/);
  expect(() => resolveRlConfig({ algorithm: 'grpo', actor: { candidateMinP: 1 } })).toThrow(/candidateMinP/);
  // The implicit reward is defined at temperature 1; GRPO alone samples at any temperature.
  expect(() => resolveRlConfig({ algorithm: 'distrl', rollout: { temperature: 0.8 } })).toThrow(/rollout\.temperature must be 1 for distrl/);
  expect(resolveRlConfig({ algorithm: 'grpo', rollout: { temperature: 0.8 } }).rollout.temperature).toBe(0.8);
  const tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-config-'));
  try {
    await expect(loadRlConfig(join(tmp, 'missing.yaml'))).rejects.toThrow(/cannot read config/);
    await writeFile(join(tmp, 'list.yaml'), '- 1\n- 2\n');
    await expect(loadRlConfig(join(tmp, 'list.yaml'))).rejects.toThrow(/must be a mapping/);
    await writeFile(join(tmp, 'broken.yaml'), 'algorithm: [grpo\n');
    await expect(loadRlConfig(join(tmp, 'broken.yaml'))).rejects.toThrow(/not valid YAML/);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

test('a --set value that is not YAML names the setting', () => {
  expect(() => parseSetting('steps=[1')).toThrow(/--set steps=\[1: the value is not YAML/);
});

test('overrides: --set paths merge into the file, deepest key wins', async () => {
  expect(parseSetting('actor.lr=1e-5')).toEqual({ actor: { lr: 1e-5 } });
  expect(parseSetting('rewardModel.useAdb=false')).toEqual({ rewardModel: { useAdb: false } });
  expect(() => parseSetting('actor.lr')).toThrow(/key.path=value/);
  const merged = [parseSetting('actor.lr=1e-5'), parseSetting('actor.policyLosses.dist-ppo=0.2')].reduce(deepMerge, {});
  expect(merged).toEqual({ actor: { lr: 1e-5, policyLosses: { 'dist-ppo': 0.2 } } });
  const config = await loadRlConfig(join(process.cwd(), 'configs/rl/distrl.yaml'), { ...merged, steps: 3 });
  expect(config).toMatchObject({ steps: 3, actor: { lr: 1e-5, policyLosses: { 'tok-ppo': 1, 'dist-ppo': 0.2 }, candidateTopK: 5 } });
});

test('presets: each names a registered reward model, estimator and losses, and any of their keys can be overridden', () => {
  const grid: Record<string, [string, string, Record<string, number>]> = {
    grpo: ['none', 'grpo', { 'tok-ppo': 1 }],
    'grpo-dpo': ['dpo-rm', 'grpo-prm', { 'tok-ppo': 1 }],
    'grpo-iprm': ['implicit-prm', 'grpo-prm', { 'tok-ppo': 1 }],
    'grpo-ipvrm': ['ipvrm', 'grpo-prm', { 'tok-ppo': 1 }],
    'distrl-dpo': ['dpo-rm', 'distrl', { 'tok-ppo': 1, 'dist-ppo': 0.1 }],
    'distrl-iprm': ['implicit-prm', 'distrl', { 'tok-ppo': 1, 'dist-ppo': 0.1 }],
    'distrl-ipvrm': ['ipvrm', 'distrl', { 'tok-ppo': 1, 'dist-ppo': 0.1 }],
    distrl: ['ipvrm', 'distrl', { 'tok-ppo': 1, 'dist-ppo': 0.1 }],
    prime: ['implicit-prm', 'prime', { 'tok-ppo': 1 }],
    'prime-original': ['implicit-prm', 'prime-original', { 'tok-ppo': 1 }],
  };
  expect(Object.keys(grid).sort()).toEqual([...RL_PRESET_NAMES].sort());
  for (const [algorithm, [kind, estimator, losses]] of Object.entries(grid)) {
    const config = resolveRlConfig({ algorithm });
    expect([config.rewardModel.kind, config.advantage.estimator, config.actor.policyLosses]).toEqual([kind, estimator, losses]);
  }
  // The online baselines run in the IPVRM release's trainer; PRIME's presets follow its recipe.
  expect(resolveRlConfig({ algorithm: 'grpo-iprm' }).rewardModel).toMatchObject({ implicitPrmLoss: 'online', beta: 10, lr: 2e-6, reference: 'old' });
  expect(resolveRlConfig({ algorithm: 'prime' }).rewardModel).toMatchObject({ implicitPrmLoss: 'ce', update: 'before' });
  expect(resolveRlConfig({ algorithm: 'prime' }).rollout).toMatchObject({ oversample: 4, accuracyBounds: [0.2, 0.8] });
  expect(resolveRlConfig({ algorithm: 'distrl' }).rollout).toMatchObject({ oversample: 2, accuracyBounds: [0.01, 0.99] });
  expect(resolveRlConfig({ algorithm: 'prime-original' }).rewardModel.update).toBe('after');
  // The online-update ablation is configuration.
  const frozen = resolveRlConfig({ algorithm: 'distrl', rewardModel: { update: 'none', useAdb: false, useDlw: false } });
  expect(frozen.rewardModel).toMatchObject({ kind: 'ipvrm', update: 'none', useAdb: false, useDlw: false });
  expect(resolveRlConfig({ algorithm: 'grpo', advantage: { estimator: 'rloo' } }).advantage.estimator).toBe('rloo');
});

test('registry names are checked, and so is how the pieces fit', async () => {
  expect(() => resolveRlConfig({ algorithm: 'ppo' })).toThrow(/unknown preset 'ppo' \(presets: grpo, grpo-dpo/);
  expect(() => resolveRlConfig({})).toThrow(/algorithm: name a preset/);
  expect(() => resolveRlConfig({ algorithm: 'grpo', advantage: { estimator: 'gae2' } })).toThrow(
    /unknown estimator 'gae2' \(registered: distrl, drgrpo, grpo, grpo-prm, prime, prime-original, rloo\)/,
  );
  expect(() => resolveRlConfig({ algorithm: 'grpo', actor: { policyLosses: { gspo: 1 } } })).toThrow(
    /unknown policy loss 'gspo' \(registered: dist-ppo, tok-ppo\)/,
  );
  expect(() => resolveRlConfig({ algorithm: 'distrl', rewardModel: { kind: 'q-rm' } })).toThrow(
    /unknown reward model 'q-rm' \(registered: none, dpo-rm, implicit-prm, ipvrm\)/,
  );
  expect(() => resolveRlConfig({ algorithm: 'grpo', advantage: { estimator: 'distrl' } })).toThrow(
    /reads a reward model's rewards, but rewardModel.kind is none/,
  );
  expect(() => resolveRlConfig({ algorithm: 'grpo-ipvrm', actor: { policyLosses: { 'dist-ppo': 0.1 } } })).toThrow(
    /dist-ppo trains on candidate advantages/,
  );
  expect(() => resolveRlConfig({ algorithm: 'grpo', actor: { policyLosses: { 'tok-ppo': 0 } } })).toThrow(/at least one loss/);
  expect(() => resolveRlConfig({ algorithm: 'grpo', rollout: { accuracyBounds: [0.8, 0.2] } })).toThrow(/accuracyBounds/);
  // The paper's eq. 13 weighs the GAE term 1: a config asking for the paper and setting another weight is refused.
  expect(() => resolveRlConfig({ algorithm: 'distrl', conventions: 'paper', advantage: { rewardGaeCoef: 0.05 } })).toThrow(
    /advantage.rewardGaeCoef 0.05 contradicts conventions: paper/,
  );
  expect(resolveRlConfig({ algorithm: 'distrl', conventions: 'paper', advantage: { rewardGaeCoef: 1 } }).advantage.rewardGaeCoef).toBe(1);
  await expect(loadRlConfig(join(process.cwd(), 'configs/rl/distrl.yaml'), { conventions: 'paper' })).rejects.toThrow(
    /contradicts conventions: paper/,
  );
});
