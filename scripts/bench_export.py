"""What each export format costs and keeps (issue #28): file size, batch-1 and batch-32
latency and dev metric of a finished run's student as a SavedModel, LiteRT float / int8
(int8 weights, and int8 weights and activations) and ONNX float / int8, each run by its
own runtime, and of its teacher (SavedModel).

    python scripts/bench_export.py --model_dir=/tmp/kd_keras_demo --name=demo
    python scripts/bench_export.py --model_dir=runs/study/mrpc-500/sid_L3_s0 \\
        --name="MRPC, MiniLM-6 -> 3 (sid)"

Latency: every input padded to the run's max_seq_length (one shape, so no runtime pays
for resizing), median over rounds after a warm-up, all runtimes with the machine's cores.
The dev metric runs every dev example through the runtime, in batches of 32 padded to
their longest row.  Each --name is one table; the results go to
benchmarks/export@<cpu tag>.json and BENCHMARKS.md is rebuilt (scripts/bench.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_sizes import cpu_description  # noqa: E402

FORMATS = ("saved_model", "litert", "litert_int8", "litert_full_int8", "onnx", "onnx_int8")


def load_run(model_dir: str):
    """(context, spec, tokenizer, task data, student, teacher) of a finished run, in
    float32 whatever precision it trained in."""
    from kd_keras import config as config_lib
    from kd_keras import models, run_identity
    from kd_keras.pipeline import context as context_lib
    from kd_keras.pipeline import inputs, serving

    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as handle:
        config = config_lib.from_json(handle.read())
    config = dataclasses.replace(config, mode="evaluate", train=dataclasses.replace(
        config.train, model_dir=model_dir, mixed_precision="none",
        distribution_strategy="default", export_formats=FORMATS))
    context = context_lib.start(config)
    task_inputs = inputs.TaskInputs(config, run_identity.recorded(model_dir).get("labels"))
    tokenizer = inputs.load_tokenizer(context, task_inputs)
    task = inputs.load_task_data(context, task_inputs, tokenizer)
    student = serving.load_student(context, task_inputs.spec)
    model = config.model  # a run given a fine-tuned teacher kept none of its own
    teacher_folder = (model.teacher if model.teacher_finetuned
                      else context.shared_path("teacher"))
    teacher = models.load_pretrained(teacher_folder, task_inputs.spec.num_labels,
                                     context.cache_dir)
    return context, task_inputs.spec, tokenizer, task, student, teacher


def saved_model_runner(folder: str):
    import tensorflow as tf

    serve = tf.saved_model.load(folder).signatures["serving_default"]
    return lambda x: serve(**{k: tf.constant(v) for k, v in x.items()})["logits"].numpy()


def folder_bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(folder) for name in names)


def latency_ms(run, features, length: int, batch: int, rounds: int) -> float:
    """Median milliseconds of one call on ``batch`` dev examples padded to ``length``."""
    import numpy as np

    from kd_keras.data.features import pad_batch

    rows = np.arange(batch) % len(features)
    x, _ = pad_batch(features, rows, multiple=length)
    run(x)  # warm-up (and LiteRT's allocation for this shape)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run(x)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def dev_scores(run, features, spec) -> dict:
    import numpy as np

    from kd_keras import metrics
    from kd_keras.data.features import pad_batch

    logits = np.concatenate([
        run(pad_batch(features, np.arange(i, min(i + 32, len(features))))[0])
        for i in range(0, len(features), 32)])
    return metrics.compute(spec.metrics, features.labels, logits)


def measure(model_dir: str, rounds: int) -> dict:
    """Every format of the run's student, and its teacher: one row each."""
    from kd_keras import export
    from kd_keras.pipeline import serving

    context, spec, tokenizer, task, student, teacher = load_run(model_dir)
    length = context.config.data.max_seq_length
    threads = os.cpu_count()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        started = time.time()
        folders = export.export(serving.exportable(context, spec, student, tokenizer,
                                                   task.train), folder, FORMATS)
        export_seconds = time.time() - started
        teacher_folder = export.export(
            export.Exportable(teacher, tokenizer, tuple(spec.labels or ("score",)), length,
                              spec.is_pair), os.path.join(folder, "teacher"))["saved_model"]
        models = [("teacher", "saved_model", teacher_folder)] + [
            ("student", name, path) for name, path in folders.items()]
        for who, name, path in models:
            if name == "saved_model":
                run, size = saved_model_runner(path), folder_bytes(path)
            else:
                run = export.runner(name, path, threads)
                size = os.path.getsize(os.path.join(path, export.read_settings(path)[
                    "model_file"]))
            rows.append({"model": who, "format": name, "bytes": size,
                         "batch_1_ms": latency_ms(run, task.dev, length, 1, rounds * 10),
                         "batch_32_ms": latency_ms(run, task.dev, length, 32, rounds),
                         "dev": dev_scores(run, task.dev, spec)})
            print(json.dumps(rows[-1]))
    return {"rows": rows, "metric": spec.main_metric, "max_seq_length": length,
            "dev_examples": len(task.dev), "threads": threads,
            "student_layers": student.num_layers, "teacher_layers": teacher.num_layers,
            "hidden_size": student.config.hidden_size,
            "export_seconds_all_formats": export_seconds}


def float_format(name: str) -> str:
    """The float format an int8 one is measured against (litert_full_int8 -> litert)."""
    return name.replace("_full_int8", "").replace("_int8", "")


def export_section(result: dict) -> list:
    """BENCHMARKS.md's tables of one export@<cpu>.json (scripts/bench.py calls it)."""
    cpu = result["cpu"]
    lines = [f"## Exports: size, latency, dev metric ({cpu['model']}, {cpu['isa']})", "",
             f"{result['date']}, `scripts/bench_export.py`: each format run by its own "
             "runtime (TensorFlow for SavedModel, ai-edge-litert, onnxruntime) with "
             "every core; latency is the median of one call on inputs padded to the run's "
             "max_seq_length; the dev metric covers the whole dev set.", ""]
    for name, table in result["runs"].items():
        metric = table["metric"]
        float_row = next(r for r in table["rows"]
                         if r["model"] == "student" and r["format"] == "saved_model")
        lines += [f"### {name}", "",
                  f"{table['student_layers']}-layer student of a "
                  f"{table['teacher_layers']}-layer teacher, hidden "
                  f"{table['hidden_size']}, length {table['max_seq_length']}, "
                  f"{table['dev_examples']} dev examples, {table['threads']} threads; "
                  f"writing the {len(table['rows']) - 1} student formats took "
                  f"{table['export_seconds_all_formats']:.0f} s.", "",
                  f"| model | format | size (MB) | x smaller than its float | batch 1 (ms) | "
                  f"batch 32 (ms) | dev {metric} | vs float |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        float_bytes = {(r["model"], r["format"]): r["bytes"] for r in table["rows"]}
        for row in table["rows"]:
            # int8 against the same runtime's float file
            base = float_bytes[(row["model"], float_format(row["format"]))]
            lines.append(
                f"| {row['model']} | {row['format']} | {row['bytes'] / 1e6:,.2f} | "
                f"{base / row['bytes']:.1f} | {row['batch_1_ms']:,.2f} | "
                f"{row['batch_32_ms']:,.1f} | {row['dev'][metric]:.4f} | "
                f"{row['dev'][metric] - float_row['dev'][metric]:+.4f} |")
        lines.append("")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="a finished run's folder")
    parser.add_argument("--name", required=True, help="the table's title")
    parser.add_argument("--rounds", type=int, default=5, help="timed calls at batch 32 "
                        "(ten times as many at batch 1)")
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.model_dir, "student")):
        print(f"error: {args.model_dir} holds no finished run (no student/); train one "
              "first.", file=sys.stderr)
        return 2
    cpu = cpu_description()
    path = os.path.join(REPO, "benchmarks", f"export@{cpu['tag']}.json")
    result = {"runs": {}}
    if os.path.exists(path):
        with open(path) as handle:
            result = json.load(handle)
    result["runs"][args.name] = measure(os.path.abspath(args.model_dir), args.rounds)
    result.update(cpu=cpu, date=datetime.date.today().isoformat())
    with open(path, "w") as handle:
        json.dump(result, handle, indent=2, sort_keys=True)
    print("\n".join(export_section(result)))
    import bench

    print(f"Wrote {path} and {bench.write_markdown()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
