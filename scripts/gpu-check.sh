#!/usr/bin/env bash
# GPU check (issue 9): laconic on CUDA against PyTorch on the same card, in one run of well under 10 minutes.
#
# Build here (no GPU or CUDA toolkit needed; cudarc loads libcuda/NVRTC at run time, CUDA 13 bindings for
# the GPU machine's driver 580):
#
#   CUDARC_CUDA_VERSION=13000 cargo build --release --features cuda --example gpu_check \
#     && strip target/release/examples/gpu_check
#
# Run on the GPU machine, in the repository root, carrying the binary (the device tool's `carry` path is
# `target/release/examples/gpu_check`; the working tree, fixtures included, travels anyway):
#
#   bash scripts/gpu-check.sh            # device tool: timeout_s 600; results come back from $OUT
#   QUICK=1 bash scripts/gpu-check.sh    # a shorter rerun (64 new tokens, batches 1 and 64, one timed step)
#   SMOKE=1 PYTHON=... bash scripts/gpu-check.sh   # here, on CPU: tiny model, checks the script runs end to end
#
# Steps, each under a timeout cut to what is left of GPU_CHECK_BUDGET_S (default 540 s):
#   1. gpu_check parity f32 and bf16 (tiny fixture checkpoints vs transformers' CPU logits),
#   2. gpu_check decode (Qwen3-0.6B shape, bf16, batch 1/64/256, prompt 128 + 128 new tokens), then
#      benches/reference/gpu_decode.py (transformers generate, same shape, ids and lengths),
#   3. gpu_check update (one RL update step, 8 × 1024 tokens), then benches/reference/gpu_update.py,
#   4. one combined table with ratios ours/reference, and the goals of docs/performance.md.
# Writes parity_f32.json, parity_bf16.json, decode.json, update.json, ref_decode.jsonl, ref_update.jsonl,
# summary.json and gpu-check.log (8 files: the device tool's limit) under $OUT (else scratch/gpu-check).
#
#   5. on a machine with 2 GPUs or more and `mpirun`: the demo config for 3 steps as one rank and as two
#      ranks at ZeRO-1 (NCCL sums the gradients and gathers the parameters on the GPUs), compared metric
#      by metric and on the last checkpoint's weights (the train example built with `--features
#      cuda,mpi`, carried as GPU_TRAIN_BIN, default target/release/examples/train).
# Environment: OUT, GPU_CHECK_BIN (default target/release/examples/gpu_check), PYTHON (default python3),
# PEAK_GBPS (default from the GPU's name: H200 4800, H100 SXM 3350), GPU_CHECK_BUDGET_S, QUICK=1, SMOKE=1,
# CUBECL_AUTOTUNE_LEVEL (cubecl's own knob; unset = balanced).
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=${GPU_CHECK_BIN:-target/release/examples/gpu_check}
RESULTS=${OUT:-scratch/gpu-check}
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET_S:-540}
mkdir -p "$RESULTS"
LOG=$RESULTS/gpu-check.log
: >"$LOG"
say() { echo "$*" | tee -a "$LOG"; }

if [ ! -x "$BIN" ]; then
  say "error: no binary at \`$BIN\` (build and carry it: see the top of $0)"
  exit 2
fi

# Sizes (QUICK=1 for a rerun inside a short device budget; SMOKE=1 for a tiny model on any machine, the
# references on CPU: a check of this script, not a measurement).
SHAPE=()
PY_DEVICE=()
PROMPT_LEN=128
NEW_TOKENS=128
BATCHES=1,64,256
SEQS=8
UPD_PROMPT=128
UPD_RESPONSE=896
MICRO=8
STEPS=2
if [ "${QUICK:-0}" = 1 ]; then
  NEW_TOKENS=64
  BATCHES=1,64
  STEPS=1
fi
if [ "${SMOKE:-0}" = 1 ]; then
  SHAPE=(--layers 2 --vocab 4096 --hidden 128 --inter 384 --heads 4 --kv-heads 2 --head-dim 32)
  PY_DEVICE=(--device cpu)
  PROMPT_LEN=16
  NEW_TOKENS=8
  BATCHES=1,4,8
  SEQS=4
  UPD_PROMPT=8
  UPD_RESPONSE=24
  MICRO=2
fi

# The card and its peak memory bandwidth (GB/s) for the batch-1 roofline.
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader -i 0 2>/dev/null | head -n 1)
case "$GPU" in
  *H200*) PEAK=4800 ;;
  *H100*NVL*) PEAK=3900 ;;
  *H100*PCIe*) PEAK=2000 ;;
  *H100*) PEAK=3350 ;;
  *) PEAK=4800 ;;
esac
PEAK=${PEAK_GBPS:-$PEAK}
say "GPU: ${GPU:-unknown (nvidia-smi failed)}; peak bandwidth ${PEAK} GB/s; budget ${BUDGET} s; new tokens ${NEW_TOKENS}, batches ${BATCHES}"

# cudarc dlopens NVRTC: put a folder holding it on the library path when the loader does not know one.
if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so'; then
  for dir in $(find /usr/local /opt /usr/lib -name 'libnvrtc.so*' 2>/dev/null | xargs -r -n 1 dirname | sort -u); do
    LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  done
  export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
  say "LD_LIBRARY_PATH=${LD_LIBRARY_PATH}"
fi

START=$SECONDS
STATUS=()
# step NAME CAP_S STDOUT_FILE CMD...: runs CMD under min(CAP_S, what is left of the budget); stdout goes
# to STDOUT_FILE when one is given (JSON lines), else to the log, stderr always to the log.
step() {
  local name=$1 cap=$2 stdout=$3
  shift 3
  local left=$((BUDGET - (SECONDS - START) - 10))
  local limit=$((cap < left ? cap : left))
  if [ "$limit" -lt 20 ]; then
    say "== $name: skipped (budget spent)"
    STATUS+=("$name=skipped")
    return
  fi
  say "== $name (timeout ${limit} s): $*"
  local t0=$SECONDS rc
  if [ -n "$stdout" ]; then
    timeout --kill-after=10 "$limit" "$@" >"$stdout" 2>>"$LOG"
    rc=$?
    tee -a "$LOG" <"$stdout"
  else
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
  fi
  say "== $name: exit $rc after $((SECONDS - t0)) s"
  STATUS+=("$name=$rc")
}

step parity-f32 60 "" "$BIN" parity --dtype f32 --out "$RESULTS/parity_f32.json"
step parity-bf16 60 "" "$BIN" parity --dtype bf16 --out "$RESULTS/parity_bf16.json"
step decode 180 "" "$BIN" decode "${SHAPE[@]}" --dtype bf16 --prompt-len "$PROMPT_LEN" \
  --new-tokens "$NEW_TOKENS" --batch "$BATCHES" --peak-gbps "$PEAK" --out "$RESULTS/decode.json"
step ref-decode 90 "$RESULTS/ref_decode.jsonl" env PYTHONUNBUFFERED=1 "$PY" benches/reference/gpu_decode.py \
  "${SHAPE[@]}" "${PY_DEVICE[@]}" --dtype bf16 --prompt-len "$PROMPT_LEN" --new-tokens "$NEW_TOKENS" \
  --batch "$BATCHES" --peak-gbps "$PEAK"
step update 150 "" "$BIN" update "${SHAPE[@]}" --dtype bf16 --sequences "$SEQS" --prompt-len "$UPD_PROMPT" \
  --response-len "$UPD_RESPONSE" --micro-batch "$MICRO" --steps "$STEPS" --out "$RESULTS/update.json"
step ref-update 90 "$RESULTS/ref_update.jsonl" env PYTHONUNBUFFERED=1 "$PY" benches/reference/gpu_update.py \
  "${SHAPE[@]}" "${PY_DEVICE[@]}" --dtype bf16 --sequences "$SEQS" --prompt-len "$UPD_PROMPT" \
  --response-len "$UPD_RESPONSE" --micro-batch "$MICRO" --steps "$STEPS"

# Multi-GPU: one rank against two (ZeRO-1, NCCL), when the machine has the GPUs, mpirun and the binary.
TRAIN_BIN=${GPU_TRAIN_BIN:-target/release/examples/train}
GPUS=$(nvidia-smi --list-gpus 2>/dev/null | wc -l)
MULTI=scratch/gpu-check-multi
rm -rf "$MULTI"
if [ "$GPUS" -ge 2 ] && command -v mpirun >/dev/null && [ -x "$TRAIN_BIN" ]; then
  mkdir -p "$MULTI"
  DEMO=(--config configs/demo.toml --quiet --set train.steps=3 --set train.save_every=3 --set train.eval_every=0
    --set optim.zero_stage=1)
  step multi-gpu-1 120 "" "$TRAIN_BIN" "${DEMO[@]}" --set "train.out_dir=\"$MULTI/one\""
  step multi-gpu-2 120 "" env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    mpirun -np 2 --oversubscribe --bind-to none "$TRAIN_BIN" "${DEMO[@]}" --set "train.out_dir=\"$MULTI/two\""
  "$PY" - "$MULTI" <<'EOF' 2>&1 | tee -a "$LOG"
import glob, json, os, sys

root = sys.argv[1]
runs = [sorted(glob.glob(os.path.join(root, side, "*", "metrics.jsonl"))) for side in ("one", "two")]
result = {"ok": False}
if all(runs):
    one, two = (os.path.dirname(r[-1]) for r in runs)
    layout = ("timing/", "perf/", "memory/", "rollout/kv_cache_peak_tokens")
    read = lambda run: [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
    worst = 0.0
    for a, b in zip(read(one), read(two)):
        for key, x in a.items():
            if key.startswith(layout) or not isinstance(x, (int, float)) or key not in b:
                continue
            worst = max(worst, abs(x - b[key]) / max(abs(x), 1e-6))
    from safetensors.torch import load_file
    last = lambda run: sorted(glob.glob(os.path.join(run, "checkpoints", "step_*")))[-1]
    wa, wb = (load_file(os.path.join(last(r), "model.safetensors")) for r in (one, two))
    scale = max(t.abs().max().item() for t in wa.values())
    diff = max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa) / scale
    result = {"ok": worst <= 1e-3 and diff <= 1e-3, "metrics_max_rel": worst, "weights_max_rel": diff}
print("multi-GPU, 1 rank vs 2 ranks at ZeRO-1 (NCCL):", json.dumps(result))
json.dump(result, open(os.path.join(root, "result.json"), "w"))
EOF
else
  say "== multi-gpu: skipped ($GPUS GPU(s); needs 2, mpirun and $TRAIN_BIN built with --features cuda,mpi)"
  STATUS+=("multi-gpu=skipped")
fi

say "== steps: ${STATUS[*]} (total $((SECONDS - START)) s)"

# The combined table: ratios ours/reference and the goals of docs/performance.md.
"$PY" - "$RESULTS" "$GPU" "$PEAK" "${STATUS[*]}" <<'EOF' 2>&1 | tee -a "$LOG"
import json, os, sys

results, gpu, peak, status = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]


def load(name):
    path = os.path.join(results, name)
    try:
        with open(path) as f:
            if name.endswith(".jsonl"):
                return [json.loads(l) for l in f if l.strip().startswith("{")]
            return json.load(f)
    except (OSError, ValueError):
        return None


p32, p16, dec, upd = (load(n) for n in ("parity_f32.json", "parity_bf16.json", "decode.json", "update.json"))
ref_dec, ref_upd = load("ref_decode.jsonl") or [], (load("ref_update.jsonl") or [None])[-1]
rows, goals = [], {}


def row(check, ours, ref, ratio, goal="", met=None):
    rows.append((check, ours, ref, ratio, goal, "" if met is None else ("yes" if met else "NO")))


def fmt(x, f="{:.1f}"):
    return "-" if x is None else f.format(x)


for name, p, tol in (("parity f32", p32, "1e-4"), ("parity bf16", p16, "3e-2")):
    if p:
        worst = max(r["max_rel_err"] for r in p["fixtures"])
        greedy = sum(r["greedy_same"] for r in p["fixtures"]), sum(r["greedy_total"] for r in p["fixtures"])
        row(f"{name} max rel err", f"{worst:.2e}", f"CPU f32 ref", f"greedy {greedy[0]}/{greedy[1]}",
            f"<= {tol}", p["pass"])
        goals[name] = p["pass"]
    else:
        row(name, "missing", "", "", f"<= {tol}", False)
        goals[name] = False

ref_by_batch = {r["batch"]: r for r in ref_dec}
for r in (dec or {}).get("rows", []):
    b, ref = r["batch"], ref_by_batch.get(r["batch"])
    ratio = r["tok_s"] / ref["tok_s"] if ref else None
    goal, met = ("ours/ref >= 3", ratio is not None and ratio >= 3) if b == 64 else ("", None)
    row(f"decode b{b} tok/s (e2e)", fmt(r["tok_s"]), fmt(ref and ref["tok_s"]), fmt(ratio, "{:.2f}x"), goal, met)
    if b == 64:
        goals["decode b64 >= 3x transformers"] = bool(met)
    dratio = r["decode_tok_s"] / ref["decode_tok_s"] if ref else None
    row(f"decode b{b} tok/s (decode only)", fmt(r["decode_tok_s"]), fmt(ref and ref["decode_tok_s"]),
        fmt(dratio, "{:.2f}x"))
    if b == 1:
        frac = r["roofline_frac"]
        row("decode b1 roofline", fmt(100 * frac, "{:.1f} %"),
            fmt(ref and ref.get("roofline_frac") and 100 * ref["roofline_frac"], "{:.1f} %"), "",
            f">= 50 % of {peak:.0f} GB/s", frac >= 0.5)
        goals["decode b1 >= 50% roofline"] = frac >= 0.5
if not dec:
    row("decode", "missing", "", "", "", False)
    goals["decode b64 >= 3x transformers"] = goals["decode b1 >= 50% roofline"] = False

if upd:
    ratio = upd["mean_s"] / ref_upd["mean_s"] if ref_upd else None
    shape = f'{upd["sequences"]}x{upd["prompt_len"] + upd["response_len"]}'
    row(f"update s/step ({shape} tokens)", fmt(upd["mean_s"], "{:.3f}"), fmt(ref_upd and ref_upd["mean_s"], "{:.3f}"),
        fmt(ratio, "{:.2f}x"), "ours/ref <= 1.0", ratio is not None and ratio <= 1.0)
    goals["update <= 1.0x PyTorch"] = ratio is not None and ratio <= 1.0
    ours_mem = upd["memory"]["delta_gib"]
    ref_smi = ref_upd and ref_upd.get("nvidia_smi")
    ref_mem = ref_smi["delta_gib"] if ref_smi else None
    if ref_upd and "peak_rss_bytes" in ref_upd:  # CPU (SMOKE=1): peak RSS, torch's import included
        ref_mem = ref_upd["peak_rss_bytes"] / 2**30
    row("update peak GiB (nvidia-smi)" if "nvidia-smi" in upd["memory"]["kind"] else "update peak GiB (RSS)",
        fmt(ours_mem, "{:.2f}"), fmt(ref_mem, "{:.2f}"), fmt(ref_mem and ours_mem / ref_mem, "{:.2f}x"))
    if ref_upd and "max_memory_allocated" in ref_upd:
        row("  torch max_memory_allocated GiB", "", fmt(ref_upd["max_memory_allocated"] / 2**30, "{:.2f}"), "")
    first = upd["first_step"]
    if ref_upd:
        row("update first step entropy", f"{first['entropy']:.4f}", f"{ref_upd['entropy']:.4f}", "")
else:
    row("update", "missing", "", "", "ours/ref <= 1.0", False)
    goals["update <= 1.0x PyTorch"] = False

try:
    multi = json.load(open("scratch/gpu-check-multi/result.json"))
    row("2 GPUs vs 1 (ZeRO-1, NCCL) max rel diff", fmt(multi.get("weights_max_rel"), "{:.1e}"), "1 GPU",
        fmt(multi.get("metrics_max_rel"), "metrics {:.1e}"), "<= 1e-3", multi["ok"])
    goals["2 GPUs equal 1"] = multi["ok"]
except (OSError, ValueError, KeyError):
    pass

ref_torch = (ref_dec[0] if ref_dec else ref_upd or {}).get("torch", "?")
print(f"\nGPU check on {gpu or '?'} (peak {peak:.0f} GB/s): laconic ({(dec or upd or p32 or {}).get('backend', '?')}, "
      f"bf16) vs torch {ref_torch} + transformers, bf16. Ratios are ours/reference: > 1 = laconic faster for "
      f"tok/s, < 1 = laconic faster for s/step.")
widths = [max(len(str(r[i])) for r in rows + [("check", "laconic", "reference", "ratio", "goal", "met")])
          for i in range(6)]
for r in [("check", "laconic", "reference", "ratio", "goal", "met")] + rows:
    print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths)))
print("goals: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in goals.items()))
print(f"steps: {status}")
summary = {"gpu": gpu, "peak_gbps": peak, "steps": status, "goals": goals,
           "table": [dict(zip(("check", "laconic", "reference", "ratio", "goal", "met"), r)) for r in rows]}
with open(os.path.join(results, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
EOF
