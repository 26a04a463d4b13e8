#!/usr/bin/env python3
"""Writes the tiny model fixtures under fixtures/models/ and their transformers reference outputs.

The TypeScript tests (test/model*.test.ts) load these checkpoints with the native decoder and compare its logits and
log-probs against reference.json, so the fixtures pin our implementation to transformers' Qwen3 and Llama code.

    python3 -m venv /tmp/fixtures-venv
    /tmp/fixtures-venv/bin/pip install torch==2.13.0+cpu transformers peft safetensors
    /tmp/fixtures-venv/bin/python scripts/make_model_fixtures.py            # writes fixtures/models/
    /tmp/fixtures-venv/bin/python scripts/make_model_fixtures.py --only qwen3-tiny-lora-head   # one of them

Outputs (deterministic for a given torch/transformers version):
  qwen3-tiny/       Qwen3, tied embeddings, q/k RMSNorm; one model.safetensors; the task tokenizer
  qwen3-tiny-lora/  a PEFT LoRA adapter for qwen3-tiny (random A and B, so it changes the logits)
  qwen3-tiny-lora-head/  the same on q_proj, v_proj and the (tied) lm_head: PEFT adapts the output projection only
  llama-tiny/       Llama-3 style, untied embeddings, rope_scaling llama3; sharded (model.safetensors.index.json)
Each model folder has reference.json: padded input_ids, attention_mask, position_ids, logits [B, T, V],
logprobs [B, T-1] (log-prob of each token given its prefix; 0 for padding and for each row's first token) and
logits_bf16 (the same model loaded in bfloat16) and greedy (transformers' greedy generate for three prompts); the adapter folder has the logits and log-probs of the base model with
the adapter applied.
"""

import argparse
import json
import shutil
from pathlib import Path

import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

ROOT = Path(__file__).resolve().parent.parent
TASK_TOKENIZER = ROOT / "fixtures" / "task-tokenizer"

# Shared by both models: small enough to keep all fixtures well under 2 MB, large enough to exercise GQA
# (4 query heads share 2 key/value heads) and a head_dim that is not hidden_size / num_heads.
COMMON = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=512,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)

QWEN3 = Qwen3Config(
    **COMMON,
    vocab_size=83,  # the task tokenizer's vocabulary
    intermediate_size=128,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)

# rope_scaling llama3 with a short original context, so that the scaled, smoothed and unscaled frequency bands
# all occur at head_dim 16 and the scaling changes the logits of short inputs.
LLAMA = LlamaConfig(
    **COMMON,
    vocab_size=96,  # larger than the tokenizer, as real checkpoints often are
    intermediate_size=160,
    rope_theta=10_000.0,
    rope_scaling=dict(rope_type="llama3", factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=32),
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)

# Three rows of length 12: full, right-padded (8 tokens) and left-padded (7 tokens); 0 is the pad id.
INPUT_IDS = [
    [1, 20, 31, 7, 45, 12, 66, 9, 33, 80, 5, 2],
    [1, 14, 15, 16, 40, 41, 70, 2, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 1, 50, 51, 52, 3, 61, 2],
]


def padded_inputs():
    input_ids = torch.tensor(INPUT_IDS)
    attention_mask = (input_ids != 0).long()
    attention_mask[:, 0] = torch.tensor([1, 1, 0])  # row 2 starts with padding; rows 0-1 start with <bos>
    # Positions count attended tokens only, so a padded row matches its unpadded sequence (our decoder's rule).
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return input_ids, attention_mask, position_ids


# Prompts of different lengths for greedy generation (left-padded in a batch, as generation needs).
GREEDY_PROMPTS = [[1, 20, 31, 7, 45], [1, 14, 15], [1, 50, 51, 52, 3, 61, 9]]
GREEDY_NEW_TOKENS = 8


def greedy_reference(model: torch.nn.Module) -> dict:
    """transformers' greedy generate; each row's new tokens end at its first EOS (id 2), included."""
    longest = max(len(p) for p in GREEDY_PROMPTS)
    input_ids = torch.tensor([[0] * (longest - len(p)) + p for p in GREEDY_PROMPTS])
    attention_mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in GREEDY_PROMPTS])
    with torch.no_grad():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            do_sample=False,
            max_new_tokens=GREEDY_NEW_TOKENS,
            eos_token_id=2,
            pad_token_id=0,
        )
    rows = []
    for row in out[:, longest:].tolist():
        rows.append(row[: row.index(2) + 1] if 2 in row else row)
    return dict(prompts=GREEDY_PROMPTS, max_new_tokens=GREEDY_NEW_TOKENS, eos_token_id=2, tokens=rows)


def randomize(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Weights far from transformers' init (std 0.02, norms at 1), so that a wrong or swapped tensor shows."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith("norm.weight"):
                param.copy_(1.0 + 0.2 * noise)
            else:
                param.copy_(0.08 * noise)


def reference(model: torch.nn.Module) -> dict:
    input_ids, attention_mask, position_ids = padded_inputs()
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits.float()
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    # A token has a log-prob when it and the token before it are real: the first token of a row has no prefix.
    logprobs = logprobs * attention_mask[:, 1:] * attention_mask[:, :-1]
    return dict(
        input_ids=input_ids.tolist(),
        attention_mask=attention_mask.tolist(),
        position_ids=position_ids.tolist(),
        logits=rounded(logits),
        logprobs=rounded(logprobs),
    )


def rounded(tensor: torch.Tensor):
    """Nested lists with 7 significant digits: exact enough for a 1e-4 comparison, half the JSON size."""
    if tensor.dim() == 0:
        return float(f"{tensor.item():.7g}")
    return [rounded(row) for row in tensor]


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=None, separators=(",", ":")) + "\n")


def copy_tokenizer(out: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TASK_TOKENIZER / name, out / name)


def make_model(cls, config, out: Path, seed: int, max_shard_size: str | None) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    config._attn_implementation = "eager"  # exact fp32 math for the reference
    model = cls(config).eval()
    randomize(model, generator)
    if out.exists():
        shutil.rmtree(out)
    options = dict(safe_serialization=True)
    if max_shard_size:
        options["max_shard_size"] = max_shard_size
    model.save_pretrained(out, **options)
    copy_tokenizer(out)
    # bf16 logits as transformers computes them (sdpa, its default): the native bf16 path should match to an ulp.
    bf16 = cls.from_pretrained(out, dtype=torch.bfloat16, attn_implementation="sdpa").eval()
    outputs = dict(generator=generator_info(), **reference(model), logits_bf16=reference(bf16)["logits"], greedy=greedy_reference(model))
    write_json(out / "reference.json", outputs)
    return model


PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_lora(base: torch.nn.Module, out: Path, seed: int, target_modules: list[str]) -> None:
    generator = torch.Generator().manual_seed(seed)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=target_modules,
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, config).eval()
    randomize_lora(model, generator)
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out, safe_serialization=True)
    (out / "README.md").unlink()  # PEFT's model-card template
    # PEFT writes target_modules from a set, in hash order: sort them so that the file is reproducible.
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    adapter_config["target_modules"] = sorted(adapter_config["target_modules"])
    adapter_config["base_model_name_or_path"] = None  # not the path of the machine that wrote it
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n")
    write_json(out / "reference.json", dict(generator=generator_info(), **reference(model)))


def randomize_lora(model: torch.nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))


def generator_info() -> dict:
    return dict(torch=torch.__version__, transformers=transformers.__version__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "fixtures" / "models")
    parser.add_argument("--only", help="write this fixture alone (the adapters load their base from --out)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    made = {}
    # get_peft_model adapts its base in place: the first adapter sits on the base made in this run (as before --only
    # existed), any other on a fresh one loaded from --out.
    saved_qwen3 = lambda: Qwen3ForCausalLM.from_pretrained(args.out / "qwen3-tiny").eval()  # noqa: E731
    fixtures = {
        "qwen3-tiny": lambda: made.setdefault("qwen3", make_model(Qwen3ForCausalLM, QWEN3, args.out / "qwen3-tiny", seed=1, max_shard_size=None)),
        "llama-tiny": lambda: make_model(LlamaForCausalLM, LLAMA, args.out / "llama-tiny", seed=2, max_shard_size="200KB"),
        "qwen3-tiny-lora": lambda: make_lora(made.pop("qwen3", None) or saved_qwen3(), args.out / "qwen3-tiny-lora", seed=3, target_modules=PROJECTIONS),
        "qwen3-tiny-lora-head": lambda: make_lora(saved_qwen3(), args.out / "qwen3-tiny-lora-head", seed=4, target_modules=["q_proj", "v_proj", "lm_head"]),
    }
    for name, make in fixtures.items():
        if args.only in (None, name):
            make()
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"wrote {args.out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
