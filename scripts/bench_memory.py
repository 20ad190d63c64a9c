"""Memory of distilling on transfer text (issue #30): a made-up --transfer_file of N
lines taken in as a run takes it (TaskInputs.transfer_text read row by row, tokenized
into the cache folder, joined to the labelled set on disk) and then read once as one
epoch of padded batches, each size in a fresh process.

    python scripts/bench_memory.py                          # 10k and 1M lines, MiniLM
    python scripts/bench_memory.py --sizes=1000,10000 --tokenizer=<model folder>

Peak resident memory comes from getrusage; it counts the pages of the memory-mapped
token files an epoch has touched, which the kernel drops again under memory pressure,
so the table also gives the anonymous memory (what the process itself holds, from
/proc/self/status) after the epoch.  The lines are README's made-up reviews
(scripts/make_example_data.py), about 46 bytes each.  The teacher's logits over the text
are not part of it: on a CPU they take hours for a million lines, and their cache is
num_labels floats per line.  Writes benchmarks/memory@<cpu tag>.json (or --out) and
rebuilds BENCHMARKS.md (scripts/bench.py).
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
    """In this process: take ``path`` in as a run's transfer text, then read one epoch of
    batches over it and 100 labelled examples, with memory."""
    import make_example_data
    import numpy as np

    from kd_keras import config as config_lib, tokenization
    from kd_keras.data import batching
    from kd_keras.data.features import concatenate, pad_batch, tokenize
    from kd_keras.pipeline.inputs import TaskInputs

    def peak_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    def anonymous_mb() -> float:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    with tempfile.TemporaryDirectory() as cache:
        make_example_data.write_example(cache, train_size=100, dev_size=10)
        config = config_lib.RunConfig(data=config_lib.DataConfig(
            train_file=os.path.join(cache, "train.csv"),
            dev_file=os.path.join(cache, "dev.csv"), text_fields=("review",),
            label_field="sentiment", transfer_file=path, transfer_fields=("review",)))
        tokenizer = tokenization.load_tokenizer(tokenizer_folder, cache)
        inputs = TaskInputs(config)
        labelled = tokenize(inputs.examples("train")[0], tokenizer, max_seq_length,
                            cache_dir=cache, cache_key="train")
        before, started = peak_mb(), time.time()
        text = inputs.transfer_text()
        transfer = tokenize(text.examples, tokenizer, max_seq_length, cache_dir=cache,
                            cache_key=path, source_digest=text.digest)
        tokenized, tokenized_at = peak_mb(), time.time()
        train = concatenate([labelled, transfer], cache)
        offsets = train.offsets()
        for rows in batching.plan_batches(train.lengths, 32, True, seed=0, epochs=1):
            pad_batch(train, rows, offsets=offsets)
        return {"lines": len(transfer), "file_mb": os.path.getsize(path) / 1e6,
                "start_mb": before, "after_tokenizing_mb": tokenized,
                "peak_mb": peak_mb(), "anonymous_mb": anonymous_mb(),
                "features_mb": sum(a.nbytes for a in transfer.flat.values()) / 1e6,
                "tokenize_seconds": tokenized_at - started,
                "epoch_seconds": time.time() - tokenized_at,
                "mapped": all(isinstance(a, np.memmap) for a in train.flat.values())}


def memory_section(result: dict) -> list:
    """BENCHMARKS.md's table of one memory@<cpu>.json (scripts/bench.py calls it)."""
    cpu = result["cpu"]
    lines = [f"## Transfer text: memory of distilling on it ({cpu['model']}, {cpu['isa']})",
             "",
             f"{result['date']}, `scripts/bench_memory.py`: a made-up --transfer_file "
             f"taken in as a run does ({result['tokenizer']}'s tokenizer, length "
             f"{result['max_seq_length']}: read row by row, tokenized into the cache, "
             "joined to 100 labelled examples on disk), then one epoch of padded batches "
             "over it; each size in a fresh process.  Peak resident memory counts the "
             "token files' mapped pages the epoch touched (the kernel's to drop); "
             "anonymous memory is what the process itself holds after the epoch.", "",
             "| lines | file (MB) | at start (MB) | peak, tokenized (MB) | "
             "peak, after an epoch (MB) | anonymous (MB) | token files (MB) | "
             "tokenize (s) | epoch of batches (s) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['lines']:,} | {row['file_mb']:,.1f} | {row['start_mb']:,.0f} | "
                     f"{row['after_tokenizing_mb']:,.0f} | {row['peak_mb']:,.0f} | "
                     f"{row['anonymous_mb']:,.0f} | {row['features_mb']:,.1f} | "
                     f"{row['tokenize_seconds']:,.1f} | {row['epoch_seconds']:,.1f} |")
    first, last = result["rows"][0], result["rows"][-1]
    lines += ["", f"{last['lines'] // first['lines']:,}x the lines: "
              f"**{last['after_tokenizing_mb'] / first['after_tokenizing_mb']:.2f}x** the "
              f"peak while tokenizing, "
              f"{last['anonymous_mb'] / first['anonymous_mb']:.2f}x the anonymous memory "
              "after an epoch.", ""]
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
