#!/usr/bin/env python3
"""Checks that checkpoints and LoRA adapters saved by prefix-rl reload in transformers/peft with equal logits.

    npm run build:ts
    python3 scripts/check_saved_models.py            # (the venv of scripts/make_model_fixtures.py)

It runs `node dist/scripts/export-saved-models.js OUT` (prefix-rl trains each tiny fixture one step, saves it, and
records its logits), then loads every saved checkpoint with transformers' AutoModelForCausalLM and the adapter with
peft's PeftModel on its base, and compares the logits at attended positions (fp32, 1e-4 relative to the largest
logit). Exits non-zero on the first mismatch.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent
RTOL = 1e-4


def load(case: Path, expected: dict) -> torch.nn.Module:
    if "adapter" in expected:
        base = AutoModelForCausalLM.from_pretrained(expected["base"], dtype=torch.float32)
        return PeftModel.from_pretrained(base, case / expected["adapter"])
    return AutoModelForCausalLM.from_pretrained(case / expected["model"], dtype=torch.float32)


def relative_error(model: torch.nn.Module, expected: dict) -> float:
    input_ids = torch.tensor(expected["input_ids"])
    attention_mask = torch.tensor(expected["attention_mask"])
    # prefix-rl counts positions over attended tokens only; give transformers the same positions.
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model.eval()(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    ours = torch.tensor(expected["logits"], dtype=torch.float32)
    attended = attention_mask.bool()
    return (logits[attended] - ours[attended]).abs().max().item() / ours[attended].abs().max().item()


def check(case: Path) -> None:
    expected = json.loads((case / "expected.json").read_text())
    error = relative_error(load(case, expected), expected)
    # The saved weights differ from the fixture's (one training step): the fixture itself must not match, or this
    # check could not tell a saved model from the one it started from.
    fixture = ROOT / "fixtures" / "models" / case.name.split("-lora")[0]  # qwen3-tiny-lora-head(-merged) → qwen3-tiny
    untrained = relative_error(AutoModelForCausalLM.from_pretrained(fixture, dtype=torch.float32), expected)
    ok = error <= RTOL and untrained > 100 * RTOL
    print(f"{case.name}: max relative logit error {error:.2e}; the unsaved fixture's {untrained:.2e} ({'ok' if ok else 'MISMATCH'})")
    if not ok:
        sys.exit(1)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="prefix-rl-saved-") as out:
        subprocess.run(["node", str(ROOT / "dist" / "scripts" / "export-saved-models.js"), out], cwd=ROOT, check=True)
        for case in sorted(Path(out).iterdir()):
            check(case)
    print("every checkpoint and adapter saved by prefix-rl reloads with equal logits")


if __name__ == "__main__":
    main()
