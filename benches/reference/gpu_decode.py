#!/usr/bin/env python3
"""PyTorch reference for `gpu_check decode` (examples/gpu_check.rs): HF transformers `generate` with
Qwen3-0.6B's shape and random weights, bf16 on CUDA, `batch` prompts of `prompt-len` tokens (the same ids as
the Rust side), `new-tokens` greedy (or, with --sample, temperature-1) tokens per row, no stop id, default
dynamic KV cache, SDPA attention, no torch.compile.

Pinned: the GPU image's torch 2.11 + transformers 5.x; also runs on torch 2.5.1 + transformers 4.57 (the CPU
references' pins). Run by scripts/gpu-check.sh; standalone:

    python3 benches/reference/gpu_decode.py --batch 1,64,256
    python3 benches/reference/gpu_decode.py --device cpu --dtype f32 --layers 2 --vocab 4096 --hidden 128 \
        --inter 384 --heads 4 --kv-heads 2 --head-dim 32 --prompt-len 16 --new-tokens 8 --batch 1,4

Prints one JSON line per batch size: `tokens`, `wall_s` (generate, prefill included), `tok_s`, and
`decode_tok_s` = batch·(N−1) / (t(N) − t(1)), where t(1) is a generate of one token (prefill + first token),
the same split as the Rust side; at batch 1 also `roofline_frac` =
(params·bytes/param + mean KV bytes)·decode_tok_s / peak bandwidth.
"""
import argparse
import json
import time

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM


def shape_args(p):
    """The shape flags of examples/common/mod.rs (defaults: Qwen3-0.6B)."""
    p.add_argument("--layers", type=int, default=28)
    p.add_argument("--vocab", type=int, default=151936)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--inter", type=int, default=3072)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=128)


def make_model(a, device, dtype):
    kw = dict(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.inter, num_hidden_layers=a.layers,
              num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, head_dim=a.head_dim, rms_norm_eps=1e-6,
              rope_theta=1e6, tie_word_embeddings=True)
    try:
        config = Qwen3Config(attn_implementation="sdpa", **kw)
    except TypeError:
        config = Qwen3Config(**kw)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen3ForCausalLM(config)
    return model.to(dtype).eval(), config


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    p = argparse.ArgumentParser()
    shape_args(p)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--batch", default="1,64,256")
    p.add_argument("--sample", action="store_true")
    p.add_argument("--peak-gbps", type=float, default=4800.0)
    a = p.parse_args()
    device = torch.device(a.device)
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[a.dtype]
    model, config = make_model(a, device, dtype)
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    params = sum(t.numel() for t in model.parameters())  # tied head counted once
    nbytes = torch.finfo(dtype).bits // 8
    kv_per_token = 2 * a.layers * a.kv_heads * a.head_dim * nbytes
    bytes_per_step = params * nbytes + kv_per_token * (a.prompt_len + a.new_tokens / 2)

    def generate(batch, new_tokens):
        ids = torch.tensor([[(row * 7919 + i * 104729) % a.vocab for i in range(a.prompt_len)]
                            for row in range(batch)], device=device)
        mask = torch.ones_like(ids)
        opts = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0) if a.sample else dict(do_sample=False)
        with torch.inference_mode():
            sync(device)
            t0 = time.perf_counter()
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, **opts)
            sync(device)
            seconds = time.perf_counter() - t0
        assert out.shape == (batch, a.prompt_len + new_tokens), f"generated shape {tuple(out.shape)}"
        return seconds

    for batch in [int(b) for b in a.batch.split(",")]:
        generate(batch, 2)  # warm-up at this batch size
        first = generate(batch, 1)
        wall = generate(batch, a.new_tokens)
        decode_tok_s = batch * (a.new_tokens - 1) / max(wall - first, 1e-9)
        row = {"batch": batch, "tokens": batch * a.new_tokens, "wall_s": wall, "tok_s": batch * a.new_tokens / wall,
               "decode_tok_s": decode_tok_s, "dtype": a.dtype, "device": str(device), "params": params,
               "torch": torch.__version__}
        if batch == 1:
            row["roofline_frac"] = bytes_per_step * decode_tok_s / (a.peak_gbps * 1e9)
        if device.type == "cuda":
            row["gpu"] = torch.cuda.get_device_name()
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
