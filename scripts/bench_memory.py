"""Peak memory of taking in transfer text (issue #30): a made-up --transfer_file of N
lines read and tokenized as a run does it (own_files, then features.tokenize with its
cache), each size in a fresh process, peak resident memory from getrusage.

    python scripts/bench_memory.py                          # 10k and 1M lines, MiniLM
    python scripts/bench_memory.py --sizes=1000,10000 --tokenizer=<model folder>

The lines are README's made-up reviews (scripts/make_example_data.py), about 46 bytes
each.  The teacher's logits over the text are not part of it: on a CPU they take hours
for a million lines, and their cache is num_labels floats per line.  Writes
benchmarks/memory@<cpu tag>.json (or --out) and rebuilds BENCHMARKS.md (scripts/bench.py).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_sizes import cpu_description  # noqa: E402


def write_lines(path: str, count: int) -> None:
    """A one-column CSV (``review``) of ``count`` made-up reviews."""
    import numpy as np
    from make_example_data import review

    rng = np.random.RandomState(0)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["review"])
        for _ in range(count):
            writer.writerow([review("positive", rng)])


def measure_child(path: str, tokenizer_folder: str, max_seq_length: int) -> dict:
    """In this process: read and tokenize ``path`` (the run's steps), with memory."""
    from kd_keras import tokenization
    from kd_keras.data import own_files
    from kd_keras.data.examples import Example
    from kd_keras.data.features import tokenize

    def peak_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    with tempfile.TemporaryDirectory() as cache:
        tokenizer = tokenization.load_tokenizer(tokenizer_folder, cache)
        before, started = peak_mb(), time.time()
        rows, _ = own_files.read_own_rows(path, ("review",), None, False)
        examples = [Example(row.text_a, row.text_b, None) for row in rows]
        del rows
        read = peak_mb()
        features = tokenize(examples, tokenizer, max_seq_length, cache_dir=cache,
                            cache_key=path)
        return {"lines": len(features), "file_mb": os.path.getsize(path) / 1e6,
                "start_mb": before, "after_reading_mb": read, "peak_mb": peak_mb(),
                "features_mb": sum(a.nbytes for a in features.flat.values()) / 1e6,
                "seconds": time.time() - started}


def memory_section(result: dict) -> list:
    """BENCHMARKS.md's table of one memory@<cpu>.json (scripts/bench.py calls it)."""
    cpu = result["cpu"]
    lines = [f"## Transfer text: peak memory of reading and tokenizing it ({cpu['model']}, "
             f"{cpu['isa']})", "",
             f"{result['date']}, `scripts/bench_memory.py`: a made-up --transfer_file "
             f"read and tokenized as a run does ({result['tokenizer']}'s tokenizer, "
             f"length {result['max_seq_length']}), each size in a fresh process.", "",
             "| lines | file (MB) | at start (MB) | after reading (MB) | peak (MB) | "
             "token arrays (MB) | s |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['lines']:,} | {row['file_mb']:,.1f} | {row['start_mb']:,.0f} | "
                     f"{row['after_reading_mb']:,.0f} | {row['peak_mb']:,.0f} | "
                     f"{row['features_mb']:,.1f} | {row['seconds']:,.1f} |")
    first, last = result["rows"][0], result["rows"][-1]
    lines += ["", f"{last['lines'] // first['lines']:,}x the lines: "
              f"**{last['peak_mb'] / first['peak_mb']:.1f}x** the peak.", ""]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000", help="lines, comma-separated")
    parser.add_argument("--tokenizer", default="minilm",
                        help="a model folder, or minilm (the packaged MiniLM)")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--out", default=None, help="the JSON (default: "
                        "benchmarks/memory@<cpu tag>.json, and BENCHMARKS.md rebuilt)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, REPO)
    if args.child:
        print(json.dumps(measure_child(args.child, args.tokenizer, args.max_seq_length)))
        return 0
    from kd_keras import hub

    with tempfile.TemporaryDirectory() as folder:
        tokenizer = hub.model_folder(args.tokenizer, folder)
        rows = []
        for size in (int(s) for s in args.sizes.split(",")):
            path = os.path.join(folder, f"transfer_{size}.csv")
            write_lines(path, size)
            child = subprocess.run(
                [sys.executable, os.path.abspath(__file__), f"--child={path}",
                 f"--tokenizer={tokenizer}", f"--max_seq_length={args.max_seq_length}"],
                capture_output=True, text=True, check=True)
            rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]))
            os.remove(path)
    cpu = cpu_description()
    result = {"rows": rows, "tokenizer": args.tokenizer, "cpu": cpu,
              "max_seq_length": args.max_seq_length,
              "date": datetime.date.today().isoformat()}
    path = args.out or os.path.join(REPO, "benchmarks", f"memory@{cpu['tag']}.json")
    with open(path, "w") as handle:
        json.dump(result, handle, indent=2, sort_keys=True)
    print("\n".join(memory_section(result)))
    if args.out is None:
        import bench

        print(f"Wrote {path} and {bench.write_markdown()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
