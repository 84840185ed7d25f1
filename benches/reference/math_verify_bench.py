#!/usr/bin/env python3
"""Reference timing for `crates/laconic-reward/examples/bench_verify.rs`: math-verify's
judgements per second on the agreement fixture.

Pinned: math-verify==0.9.0 (latex2sympy2_extended==1.11.0, sympy==1.13.1). Single process, one
thread. Each judgement is what a trainer does per rollout: `verify(parse("$" + gold + "$"),
parse(response))`, with math-verify's default `parse`/`verify` settings (including its
signal-based timeouts, which cost a syscall per call; that is how users run it).

    python benches/reference/math_verify_bench.py \
        --fixture crates/laconic-reward/tests/fixtures/verify_pairs/pairs.jsonl --repeats 3

Prints one JSON line: {"judgements_per_s": mean, "stdev": ..., "pairs": n, "agree": k}, where
`agree` counts pairs whose verdict equals the fixture's recorded `mv` (a correctness check).
"""

import argparse
import json
import statistics
import time

from math_verify import parse, verify


def judge(response, gold):
    try:
        return bool(verify(parse("$" + gold + "$"), parse(response)))
    except Exception:  # noqa: BLE001 - same treatment as the fixture generator
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with open(args.fixture) as f:
        pairs = [json.loads(line) for line in f if line.strip()]
    # Warm-up: imports, regex compilation, SymPy caches.
    for p in pairs[:200]:
        judge(p["response"], p["gold"])
    rates, agree = [], 0
    for _ in range(args.repeats):
        t = time.perf_counter()
        agree = sum(judge(p["response"], p["gold"]) == p["mv"] for p in pairs)
        rates.append(len(pairs) / (time.perf_counter() - t))
    print(json.dumps({
        "judgements_per_s": statistics.mean(rates),
        "stdev": statistics.stdev(rates) if len(rates) > 1 else 0.0,
        "pairs": len(pairs),
        "agree": agree,
    }))


if __name__ == "__main__":
    main()
