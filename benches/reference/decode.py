#!/usr/bin/env python3
"""PyTorch reference for examples/bench_decode.rs: HF transformers Qwen3 with Qwen3-0.6B's shape, random
weights, f32, prefill + greedy KV-cached decode, the same thread count as the Rust side (all cores).

Pinned: torch==2.5.1, transformers==4.57.*. Prints one JSON line per batch size.
"""
import argparse
import json
import os
import time

import torch
from transformers import DynamicCache, Qwen3Config, Qwen3ForCausalLM


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--layers", type=int, default=28)
    p.add_argument("--batch", default="1,8")
    a = p.parse_args()
    torch.set_num_threads(os.cpu_count())
    config = Qwen3Config(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=a.layers,
                         num_attention_heads=16, num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-6,
                         rope_theta=1e6, tie_word_embeddings=True, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).eval()

    def run(batch, prompt_len, new_tokens):
        ids = (torch.arange(batch * prompt_len) * 7919 % config.vocab_size).reshape(batch, prompt_len)
        cache = DynamicCache()
        with torch.inference_mode():
            t0 = time.perf_counter()
            out = model(ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            nxt.tolist()
            prefill = time.perf_counter() - t0
            t0 = time.perf_counter()
            for step in range(new_tokens):
                pos = torch.full((batch, 1), prompt_len + step)
                out = model(nxt, past_key_values=cache, use_cache=True, position_ids=pos)
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
                nxt.tolist()
            decode = time.perf_counter() - t0
        return prefill, decode

    run(1, 8, 2)  # warm-up
    for batch in [int(b) for b in a.batch.split(",")]:
        prefill, decode = run(batch, a.prompt_len, a.new_tokens)
        print(json.dumps({"batch": batch, "prefill_tok_s": batch * a.prompt_len / prefill,
                          "decode_tok_s": batch * a.new_tokens / decode, "threads": torch.get_num_threads()}),
              flush=True)


if __name__ == "__main__":
    main()
