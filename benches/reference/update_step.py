#!/usr/bin/env python3
"""PyTorch reference for crates/laconic-optim/examples/bench_update.rs: one actor update (response
log-probs through the decoder and LM head at temperature 1, GRPO/PPO clipped surrogate with token-mean
over the global token count, backward, global grad-norm clip 1.0, torch.optim.AdamW) on the weights and
batch the Rust side wrote, f32, HF transformers Qwen3 with SDPA attention, the same thread count.

Pinned: torch==2.5.1, transformers==4.57.*. Run by the Rust example (`--python`); standalone:

    scratch/ref/bin/python benches/reference/update_step.py --model-dir DIR/model --batch DIR/batch.json

`--gradient-checkpointing` recomputes each decoder layer's activations in the backward
(`gradient_checkpointing_enable(use_reentrant=False)`), the PyTorch counterpart of recomputing layers on
the Rust side for long sequences.

Prints one JSON line: wall and CPU seconds per timed step (after one warm-up step), the warm-up step's entropy
(token mean), pg loss and pre-clip grad norm, for the correctness column, and the process's peak resident set
size in bytes (`peak_rss_bytes`, from `getrusage`: weights, optimizer state and the largest step's activations,
plus the Python/torch runtime).
"""
import argparse
import json
import os
import resource
import time

import torch
from transformers import Qwen3ForCausalLM

CLIP_LOW, CLIP_HIGH, LR = 0.2, 0.28, 1e-6


def pack(seqs):
    """Right-padded inputs (prompt ++ response minus its last token) and where each response token is read."""
    lengths = [len(s["prompt_ids"]) + len(s["response_ids"]) - 1 for s in seqs]
    width = max(lengths)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    rows, cols, targets, old, adv = [], [], [], [], []
    for b, s in enumerate(seqs):
        full = (s["prompt_ids"] + s["response_ids"])[: lengths[b]]
        ids[b, : lengths[b]] = torch.tensor(full)
        mask[b, : lengths[b]] = 1
        p = len(s["prompt_ids"])
        for k, y in enumerate(s["response_ids"]):
            rows.append(b)
            cols.append(p - 1 + k)
            targets.append(y)
        old += s["old_logprobs"]
        adv += [s["advantage"]] * len(s["response_ids"])
    return (ids, mask, torch.tensor(rows), torch.tensor(cols), torch.tensor(targets),
            torch.tensor(old, dtype=torch.float32), torch.tensor(adv, dtype=torch.float32))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model-dir", required=True)
    p.add_argument("--batch", required=True)
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute decoder-layer activations in the backward (non-reentrant)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = Qwen3ForCausalLM.from_pretrained(a.model_dir, torch_dtype=torch.float32, attn_implementation="sdpa")
    if a.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    seqs = json.load(open(a.batch))
    n_tok = sum(len(s["response_ids"]) for s in seqs)
    micro = [pack(seqs[i:i + a.micro_batch]) for i in range(0, len(seqs), a.micro_batch)]

    def step():
        entropy_sum, pg_sum = 0.0, 0.0
        for ids, mask, rows, cols, targets, old, adv in micro:
            hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state  # [b, T, d]
            lp = torch.log_softmax(model.lm_head(hidden[rows, cols]), -1)  # [n, V]
            logp = lp.gather(-1, targets[:, None])[:, 0]
            entropy = -(lp.exp() * lp).sum(-1)
            ratio = torch.exp(torch.clamp(logp - old, -20.0, 20.0))
            pg = torch.maximum(-adv * ratio, -adv * torch.clamp(ratio, 1 - CLIP_LOW, 1 + CLIP_HIGH))
            loss = pg.sum() / n_tok  # token-mean over the global token count
            loss.backward()
            entropy_sum += entropy.detach().sum().item()
            pg_sum += loss.item()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return entropy_sum / n_tok, pg_sum, grad_norm

    entropy, pg_loss, grad_norm = step()  # warm-up (and correctness column)
    times, cpu = [], []
    for _ in range(a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(json.dumps({"step_s": times, "cpu_s": cpu, "entropy": entropy, "pg_loss": pg_loss, "grad_norm": grad_norm,
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      # ru_maxrss is in KiB on Linux.
                      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}), flush=True)


if __name__ == "__main__":
    main()
