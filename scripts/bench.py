"""Distillation step benchmarks: every measurement in one process, on the same inputs.

    python scripts/bench.py --size=tiny          # seconds; what CI-sized runs look like
    python scripts/bench.py --size=base          # BERT-base shapes, 12 -> 6 layers (minutes)
    python scripts/bench.py --size=base --rss    # peak memory of a batch-32 distill step
    python scripts/bench.py --size=base --only_all   # just the `all` step, one JSON line
                                                     # (what scripts/bench_peer.py runs)
    python scripts/bench.py --backend=jax --size=base  # the step table on Keras' JAX
                                                       # backend (scripts/bench_jax.py)

Each timing is the median of --repeats calls after --warmup calls.  Results go to
benchmarks/<size>.json (or <size>_rss.json) and BENCHMARKS.md is rebuilt from every
JSON in benchmarks/ (scripts/bench_textbrewer.py writes the PyTorch peer's,
scripts/bench_jax.py the JAX tables, scripts/gpu_bench.sh the GPU run's).
--xla and --mixed_precision apply to the train steps, for GPU runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kd_keras import distiller, losses, optimization  # noqa: E402
from kd_keras.data import batching  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_sizes import (SIZES, build_pair, cpu_description, median_seconds,  # noqa: E402
                         numpy_inputs, ratios, serving_signature)
from bench_sizes import distiller_for as compiled_distiller  # noqa: E402

BENCH_DIR = os.path.join(REPO, "benchmarks")


def make_inputs(size: dict, batch: int, seed: int = 0):
    """bench_sizes.numpy_inputs as TensorFlow constants."""
    x, y = numpy_inputs(size, batch, seed)
    return {k: tf.constant(v) for k, v in x.items()}, tf.constant(y)


def distiller_for(teacher, student, mapping, schedule: str, args) -> distiller.Distiller:
    return compiled_distiller(teacher, student, mapping, schedule, args.xla)


def stage_step(model: distiller.Distiller, index: int, x, y, teacher_logits=None):
    """A callable running one train step of stage ``index``, as fit runs it: the
    compiled train function on the next batch of a dataset iterator (with the teacher's
    logits beside the labels when given, as the pipeline's logit cache passes them)."""
    model.set_stage(index)
    model.make_train_function(force=True)
    train_function = model.train_function
    batch = batching.pack(x, y, teacher_logits=teacher_logits)
    batches = iter(tf.data.Dataset.from_tensors(batch).repeat())

    def step():
        logs = train_function(batches)
        assert np.isfinite(float(logs["loss"]))
    return step


def naive_step(teacher, student, mapping, x, y):
    """The straightforward loop: both models' full forward with every output, all terms."""
    optimizer = optimization.make_optimizer(1e-5, 10_000, 0.0, 0.01)
    variables = student.trainable_variables
    optimizer.build(variables)

    @tf.function
    def step():
        t = teacher.forward(x, training=False)
        with tf.GradientTape() as tape:
            s = student.forward(x, training=True)
            loss = losses.soft_label_ce(t.logits, s.logits, 1.0) + 0.1 * \
                losses.hard_label_ce(y, s.logits)
            for s_layer, t_layer in mapping:
                loss += losses.attention_kl(t.attentions[t_layer - 1],
                                            s.attentions[s_layer - 1], x["attention_mask"])
                loss += losses.cls_cosine_loss(t.hidden_states[t_layer][:, 0],
                                               s.hidden_states[s_layer][:, 0])
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss
    return step


def serving_call(model, size: dict, folder: str, batch: int):
    """Exports ``model`` like the student export and returns a timed serving call."""
    serve = serving_signature(model, size["vocab"], folder, size["seq"])
    x, _ = make_inputs(size, batch, seed=3)
    return lambda: serve(**x)["logits"].numpy()


def run_timings(args, size: dict) -> dict:
    teacher, student, mapping = build_pair(size)
    x, y = make_inputs(size, size["batch"])
    n = len(mapping)
    w, r = args.warmup, args.repeats
    results = {}

    def record(name, step, examples=size["batch"]):
        seconds = median_seconds(step, w, r)
        results[name] = {"seconds": seconds, "examples_per_second": examples / seconds}
        print(f"{name:<34} {seconds * 1000:10.1f} ms  {examples / seconds:9.1f} ex/s",
              flush=True)

    forward = tf.function(lambda: teacher(x, training=False))
    record("teacher_forward", lambda: forward().numpy())
    plain = distiller_for(teacher, student, mapping, "finetune", args)
    record("student_train_step", stage_step(plain, 0, x, y))
    record("naive_distill_step", naive_step(teacher, student, mapping, x, y))
    fused = distiller_for(teacher, student, mapping, "all", args)
    record("distill_all", stage_step(fused, 0, x, y))
    pid = distiller_for(teacher, student, mapping, "pid", args)
    record("distill_pid_stage_1", stage_step(pid, 0, x, y))
    record(f"distill_pid_stage_{n}", stage_step(pid, n - 1, x, y))
    sid = distiller_for(teacher, student, mapping, "sid", args)
    for k in range(n):
        record(f"distill_sid_stage_{k + 1}", stage_step(sid, k, x, y))
    record("distill_sid_classifier", stage_step(sid, n, x, y))
    # The pipeline's logit cache: batches carry the teacher's logits, so the classifier
    # stage runs no teacher.
    record("distill_sid_classifier_cached", stage_step(sid, n, x, y, teacher(x)))
    with tempfile.TemporaryDirectory() as folder:
        for batch in (1, 32):
            for who, model in (("teacher", teacher), ("student", student)):
                record(f"serving_{who}_batch_{batch}",
                       serving_call(model, size, os.path.join(folder, f"{who}{batch}"),
                                    batch), examples=batch)
    return results


def run_all_step(args, size: dict) -> dict:
    """Times only the fused `all` distill step (for the paired peer comparison)."""
    teacher, student, mapping = build_pair(size)
    x, y = make_inputs(size, size["batch"])
    model = distiller_for(teacher, student, mapping, "all", args)
    seconds = median_seconds(stage_step(model, 0, x, y), args.warmup, args.repeats)
    return {"distill_all_seconds": seconds}


def run_rss(args, size: dict) -> dict:
    teacher, student, mapping = build_pair(size)
    x, y = make_inputs(size, args.rss_batch)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = distiller_for(teacher, student, mapping, "all", args)
    step = stage_step(model, 0, x, y)
    for _ in range(3):
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MiB after models were built: {before:.0f} MiB")
    return {"batch": args.rss_batch, "seq": size["seq"], "peak_rss_mib": peak,
            "rss_after_build_mib": before}


def environment(args) -> dict:
    return {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
            "cpus": os.cpu_count(), "cpu": cpu_description(),
            "stack": f"Keras {keras.__version__}", "tensorflow": tf.__version__,
            "gpus": len(tf.config.list_physical_devices("GPU")), "xla": args.xla,
            "mixed_precision": args.mixed_precision,
            "warmup": args.warmup, "repeats": args.repeats}


def fmt(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:,.1f}"


def targets_table(r: dict, peer: dict) -> list:
    """Issue #6's targets at BERT-base shapes, met or not.  The fused step is judged
    against the straightforward loop (both models' full forwards with every output, the
    same terms), as decided after issue #16; its ratio to a teacher forward plus a
    student step, both of which already run their deepest layer at [CLS] only, is in the
    ratio table above."""
    rows = [("fused `all` step <= 0.95x the straightforward loop",
             1.0 / r["naive_distill_step / distill_all"], 0.95, "<="),
            ("mean sid internal stage <= 0.65x the `all` step",
             r["mean sid internal stage / distill_all"], 0.65, "<="),
            ("classifier stage with cached logits <= 1.05x a student train step",
             r["sid classifier cached / student_train_step"], 1.05, "<="),
            ("exported student >= 1.95x the teacher's throughput, batch 32",
             r["serving student / teacher throughput, batch 32"], 1.95, ">=")]
    if peer:
        rows += [("`all` step >= 1.4x TextBrewer", peer["all"], 1.4, ">="),
                 ("whole sid run >= 2x a TextBrewer run", peer["sid"], 2.0, ">=")]
    lines = ["### Targets", "", "| target | measured | met |", "|---|---:|---|"]
    for label, value, bound, sense in rows:
        met = value <= bound if sense == "<=" else value >= bound
        lines.append(f"| {label} | {value:.3f} | {'yes' if met else '**no**'} |")
    return lines + [""]


def speedup_section(result: dict) -> list:
    """scripts/bench_speedup.py's table: the student's speed-up at short lengths."""
    shapes, cpu = result["shapes"], result["cpu"]
    lines = [f"## Speed-up at short lengths: {shapes['teacher_layers']} -> "
             f"{shapes['student_layers']} layers, hidden {shapes['hidden']}, batch "
             f"{shapes['batch']} ({cpu['model']}, {cpu['isa']}, bfloat16 "
             f"{'yes' if cpu['bfloat16'] else 'no'})", "",
             f"{result['date']}, {result['cpus']} CPUs, `scripts/bench_speedup.py`: "
             f"{len(result['runs'])} runs in separate processes, {shapes['dev_examples']} "
             "dev examples of 4-40 tokens (most under 16), random weights.", "",
             "| measurement | " + " | ".join(f"run {i} teacher / student ex/s, speed-up"
                                            for i in range(1, len(result["runs"]) + 1))
             + " | spread |", "|---|" + "---:|" * (len(result["runs"]) + 1)]
    for name, value in result["summary"].items():
        cells = [f"{run[name]['teacher']:,.0f} / {run[name]['student']:,.0f}, "
                 f"{run[name]['speedup']:.2f}x" for run in result["runs"]]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {value['spread']:.1%} |")
    serving = min(result["summary"]["serving_batch_32_len_16"]["speedups"])
    spread = result["summary"]["dev_pass"]["spread"]
    lines += ["", "| target | measured | met |", "|---|---:|---|",
              f"| results.json speed-up: two runs within {result['agreement_bound']:.0%} "
              f"| {spread:.1%} | {'yes' if spread <= result['agreement_bound'] else '**no**'} |",
              f"| serving student / teacher at batch 32, length 16 >= "
              f"{result['serving_target']}x (lowest run) | {serving:.2f}x | "
              f"{'yes' if serving >= result['serving_target'] else '**no**'} |", ""]
    return lines


def jax_section(result: dict, paired: dict = None) -> list:
    """scripts/bench_jax.py's table (and bench_peer.py --peer=jax's paired rounds)."""
    size, env = result["size"], result["environment"]
    device = env["device"]
    where = (f"{device['cpu']['model']}, {device['cpu']['isa']}, bfloat16 "
             f"{'yes' if device['cpu']['bfloat16'] else 'no'}" if device.get("cpu")
             else device["name"])
    lines = [f"## Keras on JAX: {size['teacher_layers']} -> {size['student_layers']} layers, "
             f"hidden {size['hidden']}, batch {size['batch']}, length {size['seq']}, "
             f"{result['precision']} ({where})", "",
             f"{env['date']}, {env['cpus']} CPUs, Keras {env['keras']}, JAX {env['jax']}, "
             f"`scripts/bench_jax.py`, jitted steps, median of {env['repeats']}.", "",
             "| measurement | ms | examples/s | TFLOP/s |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {v['seconds'] * 1000:,.1f} | {fmt(v['examples_per_second'])} | "
              f"{v['tflops_per_second']:.3f} |" for name, v in result["timings"].items()]
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {name} | {value:.3f} |" for name, value in result["ratios"].items()]
    lines.append("")
    if paired:
        lines += [f"JAX against TensorFlow, paired rounds ({paired['date']}, "
                  "`scripts/bench_peer.py --peer=jax`): the `all` step of each backend "
                  "timed back to back in fresh processes, order alternating.", "",
                  "| round | TensorFlow s | JAX s | JAX / TensorFlow |",
                  "|---:|---:|---:|---:|"]
        lines += [f"| {i} | {r['kd_keras_seconds']:.2f} | {r['jax_seconds']:.2f} | "
                  f"{r['ratio']:.2f}x |" for i, r in enumerate(paired["rounds"], 1)]
        met = paired["median_ratio"] <= 1.2
        lines += ["", "| target | measured | met |", "|---|---:|---|",
                  f"| JAX `all` step no slower than 1.2x the TensorFlow one (median round) "
                  f"| {paired['median_ratio']:.2f}x | {'yes' if met else '**no**'} |", ""]
    return lines


def gpu_section(summary: dict) -> list:
    """scripts/gpu_bench.sh's run (scripts/gpu_summary.py's summary.json)."""
    from gpu_summary import targets

    size = summary["size"]
    lines = [f"## GPU: {summary['device']['name']}, {size['teacher_layers']} -> "
             f"{size['student_layers']} layers, hidden {size['hidden']}, batch "
             f"{size['batch']}, length {size['seq']}", "",
             f"{summary['date']}, `scripts/gpu_bench.sh`: Keras {summary['keras']} on JAX "
             f"{summary['jax']} against a hand-written eager PyTorch {summary['torch']} step "
             "with the same terms (checked equal first), random weights, median of "
             f"{summary['repeats']}. MFU: nominal model FLOPs (bench_sizes.step_flops) "
             f"over {summary['peak_tflops']} TFLOP/s peak.", "",
             "| precision | kd_keras `all` ms | eager PyTorch ms | PyTorch / kd_keras | "
             "kd_keras `all` / (teacher fwd + student step) | MFU kd_keras | MFU PyTorch |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for precision, row in summary["precisions"].items():
        mfu = [f"{v:.1%}" if v is not None else "n/a"
               for v in (row["kd_keras_all_mfu"], row["torch_all_mfu"])]
        lines.append(f"| {precision} | {row['kd_keras_all_ms']:.2f} | {row['torch_all_ms']:.2f}"
                     f" | {row['torch_all / kd_keras_all']:.2f}x | "
                     f"{row['kd_keras_all / (teacher_forward + student_train_step)']:.3f} | "
                     f"{mfu[0]} | {mfu[1]} |")
    lines += ["", "| target | measured | met |", "|---|---:|---|"]
    lines += [f"| {label} | {value:.2f} | {'yes' if met else '**no**'} |"
              for label, value, _, met in targets(summary)]
    return lines + [""]


def augment_section(result: dict) -> list:
    """What text without labels costs (scripts/bench_augment.py)."""
    cpu = result["cpu"]
    lines = [f"## Text without labels: augmentation and a longer epoch ({cpu['model']}, "
             f"{cpu['isa']})", "",
             f"{result['date']}, `scripts/bench_augment.py`: {result['examples']} "
             f"{result['data']} examples, {result['copies']} copies each, the "
             f"{result['teacher']}'s vocabulary and embeddings; epochs of sid's first "
             f"stage (3-layer student), batch {result['batch_size']}.", "",
             "| measurement | s | examples/s |", "|---|---:|---:|"]
    lines += [f"| {name} | {value['seconds']:,.2f} | {value['examples_per_second']:,.1f} |"
              for name, value in result["timings"].items()]
    timings = result["timings"]
    writing = timings["augment_embedding"]["seconds"] + timings["tokenize_copies"]["seconds"]
    lines += ["", f"An epoch over the labelled examples and their copies takes "
              f"**{result['epoch_ratio']:.2f}x** the labelled epoch, for "
              f"{result['data_ratio']}x the examples. Writing and tokenizing the copies "
              f"(embedding method) took {writing:,.1f} s, "
              f"{writing / timings['epoch_with_copies']['seconds']:.2f}x one such epoch; "
              "it is done once per data, method, copies and seed (reruns read it back)."]
    if "augment_mlm" in timings:
        mlm = timings["augment_mlm"]["examples_per_second"]
        embedding = timings["augment_embedding"]["examples_per_second"]
        lines += ["", f"TinyBERT's masked-LM method (`--augment_method=mlm`, timed on the "
                  f"first {result['mlm_examples']} examples with the {result['teacher']} "
                  "encoder and a random masked-LM head: one pass per replaceable word) "
                  f"writes {mlm:,.1f} examples/s, {embedding / mlm:,.0f}x slower than the "
                  f"embedding method: {result['examples']} examples take "
                  f"{result['examples'] / mlm / 60:,.1f} min, once."]
    return lines + [""]


def write_markdown() -> str:
    """Rebuilds BENCHMARKS.md from every JSON result in benchmarks/."""
    found = {}
    for name in sorted(os.listdir(BENCH_DIR)):
        if name.endswith(".json"):
            with open(os.path.join(BENCH_DIR, name)) as handle:
                found[name[:-5]] = json.load(handle)
    lines = ["# Benchmarks", "",
             "Written by `scripts/bench.py` (and `scripts/bench_textbrewer.py` for the "
             "PyTorch peer) from the JSON files in `benchmarks/`; do not edit by hand. "
             "Timings are medians after warm-up, every row of one table measured in one "
             "process on the same inputs. Compare ratios, not absolute numbers: this "
             "machine's timings are noisy.", ""]
    # One table per size and CPU type: <size>.json (the first machine's, on the earlier
    # tf-keras stack) and <size>@<cpu tag>.json.
    keys = sorted((k for k in found if k.split("@")[0] in ("tiny", "base")),
                  key=lambda k: (k.split("@")[0] != "tiny", k))
    for key in keys:
        result = found[key]
        size_name, _, tag = key.partition("@")
        suffix = f"@{tag}" if tag else ""
        size, env = result["size"], result["environment"]
        cpu = env.get("cpu")
        where = (f"{cpu['model']}, {cpu['isa']}, bfloat16 "
                 f"{'yes' if cpu['bfloat16'] else 'no'}" if cpu
                 else "earlier tf-keras stack, Intel with AVX512-BF16: benchmarks/NOTES.md")
        lines += [f"## {size_name}: {size['teacher_layers']} -> "
                  f"{size['student_layers']} layers, hidden {size['hidden']}, batch "
                  f"{size['batch']}, length {size['seq']} ({where})", "",
                  f"{env['date']}, {env['cpus']} CPUs, "
                  f"{env.get('stack', 'tf-keras 2.21 + Hugging Face TF BERT')}, TF "
                  f"{env['tensorflow']}, GPUs {env['gpus']}, XLA {env['xla']}, precision "
                  f"{env['mixed_precision']}, median of {env['repeats']}.", "",
                  "| measurement | ms | examples/s |", "|---|---:|---:|"]
        for name, value in result["timings"].items():
            lines.append(f"| {name} | {value['seconds'] * 1000:,.1f} | "
                         f"{fmt(value['examples_per_second'])} |")
        lines += ["", "| ratio | value |", "|---|---:|"]
        lines += [f"| {name} | {value:.3f} |" for name, value in result["ratios"].items()]
        lines.append("")
        rss = found.get(f"{size_name}_rss{suffix}")
        if rss:
            lines += [f"Peak RSS of an `all` distill step at batch {rss['batch']}, length "
                      f"{rss['seq']}: **{rss['peak_rss_mib']:,.0f} MiB** "
                      f"({rss['rss_after_build_mib']:,.0f} MiB once the models are built).",
                      ""]
        peer = found.get(f"textbrewer_{size_name}{suffix}")
        peer_ratios = {}
        if peer:
            ours = result["timings"]["distill_all"]["examples_per_second"]
            theirs = peer["examples_per_second"]
            sid_share = result["ratios"][
                "sid run (N internal + cached classifier epochs) / same epochs of all"]
            peer_ratios = {"all": ours / theirs, "sid": ours / theirs / sid_share}
            runs = ", ".join(f"{peer['size']['batch'] / t:.2f}"
                             for t in peer.get("runs_seconds", [peer["seconds"]]))
            parts = peer.get("components_seconds", {})
            lines += [f"### PyTorch peer: TextBrewer {peer['textbrewer']}, torch "
                      f"{peer['torch']}", "",
                      "| | examples/s |", "|---|---:|",
                      f"| TextBrewer step (same losses, all layers; median of runs {runs}) "
                      f"| {theirs:.2f} |",
                      f"| kd_keras `all` step | {ours:.2f} |", ""]
            if parts:
                lines += [f"PyTorch components: teacher forward "
                          f"{parts['teacher_forward'] * 1000:,.0f} ms, student train step "
                          f"{parts['student_train_step'] * 1000:,.0f} ms (kd_keras: "
                          f"{result['timings']['teacher_forward']['seconds'] * 1000:,.0f} "
                          f"and {result['timings']['student_train_step']['seconds'] * 1000:,.0f}"
                          " ms).", ""]
            paired = found.get(f"peer_{size_name}{suffix}")
            if paired:
                # Alternating rounds (scripts/bench_peer.py) cancel the machine's drift,
                # which a ratio of the two separate runs above carries.
                peer_ratios["all"] = paired["median_ratio"]
                peer_ratios["sid"] = paired["median_ratio"] / sid_share
                lines += [f"Paired rounds ({paired['date']}, `scripts/bench_peer.py`): both "
                          "steps timed back to back in each round, order alternating.", "",
                          "| round | kd_keras `all` s | TextBrewer s | ratio |",
                          "|---:|---:|---:|---:|"]
                lines += [f"| {i} | {r['kd_keras_seconds']:.2f} | "
                          f"{r['textbrewer_seconds']:.2f} | {r['ratio']:.2f}x |"
                          for i, r in enumerate(paired["rounds"], 1)]
                lines.append("")
            lines += [f"kd_keras `all` / TextBrewer"
                      f"{' (median of the paired rounds)' if paired else ''}: "
                      f"**{peer_ratios['all']:.2f}x**; a whole "
                      f"sid run / a TextBrewer run of the same epochs: "
                      f"**{peer_ratios['sid']:.2f}x** faster "
                      "(TextBrewer computes every layer in every step).", ""]
        if key.startswith("base"):
            lines += targets_table(result["ratios"], peer_ratios)
    for key in sorted(k for k in found if k.startswith("speedup@")):
        lines += speedup_section(found[key])
    for key in sorted(k for k in found if k.startswith("jax_")):
        lines += jax_section(found[key], found.get(f"backends_{key[4:]}"))
    for key in sorted(k for k in found if k.startswith("gpu_")):
        lines += gpu_section(found[key])
    for key in sorted(k for k in found if k.startswith("augment@")):
        lines += augment_section(found[key])
    for key in sorted(k for k in found if k.startswith("export@")):
        from bench_export import export_section

        lines += export_section(found[key])
    for key in sorted(k for k in found if k.startswith("memory@")):
        from bench_memory import memory_section

        lines += memory_section(found[key])
    notes = os.path.join(BENCH_DIR, "NOTES.md")
    if os.path.exists(notes):
        with open(notes) as handle:
            lines += [handle.read().strip(), ""]
    path = os.path.join(REPO, "BENCHMARKS.md")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow",
                        help="jax: run scripts/bench_jax.py (its own flags follow)")
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rss", action="store_true",
                        help="only measure peak memory of an `all` step at --rss_batch")
    parser.add_argument("--rss_batch", type=int, default=32)
    parser.add_argument("--xla", action="store_true")
    parser.add_argument("--mixed_precision", default="none",
                        choices=["none", "mixed_float16", "mixed_bfloat16"])
    parser.add_argument("--only_all", action="store_true",
                        help="only time the `all` step; print one JSON line, write nothing")
    parser.add_argument("--no_write", action="store_true", help="print only")
    parser.add_argument("--markdown_only", action="store_true",
                        help="only rebuild BENCHMARKS.md from benchmarks/*.json")
    args, rest = parser.parse_known_args()
    if args.backend == "jax":
        # Keras' backend is fixed at its first import (TensorFlow, here): a new process.
        command = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                "bench_jax.py"),
                   f"--size={args.size}", f"--warmup={args.warmup}",
                   f"--repeats={args.repeats}"] + (["--only_all"] if args.only_all else []) \
            + (["--no_write"] if args.no_write else []) + rest
        return subprocess.run(command, env=dict(os.environ, KERAS_BACKEND="jax")).returncode
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.markdown_only:
        print(f"Wrote {write_markdown()}")
        return 0
    if args.mixed_precision != "none":
        keras.mixed_precision.set_global_policy(args.mixed_precision)
    keras.utils.set_random_seed(0)
    size = SIZES[args.size]
    if args.only_all:
        print(json.dumps(run_all_step(args, size)))
        return 0
    if args.rss:
        result, name = dict(run_rss(args, size), environment=environment(args)), \
            f"{args.size}_rss@{cpu_description()['tag']}"
    else:
        timings = run_timings(args, size)
        result = {"size": size, "environment": environment(args), "timings": timings,
                  "ratios": ratios(timings, size["student_layers"])}
        name = f"{args.size}@{result['environment']['cpu']['tag']}"
        print()
        for label, value in result["ratios"].items():
            print(f"{label:<72} {value:6.3f}")
    if not args.no_write:
        os.makedirs(BENCH_DIR, exist_ok=True)
        with open(os.path.join(BENCH_DIR, f"{name}.json"), "w") as handle:
            json.dump(result, handle, indent=2)
        print(f"Wrote {write_markdown()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
