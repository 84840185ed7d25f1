#!/usr/bin/env python3
"""PyTorch reference for examples/bench_rollout.rs: HF transformers `generate(num_return_sequences=n)` with
Qwen3-0.6B's shape and random weights, f32, temperature 1 (no top-k/top-p), left-padded prompts, all cores.

Pinned: torch==2.5.1, transformers==4.57.*. Prints one JSON line: generated tokens (up to each sample's
stop id) and seconds.
"""
import argparse
import json
import os
import time

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

VOCAB = 151936


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--case", default="stops")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--layers", type=int, default=28)
    p.add_argument("--prompt-lens", default="32,64,96,128")
    p.add_argument("--stop-stride", type=int, default=128)
    a = p.parse_args()
    torch.set_num_threads(os.cpu_count())
    config = Qwen3Config(vocab_size=VOCAB, hidden_size=1024, intermediate_size=3072, num_hidden_layers=a.layers,
                         num_attention_heads=16, num_key_value_heads=8, head_dim=128, rope_theta=1e6,
                         tie_word_embeddings=True, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).eval()
    lens = [int(x) for x in a.prompt_lens.split(",")]
    width = max(lens)
    pad = VOCAB - 1
    ids = torch.full((len(lens), width), pad)
    mask = torch.zeros((len(lens), width), dtype=torch.long)
    for row, n in enumerate(lens):
        ids[row, width - n:] = torch.tensor([(row * 7919 + i * 104729) % VOCAB for i in range(n)])
        mask[row, width - n:] = 1
    stops = list(range(0, VOCAB, a.stop_stride)) if a.case == "stops" else None
    with torch.inference_mode():
        model.generate(ids[:1, -2:], attention_mask=mask[:1, -2:], max_new_tokens=2, do_sample=False,
                       pad_token_id=pad)  # warm-up
        t0 = time.perf_counter()
        out = model.generate(ids, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                             num_return_sequences=a.n, max_new_tokens=a.max_tokens, eos_token_id=stops,
                             pad_token_id=pad)
        seconds = time.perf_counter() - t0
    gen = out[:, width:]
    stop_set = set(stops or [])
    tokens = 0
    for row in gen.tolist():
        for i, t in enumerate(row):
            tokens += 1
            if t in stop_set:
                break
    print(json.dumps({"tokens": tokens, "seconds": seconds, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
