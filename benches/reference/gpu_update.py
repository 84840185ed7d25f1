#!/usr/bin/env python3
"""PyTorch reference for `gpu_check update` (examples/gpu_check.rs): one GRPO-style actor update of a
random-weight Qwen3 with Qwen3-0.6B's shape, bf16 on CUDA: response log-probs through the decoder and LM
head at temperature 1, PPO clipped surrogate (clip 0.2 / 0.28) with token-mean over the global token count,
backward, global grad-norm clip 1.0, torch.optim.AdamW (lr 1e-6, betas 0.9/0.999, eps 1e-8, wd 0.01), on
`sequences` × (`prompt-len` + `response-len`) tokens with the Rust side's token ids and advantages and
on-policy old log-probs. Plain bf16 parameters and AdamW moments (as the Rust side), SDPA attention, no
gradient checkpointing, no torch.compile; the `[tokens, V]` log-softmax is kept for backward (the Rust side
recomputes it chunk by chunk).

Pinned: the GPU image's torch 2.11 + transformers 5.x; also runs on torch 2.5.1 + transformers 4.57. Run by
scripts/gpu-check.sh; standalone:

    python3 benches/reference/gpu_update.py
    python3 benches/reference/gpu_update.py --device cpu --dtype f32 --layers 2 --vocab 4096 --hidden 128 \
        --inter 384 --heads 4 --kv-heads 2 --head-dim 32 --sequences 4 --prompt-len 8 --response-len 24

Prints one JSON line: seconds per timed step (after one warm-up step), the warm-up step's entropy (token
mean), pg loss and pre-clip grad norm, torch's allocator peaks (`max_memory_allocated`/`reserved`), and the
peak of nvidia-smi's whole-GPU `memory.used` over the run, the measure the Rust side reports (RSS on CPU).
"""
import argparse
import json
import resource
import subprocess
import threading
import time

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

CLIP_LOW, CLIP_HIGH, LR = 0.2, 0.28, 1e-6


class NvidiaSmiProbe:
    """Whole-GPU memory.used (bytes) sampled every 100 ms by `nvidia-smi -lms 100`, as examples/common/mod.rs."""

    def __init__(self):
        self.readings = []
        try:
            self.proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0", "-lms", "100"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self.proc = None
            return
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(0.3)  # baseline reading before the run allocates

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.readings.append(int(line.strip()) << 20)
            except ValueError:
                pass

    def finish(self):
        if self.proc is None:
            return None
        time.sleep(0.25)
        self.proc.kill()
        self.proc.wait()
        self.thread.join(timeout=1)
        if not self.readings:
            return None
        return {"peak_bytes": max(self.readings), "baseline_bytes": self.readings[0],
                "delta_gib": (max(self.readings) - self.readings[0]) / 2**30, "samples": len(self.readings)}


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
    return model.to(dtype)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    p = argparse.ArgumentParser()
    shape_args(p)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    p.add_argument("--sequences", type=int, default=8)
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--response-len", type=int, default=896)
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=2)
    a = p.parse_args()
    device = torch.device(a.device)
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[a.dtype]
    probe = NvidiaSmiProbe() if device.type == "cuda" else None
    model = make_model(a, device, dtype)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

    # The Rust side's batch: ids ((seq·7919 + t·104729 + salt) mod V), advantages 1, −0.5, −0.5, 1, …
    def ids(seq, n, salt):
        return [(seq * 7919 + t * 104729 + salt) % a.vocab for t in range(n)]

    seqs = [(ids(i, a.prompt_len, 1), ids(i, a.response_len, 17), 1.0 if i % 3 == 0 else -0.5)
            for i in range(a.sequences)]
    n_tok = a.sequences * a.response_len
    width = a.prompt_len + a.response_len - 1  # inputs: prompt ++ response minus its last token

    def pack(chunk):
        inp = torch.tensor([(pr + rs)[:width] for pr, rs, _ in chunk], device=device)
        targets = torch.tensor([rs for _, rs, _ in chunk], device=device)  # [b, R]
        adv = torch.tensor([[adv] * a.response_len for _, _, adv in chunk], device=device, dtype=torch.float32)
        return inp, targets, adv

    micro = [pack(seqs[i:i + a.micro_batch]) for i in range(0, len(seqs), a.micro_batch)]

    def response_logprobs(inp, targets):
        hidden = model.model(input_ids=inp).last_hidden_state[:, a.prompt_len - 1:]  # [b, R, d]
        lp = torch.log_softmax(model.lm_head(hidden), -1)  # [b, R, V], in the model dtype (as the Rust side)
        return lp, lp.gather(-1, targets[..., None])[..., 0]

    with torch.no_grad():
        old = [response_logprobs(inp, targets)[1] for inp, targets, _ in micro]

    def step():
        entropy_sum, pg_sum = 0.0, 0.0
        for (inp, targets, adv), old_lp in zip(micro, old):
            lp, logp = response_logprobs(inp, targets)
            ratio = torch.exp(torch.clamp(logp - old_lp, -20.0, 20.0))
            pg = torch.maximum(-adv * ratio, -adv * torch.clamp(ratio, 1 - CLIP_LOW, 1 + CLIP_HIGH))
            loss = pg.sum() / n_tok  # token-mean over the global token count
            loss.backward()
            with torch.no_grad():
                entropy_sum += -(lp.exp() * lp).sum().item()
            pg_sum += loss.item()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return entropy_sum / n_tok, pg_sum, grad_norm

    entropy, pg_loss, grad_norm = step()  # warm-up (and correctness column)
    times = []
    for _ in range(a.steps):
        sync(device)
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    out = {"step_s": times, "mean_s": sum(times) / len(times), "entropy": entropy, "pg_loss": pg_loss,
           "grad_norm": grad_norm, "dtype": a.dtype, "device": str(device), "tokens": a.sequences * (width + 1),
           "torch": torch.__version__}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name()
        out["max_memory_allocated"] = torch.cuda.max_memory_allocated()
        out["max_memory_reserved"] = torch.cuda.max_memory_reserved()
        out["nvidia_smi"] = probe.finish()
    else:
        out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
