#!/usr/bin/env python3
"""The transformers side of benchmarks/model.ts (run that, not this): makes the benchmark checkpoint and times
transformers' eager PyTorch on it, printing one JSON object.

    python3 benchmarks/model_transformers.py make DIR [--size small|tiny]
    python3 benchmarks/model_transformers.py bench DIR --threads 2 --train-batch 8 --train-seq 256 ... [--dtype bfloat16]

The timed work is what prefix-rl's side does: a training step is forward + token cross-entropy + backward + AdamW
step + zero_grad on a [batch, seq] batch; sampling is generate() with do_sample, a KV cache, prompts of prompt-len
tokens and exactly new-tokens new tokens per row (no EOS). It prints the seconds of each repeat after one warm-up.
With --dtype bfloat16 both run under torch.autocast("cpu", dtype=torch.bfloat16) over the float32 model (PyTorch's
own mixed precision: float32 weights and AdamW, bf16 matrix products).
"""

import contextlib
import argparse
import json
import time

import torch
import transformers
from transformers import Qwen3Config, Qwen3ForCausalLM

# Qwen3 shapes, scaled down: GQA (8 query heads over 4 key/value heads), q/k RMSNorm, tied embeddings.
SIZES = {
    # ~41M parameters, of which 16.4M in the tied embedding.
    "small": dict(vocab_size=32000, hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                  num_key_value_heads=4, head_dim=64),
    # ~2M parameters: a fast smoke run of the benchmark itself.
    "tiny": dict(vocab_size=4096, hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=32),
}


def make(args):
    torch.manual_seed(0)
    config = Qwen3Config(**SIZES[args.size], max_position_embeddings=4096, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = Qwen3ForCausalLM(config)
    model.save_pretrained(args.dir, safe_serialization=True)
    print(json.dumps({"dir": args.dir, "parameters": sum(p.numel() for p in model.parameters())}))


def timed_runs(fn, repeats):
    """Seconds of each of `repeats` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM.from_pretrained(args.dir, dtype=torch.float32)
    vocab = model.config.vocab_size

    # Training step.
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    input_ids = torch.randint(3, vocab, (args.train_batch, args.train_seq))

    def precision():
        if args.dtype == "bfloat16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step():
        with precision():
            loss = model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    train_s = timed_runs(train_step, args.repeats)

    # Sampling.
    model.eval()
    prompts = torch.randint(3, vocab, (args.gen_batch, args.prompt_len))

    def sample():
        with torch.no_grad(), precision():
            out = model.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=True, temperature=1.0,
                                 top_k=0, top_p=1.0, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                 eos_token_id=None, pad_token_id=0, use_cache=True)
        assert out.shape[1] == args.prompt_len + args.new_tokens

    sample_s = timed_runs(sample, args.repeats)
    print(json.dumps({
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attention": model.config._attn_implementation,
        "threads": torch.get_num_threads(),
        "train_step_s": train_s,
        "sample_s": sample_s,
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    make_parser = sub.add_parser("make")
    make_parser.add_argument("dir")
    make_parser.add_argument("--size", choices=SIZES, default="small")
    bench_parser = sub.add_parser("bench")
    bench_parser.add_argument("dir")
    for name, default in [("threads", 2), ("train-batch", 8), ("train-seq", 256), ("gen-batch", 8), ("prompt-len", 32),
                          ("new-tokens", 128), ("repeats", 5)]:
        bench_parser.add_argument(f"--{name}", type=int, default=default)
    bench_parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = parser.parse_args()
    make(args) if args.command == "make" else bench(args)


if __name__ == "__main__":
    main()
