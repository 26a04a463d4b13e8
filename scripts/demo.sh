#!/usr/bin/env bash
# The demo: the whole pipeline on the controlled arithmetic task, everything under demo-output/ (about 10 minutes on
# 2 cores). Run by `npm run demo` after the TypeScript is compiled; README.md says what each stage measured.
# DEMO_SEED (default 0) seeds every stage; DEMO_OUT (default demo-output) is the folder, which the demo owns: each
# stage replaces its own output there (--overwrite).
set -euo pipefail
cli() { node bin/prefix-rl.js "$@"; }
seed=${DEMO_SEED:-0}
out=${DEMO_OUT:-demo-output}

cli env
# Task data: SFT chats, RL prompts (train and held-out test), ProcessBench-style sets, a character tokenizer.
cli data make-task --out $out/task --overwrite
# SFT of a 0.8M-parameter Qwen3 from random weights (configs/sft/task.yaml: 520 steps, cosine decay).
cli sft --config configs/sft/task.yaml --seed $seed --data $out/task/sft.jsonl --init-config configs/models/task-qwen3-0.8m.json \
  --tokenizer $out/task/tokenizer --out $out/sft --overwrite
# Verified rollouts of the SFT policy: the reward model's training data.
cli rollout --model $out/sft/model --data $out/task/rl.jsonl --samples 5 --max-new-tokens 160 --batch-size 128 --seed $seed \
  --out $out/rollouts.jsonl --overwrite
# An IPVRM reward model trained on one (right, wrong) pair per mixed prompt (configs/rm/ipvrm.yaml).
cli rm train --config configs/rm/ipvrm.yaml --seed $seed --rollouts $out/rollouts.jsonl --model $out/sft/model --out $out/rm-ipvrm --overwrite
# Held-out prompts: the SFT policy's accuracy, and Best-of-N candidates.
cli rollout --model $out/sft/model --data $out/task/rl-test.jsonl --samples 4 --max-new-tokens 160 --batch-size 128 --seed $seed \
  --out $out/test-rollouts-sft.jsonl --overwrite
# The reward model on ProcessBench-style step verification (in-distribution and shifted format) and Best-of-N,
# each beside the SFT model's own likelihood; step scores use coef = β = 10. A table on stderr, JSON beside the model.
cli rm eval --rm $out/rm-ipvrm/model --reference $out/sft/model --coef 10 \
  --processbench $out/task/processbench-indist.jsonl $out/task/processbench.jsonl \
  --bon-rollouts $out/test-rollouts-sft.jsonl --bon-n 1 4 > $out/rm-ipvrm/rm-eval.json
# DistRL from the SFT policy, the IPVRM updated online; held-out avg@4 (T 0.6, top-p 0.95) before, at step 15 and after.
cli rl train --config configs/rl/distrl.yaml --seed $seed --model $out/sft/model --reward-model $out/rm-ipvrm/model \
  --data $out/task/rl.jsonl --eval-data $out/task/rl-test.jsonl --out $out/rl-distrl --overwrite
# One HTML page with every stage's curves and tables (opens offline).
cli report $out/sft $out/rm-ipvrm $out/rl-distrl --title "prefix-rl demo (seed $seed)" --out $out/report.html --overwrite
