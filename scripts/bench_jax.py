"""Distillation step timings on Keras' JAX backend, on a CPU or a GPU; needs no TensorFlow.

    python scripts/bench_jax.py --size=tiny                  # seconds, on this CPU
    python scripts/bench.py --backend=jax --size=base         # the same, started by bench.py
    python scripts/bench_jax.py --size=base --only_all        # one JSON line: the `all` step
                                                              # (scripts/bench_peer.py --peer=jax)
    python scripts/bench_jax.py --size=base32 --precision=bfloat16 --json=OUT.json
                                                              # a GPU run (scripts/gpu_bench.sh)
    python scripts/bench_jax.py --check_inputs=DIR            # weights, a batch and the terms
                                                              # bench_torch_step.py --check reads

Each row times the jitted step that ``fit`` runs (the Distiller's train function, on the
same batch every call, the state passed from call to call) and waits for its result;
the median of --repeats calls after --warmup calls.  Besides the ratios bench.py prints,
it reports the model-FLOP utilisation: the nominal FLOPs of a step
(bench_sizes.step_flops) per second, as a share of the device's peak (--peak_tflops, or
the table below for known GPUs).  Results go to benchmarks/jax_<size>@<device tag>.json
(or --json) and BENCHMARKS.md is rebuilt (when TensorFlow is there to run bench.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

if os.environ.setdefault("KERAS_BACKEND", "jax") != "jax":
    raise SystemExit(f"error: bench_jax.py runs on JAX; unset KERAS_BACKEND (it is "
                     f"{os.environ['KERAS_BACKEND']}) or use scripts/bench.py.")

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(SCRIPTS)
sys.path[:0] = [REPO, SCRIPTS]

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench_sizes import (SIZES, build_pair, cpu_description, numpy_inputs,  # noqa: E402
                         ratios, step_flops, timed_row)
from bench_sizes import distiller_for as compiled_distiller  # noqa: E402
from kd_keras import backends, distiller, encoders  # noqa: E402
from kd_keras.data import batching  # noqa: E402

BENCH_DIR = os.path.join(REPO, "benchmarks")
# Dense peak TFLOP/s by the vendors' datasheets (SXM parts): bfloat16 on the tensor
# cores, and float32 as JAX computes it on these GPUs by default (TF32 tensor cores).
PEAK_TFLOPS = {"H100": {"bfloat16": 989.0, "float32": 494.5},
               "H200": {"bfloat16": 989.0, "float32": 494.5}}
ROWS = ("teacher_forward", "student_train_step", "distill_all", "distill_sid_stages",
        "distill_sid_classifier_cached")


def device_description() -> dict:
    """The device the steps run on: a GPU's name, or the CPU's model and vector units."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        cpu = cpu_description()
        return {"platform": "cpu", "name": cpu["model"], "tag": cpu["tag"], "cpu": cpu}
    name = device.device_kind
    return {"platform": device.platform, "name": name, "count": jax.device_count(),
            "tag": "-".join(name.lower().split())}


def peak_tflops(device: dict, precision: str, given: float | None) -> float | None:
    """--peak_tflops, else the table's figure for a known GPU, else None."""
    if given:
        return given
    for model, peaks in PEAK_TFLOPS.items():
        if model in device["name"].upper():
            return peaks[precision]
    return None


def distiller_for(teacher, student, mapping, schedule: str) -> distiller.Distiller:
    """A Distiller whose steps are jitted (un-jitted, JAX runs them op by op)."""
    return compiled_distiller(teacher, student, mapping, schedule, True)


def stage_step(model: distiller.Distiller, index: int, batch):
    """A callable running one jitted train step of stage ``index`` as fit runs it.

    The state starts as a copy of the variables' values (the step donates its input
    buffers, and the models are shared between Distillers) and is passed on from step to
    step; each call waits for the step's loss.
    """
    model.set_stage(index)
    model.make_train_function(force=True)
    state = [[jax.numpy.array(v.value, copy=True) for v in variables] for variables in (
        model.trainable_variables, model.non_trainable_variables,
        model.optimizer.variables, model.metrics_variables)]

    def step():
        nonlocal state
        logs, state = model.train_function(state, iter([batch]))
        assert np.isfinite(float(logs["loss"]))
    return step


def forward_step(model, x):
    """A callable running the jitted inference forward pass (logits) of ``model``."""
    forward = backends.current().logits_function(model)
    return lambda: jax.block_until_ready(forward(x))


def run_timings(args, size: dict, rows) -> dict:
    """The timings named in ``rows`` (ROWS) -> {name: seconds, examples/s, TFLOP/s}."""
    teacher, student, mapping = build_pair(size)
    features, labels = numpy_inputs(size, size["batch"])
    x = {k: jax.numpy.asarray(v) for k, v in features.items()}
    batch = (x, jax.numpy.asarray(labels))
    n, t = len(mapping), size["teacher_layers"]
    results = {}

    def record(name, step, flops):
        results[name] = timed_row(name, step, size["batch"], flops, args.warmup,
                                  args.repeats)

    if "teacher_forward" in rows:
        record("teacher_forward", forward_step(teacher, x), step_flops(size, t, 0))
    if "student_train_step" in rows:
        plain = distiller_for(teacher, student, mapping, "finetune")
        record("student_train_step", stage_step(plain, 0, batch), step_flops(size, 0, n))
    if "distill_all" in rows:
        fused = distiller_for(teacher, student, mapping, "all")
        record("distill_all", stage_step(fused, 0, batch), step_flops(size, t, n))
    if "distill_sid_stages" in rows:
        sid = distiller_for(teacher, student, mapping, "sid")
        step_layers = t // n
        for k in range(n):  # stage k+1 runs student layers 1..k+1 and their teacher layers
            record(f"distill_sid_stage_{k + 1}", stage_step(sid, k, batch),
                   step_flops(size, (k + 1) * step_layers, k + 1))
    if "distill_sid_classifier_cached" in rows:
        cached = distiller_for(teacher, student, mapping, "sid")
        logits = forward_step(teacher, x)()
        cached_batch = batching.pack(x, batch[1], teacher_logits=logits)
        record("distill_sid_classifier_cached", stage_step(cached, n, cached_batch),
               step_flops(size, 0, n))
    return results


def write_check_inputs(folder: str) -> None:
    """Writes what bench_torch_step.py --check compares against, at tiny size in float32
    with dropout off: both models' weights under their Hugging Face names, one batch,
    and every `all` term of the Distiller on it (terms.npz, weights.npz)."""
    size = dict(SIZES["tiny"], batch=6, seq=16)
    teacher, student, mapping = build_pair(size)
    features, labels = numpy_inputs(size, size["batch"], seed=5)
    model = distiller_for(teacher, student, mapping, "all")
    total, values, _ = model.compute_terms(features, labels, model.terms,
                                           model.teacher_outputs(features, model.terms),
                                           training=False)
    os.makedirs(folder, exist_ok=True)
    weights = {}
    for prefix, encoder in (("teacher/", teacher), ("student/", student)):
        for name, variable, transposed in encoders.named_variables(encoder):
            value = np.asarray(variable.value)
            weights[prefix + name] = value.T if transposed else value
    np.savez(os.path.join(folder, "weights.npz"), **weights)
    np.savez(os.path.join(folder, "terms.npz"), labels=labels, total=np.asarray(total),
             **features, **{f"term/{k}": np.asarray(v) for k, v in values.items()})
    with open(os.path.join(folder, "shapes.json"), "w") as handle:
        json.dump(dict(size, mapping=mapping), handle)
    print(f"Wrote {folder}: {len(weights)} tensors, terms {sorted(values)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                        help="bfloat16: Keras' mixed_bfloat16 policy (float32 weights)")
    parser.add_argument("--rows", default=",".join(ROWS),
                        help=f"comma-separated subset of {', '.join(ROWS)}")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peak_tflops", type=float, default=None,
                        help="the device's peak for the MFU (default: known GPUs only)")
    parser.add_argument("--only_all", action="store_true",
                        help="only time the `all` step; print one JSON line, write nothing")
    parser.add_argument("--json", default=None, help="write the result here instead")
    parser.add_argument("--no_write", action="store_true", help="print only")
    parser.add_argument("--check_inputs", default=None, metavar="DIR",
                        help="only write bench_torch_step.py --check's inputs to DIR")
    args = parser.parse_args()
    rows = args.rows.split(",")
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        parser.error(f"unknown --rows {unknown}; choose from {', '.join(ROWS)}")
    keras.utils.set_random_seed(0)
    if args.check_inputs:
        write_check_inputs(args.check_inputs)
        return 0
    if args.precision == "bfloat16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    size = SIZES[args.size]
    if args.only_all:
        timings = run_timings(args, size, ["distill_all"])
        print(json.dumps({"distill_all_seconds": timings["distill_all"]["seconds"],
                          "backend": keras.backend.backend()}))
        return 0
    device = device_description()
    print(f"Keras {keras.__version__} on JAX {jax.__version__}, {device['name']}, "
          f"{args.precision}", flush=True)
    timings = run_timings(args, size, rows)
    peak = peak_tflops(device, args.precision, args.peak_tflops)
    result = {"size": size, "backend": "jax", "precision": args.precision,
              "environment": {"date": time.strftime("%Y-%m-%d"), "device": device,
                              "cpus": os.cpu_count(), "keras": keras.__version__,
                              "jax": jax.__version__, "warmup": args.warmup,
                              "repeats": args.repeats, "peak_tflops": peak},
              "timings": timings, "ratios": ratios(timings, size["student_layers"])}
    if peak:
        result["mfu"] = {name: value["tflops_per_second"] / peak
                         for name, value in timings.items()}
    print()
    for label, value in result["ratios"].items():
        print(f"{label:<72} {value:6.3f}")
    for name, value in result.get("mfu", {}).items():
        print(f"model-FLOP utilisation, {name:<46} {value:6.1%}")
    if args.no_write:
        return 0
    path = args.json or os.path.join(
        BENCH_DIR, f"jax_{args.size}{'_bf16' if args.precision == 'bfloat16' else ''}"
        f"@{device['tag']}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(result, handle, indent=2)
    print(f"Wrote {path}")
    if not args.json:
        rebuild = subprocess.run([sys.executable, os.path.join(SCRIPTS, "bench.py"),
                                  "--markdown_only"],
                                 env={k: v for k, v in os.environ.items()
                                      if k != "KERAS_BACKEND"})
        if rebuild.returncode:
            print("BENCHMARKS.md not rebuilt (run scripts/bench.py --markdown_only where "
                  "TensorFlow is installed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
