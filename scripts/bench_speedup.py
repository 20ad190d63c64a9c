"""The student's speed-up at short lengths: what results.json reports, and serving.

    python scripts/bench_speedup.py            # two runs in separate processes (minutes)
    python scripts/bench_speedup.py --runs=1 --no_write

Shapes: the study's (RESULTS.md), a MiniLM-sized teacher (6 layers, hidden 384, 12 heads,
random weights) and a 3-layer student cut from it; a short-sentence dev set of 872
examples (lengths 4-40 tokens, most under 16, as on SST-2).  Each run, in a fresh
process, measures:

- ``dev_pass``: the teacher / student examples/s that ``pipeline.evaluation.evaluate`` writes into
  results.json (``pipeline.inference.logits_and_speeds``: batches padded once, passes alternating);
- ``dev_pass_in_pipeline``: the same passes with the tf.data pipeline iterated inside the
  timed loop (how runs measured before), to show what the harness costs;
- ``serving_batch_32_len_16``: the exported SavedModels' ``serving_default`` at batch 32,
  length 16, calls alternating in rounds.

Writes benchmarks/speedup@<cpu tag>.json and rebuilds BENCHMARKS.md (scripts/bench.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SHAPES = dict(teacher_layers=6, student_layers=3, hidden=384, heads=12, intermediate=1536,
              vocab=30522, dev_examples=872, batch=32)
AGREEMENT = 0.15  # two runs of the same shapes: speed-ups within 15% of each other
SERVING_TARGET = 1.8  # student / teacher serving throughput at batch 32, length 16


def short_dev_set(size: int, vocab: int, seed: int = 0):
    """Tokenized pair examples with short lengths: Features."""
    import numpy as np

    from kd_keras.data.features import Features

    rng = np.random.RandomState(seed)
    lengths = np.clip(rng.poisson(11, size=size) + 3, 4, 40).astype(np.int32)
    total = int(lengths.sum())
    ids = rng.randint(5, vocab, size=total).astype(np.int32)
    types = np.zeros(total, np.int32)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for start, length in zip(starts, lengths):
        ids[start] = 2  # [CLS]
        types[start + length // 2: start + length] = 1
    flat = {"input_ids": ids, "attention_mask": np.ones(total, np.int32),
            "token_type_ids": types}
    return Features(flat=flat, lengths=lengths,
                    labels=rng.randint(0, 2, size=size).astype(np.int32))


def build_pair():
    from kd_keras import models

    config = models.bert_config(SHAPES["vocab"], 2, num_layers=SHAPES["teacher_layers"],
                                hidden_size=SHAPES["hidden"], num_heads=SHAPES["heads"],
                                intermediate_size=SHAPES["intermediate"],
                                max_position_embeddings=512)
    teacher = models.build_model(config, seed=1)
    mapping = models.layer_mapping(SHAPES["teacher_layers"], SHAPES["student_layers"])
    return teacher, models.derive_student(teacher, SHAPES["student_layers"], mapping)


def alternating_medians(calls: dict, rounds: int, repeat: int = 1) -> dict:
    """Median seconds of one call of each callable, timed ``repeat`` calls at a time in
    rounds whose order reverses every other round (a steady drift favours neither)."""
    times = {name: [] for name in calls}
    order = list(calls)
    for _ in range(rounds):
        for name in order:
            start = time.perf_counter()
            for _ in range(repeat):
                calls[name]()
            times[name].append((time.perf_counter() - start) / repeat)
        order.reverse()
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def passes_in_pipeline(classifiers: dict, features, batch_size: int, rounds: int) -> dict:
    """Examples/s with tf.data iterated inside each timed pass (the earlier harness)."""
    from kd_keras import backends

    dataset = backends.make_dataset(features, batch_size, training=False)

    def one_pass(forward):
        return lambda: [forward(x).numpy() for x, _ in dataset]

    passes = {name: one_pass(backends.current().logits_function(model))
              for name, model in classifiers.items()}
    for run_pass in passes.values():
        run_pass()  # tracing, warm-up
    seconds = alternating_medians(passes, rounds)
    return {name: len(features) / value for name, value in seconds.items()}


def serving_speeds(classifiers: dict, folder: str, rounds: int, calls: int) -> dict:
    """Examples/s of each exported model's serving_default at batch 32, length 16."""
    import numpy as np
    import tensorflow as tf
    from bench_sizes import serving_signature

    features = short_dev_set(SHAPES["batch"], SHAPES["vocab"], seed=5)
    x = {name: tf.constant(np.resize(values, (SHAPES["batch"], 16)))
         for name, values in features.flat.items()}
    serve = {}
    for name, model in classifiers.items():
        signature = serving_signature(model, SHAPES["vocab"], os.path.join(folder, name), 128)
        serve[name] = lambda signature=signature: signature(**x)["logits"].numpy()
        for _ in range(3):
            serve[name]()
    seconds = alternating_medians(serve, rounds, repeat=calls)
    return {name: SHAPES["batch"] / value for name, value in seconds.items()}


def one_run(rounds: int) -> dict:
    """Every measurement of one process: {measurement: {teacher, student, speedup}}."""
    import keras

    from kd_keras.pipeline import inference

    keras.utils.set_random_seed(0)
    teacher, student = build_pair()
    classifiers = {"teacher": teacher, "student": student}
    dev = short_dev_set(SHAPES["dev_examples"], SHAPES["vocab"])
    found = {}
    _, found["dev_pass"] = inference.logits_and_speeds(classifiers, dev, SHAPES["batch"])
    found["dev_pass_in_pipeline"] = passes_in_pipeline(classifiers, dev, SHAPES["batch"],
                                                       rounds)
    with tempfile.TemporaryDirectory() as folder:
        found["serving_batch_32_len_16"] = serving_speeds(classifiers, folder, rounds, 10)
    return {name: dict(speeds, speedup=speeds["student"] / speeds["teacher"])
            for name, speeds in found.items()}


def summary(runs: list) -> dict:
    """Per measurement: each run's speed-up and the spread between runs."""
    table = {}
    for name in runs[0]:
        ups = [run[name]["speedup"] for run in runs]
        table[name] = {"speedups": ups, "spread": max(ups) / min(ups) - 1}
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="separate processes")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no_write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.one:  # a child process: one run, one JSON line
        print("RESULT " + json.dumps(one_run(args.rounds)))
        return 0
    runs = []
    for _ in range(args.runs):
        output = subprocess.run([sys.executable, __file__, "--one", f"--rounds={args.rounds}"],
                                check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(output.split("RESULT ", 1)[1]))
        for name, value in runs[-1].items():
            print(f"run {len(runs)} {name:<26} teacher {value['teacher']:8.1f} ex/s  "
                  f"student {value['student']:8.1f} ex/s  speed-up {value['speedup']:.2f}x",
                  flush=True)
    table = summary(runs)
    for name, value in table.items():
        print(f"{name:<26} speed-ups {', '.join(f'{u:.2f}x' for u in value['speedups'])}"
              f"  spread {value['spread']:.1%}")
    if args.no_write:
        return 0
    from bench import write_markdown
    from bench_sizes import cpu_description

    cpu = cpu_description()
    result = {"shapes": SHAPES, "date": time.strftime("%Y-%m-%d"), "cpu": cpu,
              "cpus": os.cpu_count(), "rounds": args.rounds, "runs": runs,
              "summary": table, "agreement_bound": AGREEMENT,
              "serving_target": SERVING_TARGET}
    with open(os.path.join(REPO, "benchmarks", f"speedup@{cpu['tag']}.json"), "w") as handle:
        json.dump(result, handle, indent=2)
    print(f"Wrote {write_markdown()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
