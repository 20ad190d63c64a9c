"""kd_keras' `all` step against a peer's, measured in alternating rounds: TextBrewer's,
or kd_keras' own step on Keras' JAX backend.

    python scripts/bench_peer.py --peer_python=/tmp/tb/bin/python --size=base --rounds=4
    python scripts/bench_peer.py --peer=jax --size=base --rounds=4

This machine's speed drifts by 20-30% within an hour, so a ratio of two timings taken at
different times carries that drift.  Here every round times both steps back to back
(each in a fresh process, after warm-up, median of --repeats), the order alternating
between rounds so that a steady drift favours neither side, and the ratio is taken per
round.  The median round ratio goes to benchmarks/peer_<size>@<cpu tag>.json, which
bench.py's BENCHMARKS.md uses for the peer targets.  --peer_python is the virtualenv with
torch and TextBrewer (see scripts/bench_textbrewer.py).  With --peer=jax the other step
is scripts/bench_jax.py's (this Python, KERAS_BACKEND=jax) and the result goes to
benchmarks/backends_<size>@<cpu tag>.json: the JAX step's time over the TensorFlow one's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)
from bench_sizes import cpu_description  # noqa: E402

BENCH_DIR = os.path.join(os.path.dirname(SCRIPTS), "benchmarks")


def timed_json(command: list, env: dict = None) -> dict:
    """Runs a benchmark command and returns the JSON object on its last JSON line."""
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"error: no JSON line from {' '.join(command)}:\n{result.stdout}")
    return json.loads(lines[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", choices=["textbrewer", "jax"], default="textbrewer")
    parser.add_argument("--peer_python", default=None,
                        help="python of the virtualenv with torch and textbrewer")
    parser.add_argument("--size", default="base", choices=["tiny", "base"])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no_write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.peer == "textbrewer" and not args.peer_python:
        parser.error("--peer=textbrewer needs --peer_python")
    common = [f"--size={args.size}", f"--warmup={args.warmup}", f"--repeats={args.repeats}"]
    tensorflow = dict(os.environ, KERAS_BACKEND="tensorflow")
    ours = ([sys.executable, os.path.join(SCRIPTS, "bench.py"), "--only_all"] + common,
            tensorflow)
    if args.peer == "jax":
        name, label = "jax", "kd_keras on JAX"
        peer = ([sys.executable, os.path.join(SCRIPTS, "bench_jax.py"), "--only_all"]
                + common, dict(os.environ, KERAS_BACKEND="jax"))
    else:
        name, label = "textbrewer", "TextBrewer"
        peer = ([args.peer_python, os.path.join(SCRIPTS, "bench_textbrewer.py"),
                 "--step_only"] + common, None)
    rounds = []
    for index in range(args.rounds):
        seconds = {}
        order = (("kd_keras", ours), (name, peer))
        for who, (command, env) in order if index % 2 == 0 else order[::-1]:
            seconds[who] = next(iter(timed_json(command, env).values()))
        rounds.append({"kd_keras_seconds": seconds["kd_keras"],
                       f"{name}_seconds": seconds[name],
                       "ratio": seconds[name] / seconds["kd_keras"]})
        print(f"round {index + 1}: kd_keras {seconds['kd_keras']:.2f} s, {label} "
              f"{seconds[name]:.2f} s, ratio {rounds[-1]['ratio']:.2f}x", flush=True)
    ratios = [r["ratio"] for r in rounds]
    result = {"size": args.size, "date": time.strftime("%Y-%m-%d"), "repeats": args.repeats,
              "peer": name, "rounds": rounds, "median_ratio": statistics.median(ratios),
              "min_ratio": min(ratios), "max_ratio": max(ratios)}
    print(f"{label} step / kd_keras `all` step on TensorFlow: median "
          f"{result['median_ratio']:.2f}x over {args.rounds} rounds "
          f"({result['min_ratio']:.2f}-{result['max_ratio']:.2f}x)")
    if not args.no_write:
        os.makedirs(BENCH_DIR, exist_ok=True)
        tag = cpu_description()["tag"]
        prefix = "backends" if args.peer == "jax" else "peer"
        with open(os.path.join(BENCH_DIR, f"{prefix}_{args.size}@{tag}.json"), "w") as handle:
            json.dump(result, handle, indent=2)
        subprocess.run([sys.executable, os.path.join(SCRIPTS, "bench.py"), "--markdown_only"],
                       check=True, env=tensorflow)
    return 0


if __name__ == "__main__":
    sys.exit(main())
