#!/usr/bin/env bash
# The demo: the whole pipeline on the controlled arithmetic task, everything under demo-output/ (about 9 minutes on
# 2 cores). Run by `npm run demo` after the TypeScript is compiled; README.md says what each stage measured.
set -euo pipefail
cli() { node bin/prefix-rl.js "$@"; }
out=demo-output

cli env
# Task data: SFT chats, RL prompts (train and held-out test), ProcessBench-style sets, a character tokenizer.
cli data make-task --out $out/task
# SFT of a 0.8M-parameter Qwen3 from random weights.
cli sft --data $out/task/sft.jsonl --init-config configs/models/task-qwen3-0.8m.json --tokenizer $out/task/tokenizer \
  --out $out/sft --steps 520
# Verified rollouts of the SFT policy: the reward model's training data.
cli rollout --model $out/sft --data $out/task/rl.jsonl --samples 5 --max-new-tokens 160 --batch-size 128 --out $out/rollouts.jsonl
# An IPVRM reward model trained on one (right, wrong) pair per mixed prompt.
cli rm train --method ipvrm --rollouts $out/rollouts.jsonl --model $out/sft --out $out/rm-ipvrm
# Held-out prompts: the SFT policy's accuracy, and Best-of-N candidates.
cli rollout --model $out/sft --data $out/task/rl-test.jsonl --samples 4 --max-new-tokens 160 --batch-size 128 \
  --out $out/test-rollouts-sft.jsonl
# The reward model on ProcessBench-style step verification (in-distribution and shifted format) and Best-of-N,
# each beside the SFT model's own likelihood; step scores use coef = β = 10. A table on stderr, JSON in rm-eval.json.
cli rm eval --rm $out/rm-ipvrm --reference $out/sft --coef 10 \
  --processbench $out/task/processbench-indist.jsonl $out/task/processbench.jsonl \
  --bon-rollouts $out/test-rollouts-sft.jsonl --bon-n 1 4 > $out/rm-eval.json
# DistRL from the SFT policy, the IPVRM updated online; held-out avg@4 (T 0.6, top-p 0.95) before, at step 15 and after.
cli rl train --config configs/rl/distrl.yaml --model $out/sft --reward-model $out/rm-ipvrm --data $out/task/rl.jsonl \
  --eval-data $out/task/rl-test.jsonl --out $out/rl-distrl
