"""Sums up a scripts/gpu_bench.sh run: kd_keras on JAX against the eager PyTorch step.

    python scripts/gpu_summary.py OUT_DIR      # reads jax_*.json, torch_*.json, gpu.txt

Prints, per precision, both steps, their ratio, kd_keras' `all` step against its parts
(teacher forward + student train step) and the model-FLOP utilisation, then issue #17's
GPU targets; writes OUT_DIR/summary.json, the file BENCHMARKS.md is built from
(benchmarks/gpu_<size>@<gpu tag>.json).  Needs only the standard library.
"""

from __future__ import annotations

import json
import os
import sys

# Issue #17's GPU targets for the bfloat16 `all` step.
TARGET_VS_TORCH = 3.0
TARGET_VS_PARTS = 1.1


def summarize(folder: str) -> dict:
    """The summary of the JSON files in ``folder``, by precision."""
    precisions, first = {}, None
    for precision in ("bfloat16", "float32"):
        paths = [os.path.join(folder, f"{who}_{precision}.json") for who in ("jax", "torch")]
        if not all(os.path.exists(path) for path in paths):
            continue
        with open(paths[0]) as a, open(paths[1]) as b:
            ours, peer = json.load(a), json.load(b)
        first = first or (ours, peer)
        t, p = ours["timings"], peer["timings"]
        precisions[precision] = {
            "kd_keras_all_ms": t["distill_all"]["seconds"] * 1000,
            "kd_keras_teacher_forward_ms": t["teacher_forward"]["seconds"] * 1000,
            "kd_keras_student_train_step_ms": t["student_train_step"]["seconds"] * 1000,
            "torch_all_ms": p["distill_all"]["seconds"] * 1000,
            "torch_teacher_forward_ms": p["teacher_forward"]["seconds"] * 1000,
            "kd_keras_examples_per_second": t["distill_all"]["examples_per_second"],
            "torch_examples_per_second": p["distill_all"]["examples_per_second"],
            "torch_all / kd_keras_all": p["distill_all"]["seconds"]
            / t["distill_all"]["seconds"],
            "kd_keras_all / (teacher_forward + student_train_step)":
                ours["ratios"]["fused_all / (teacher_forward + student_train_step)"],
            "kd_keras_all_tflops_per_second": t["distill_all"]["tflops_per_second"],
            "kd_keras_all_mfu": (ours.get("mfu") or {}).get("distill_all"),
            "torch_all_mfu": (p["distill_all"]["tflops_per_second"]
                              / ours["environment"]["peak_tflops"]
                              if ours["environment"].get("peak_tflops") else None),
        }
    if not precisions:
        raise SystemExit(f"error: no jax_<precision>.json with its torch_<precision>.json "
                         f"in {folder}; run scripts/gpu_bench.sh first.")
    ours, peer = first
    gpu = ""
    if os.path.exists(os.path.join(folder, "gpu.txt")):
        with open(os.path.join(folder, "gpu.txt")) as handle:
            gpu = handle.read().strip()
    return {"date": ours["environment"]["date"], "size": ours["size"],
            "device": ours["environment"]["device"], "nvidia_smi": gpu,
            "keras": ours["environment"]["keras"], "jax": ours["environment"]["jax"],
            "torch": peer["torch"], "peak_tflops": ours["environment"].get("peak_tflops"),
            "repeats": ours["environment"]["repeats"], "precisions": precisions}


def targets(summary: dict) -> list:
    """(label, measured, bound, met) of the GPU targets, where bfloat16 was measured."""
    bf16 = summary["precisions"].get("bfloat16")
    if not bf16:
        return []
    vs_torch = bf16["torch_all / kd_keras_all"]
    vs_parts = bf16["kd_keras_all / (teacher_forward + student_train_step)"]
    return [(f"bfloat16 `all` step >= {TARGET_VS_TORCH:g}x faster than eager PyTorch",
             vs_torch, TARGET_VS_TORCH, vs_torch >= TARGET_VS_TORCH),
            (f"bfloat16 `all` step <= {TARGET_VS_PARTS:g}x (teacher forward + student step)",
             vs_parts, TARGET_VS_PARTS, vs_parts <= TARGET_VS_PARTS)]


def main() -> int:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python scripts/gpu_summary.py OUT_DIR")
    folder = sys.argv[1]
    summary = summarize(folder)
    print(f"\n{summary['device']['name']}: BERT {summary['size']['teacher_layers']} -> "
          f"{summary['size']['student_layers']}, batch {summary['size']['batch']}, length "
          f"{summary['size']['seq']}; Keras {summary['keras']} on JAX {summary['jax']}, "
          f"PyTorch {summary['torch']}")
    for precision, row in summary["precisions"].items():
        mfu = row["kd_keras_all_mfu"]
        print(f"{precision:>9}: kd_keras `all` {row['kd_keras_all_ms']:.2f} ms, eager "
              f"PyTorch {row['torch_all_ms']:.2f} ms ({row['torch_all / kd_keras_all']:.2f}x); "
              f"`all` / (teacher forward {row['kd_keras_teacher_forward_ms']:.2f} + student "
              f"step {row['kd_keras_student_train_step_ms']:.2f} ms) = "
              f"{row['kd_keras_all / (teacher_forward + student_train_step)']:.3f}; MFU "
              + (f"{mfu:.1%}" if mfu is not None else "n/a (unknown peak)"))
    for label, value, _, met in targets(summary):
        print(f"target: {label}: {value:.2f} ({'met' if met else 'NOT met'})")
    path = os.path.join(folder, "summary.json")
    with open(path, "w") as handle:
        json.dump(summary, handle, indent=2)
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
