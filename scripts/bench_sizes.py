"""Benchmark shapes shared by bench.py (TensorFlow), bench_jax.py (Keras on JAX),
bench_textbrewer.py and bench_torch_step.py (PyTorch); the inputs and models they build
(kd_keras imported when used, so the PyTorch scripts need none of it); the nominal
FLOPs of a step; the ratios the tables report; the CPU description every benchmark file
is named by (an AVX-512 CPU held to AVX2 by ``AVX2_CAP`` included); and the student
export the serving timings call (TensorFlow only, imported when used)."""

import os
import platform
import statistics
import sys

SIZES = {
    "tiny": dict(teacher_layers=4, student_layers=2, hidden=64, heads=4, intermediate=128,
                 vocab=512, batch=16, seq=32),
    "base": dict(teacher_layers=12, student_layers=6, hidden=768, heads=12,
                 intermediate=3072, vocab=30522, batch=16, seq=128),
}
# The GPU measurements of issue #17: BERT-base shapes at batch 32.
SIZES["base32"] = dict(SIZES["base"], batch=32)


def numpy_inputs(size: dict, batch: int, seed: int = 0):
    """A fixed batch of pair inputs, the last quarter of the second half's rows padded.

    Returns:
        (features: input_ids, attention_mask, token_type_ids int32 [batch, seq],
        labels int32 [batch]).
    """
    import numpy as np

    rng = np.random.RandomState(seed)
    seq = size["seq"]
    ids = rng.randint(5, size["vocab"], size=(batch, seq)).astype(np.int32)
    mask = np.ones((batch, seq), np.int32)
    mask[batch // 2:, seq - seq // 4:] = 0
    ids[mask == 0] = 0
    ids[:, 0] = 2
    types = np.zeros((batch, seq), np.int32)
    types[:, seq // 2:] = 1
    types[mask == 0] = 0
    features = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return features, rng.randint(0, 2, size=batch).astype(np.int32)


def build_pair(size: dict):
    """A random BERT teacher of the size and a student cut from it (every
    (L_t / L_s)-th layer): (teacher, student, mapping)."""
    from kd_keras import models

    config = models.bert_config(size["vocab"], 2, num_layers=size["teacher_layers"],
                                hidden_size=size["hidden"], num_heads=size["heads"],
                                intermediate_size=size["intermediate"],
                                max_position_embeddings=max(512, size["seq"]))
    teacher = models.build_model(config, seed=1)
    pairs = mapping(size)
    student = models.derive_student(teacher, size["student_layers"], pairs)
    return teacher, student, pairs


def distiller_for(teacher, student, pairs, schedule: str, jit_compile: bool):
    """A compiled Distiller of one schedule with the pipeline's optimizer."""
    from kd_keras import config, distiller, optimization, schedules

    method = config.DistillConfig(schedule=schedule, epochs=1, epochs_per_stage=1)
    model = distiller.Distiller(student, None if schedule == "finetune" else teacher,
                                schedules.build(method, pairs))
    model.compile(optimizer=optimization.make_optimizer(1e-5, 10_000, 0.0, 0.01),
                  jit_compile=jit_compile)
    model.build_optimizer()
    return model


def median_seconds(step, warmup: int, repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``step`` after ``warmup`` calls
    (``step`` waits for its own result)."""
    import time

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_row(name: str, step, examples: int, flops: float, warmup: int,
              repeats: int) -> dict:
    """Times ``step`` (median_seconds), prints a table row and returns it: seconds,
    examples/s and TFLOP/s of ``flops`` nominal FLOPs."""
    seconds = median_seconds(step, warmup, repeats)
    row = {"seconds": seconds, "examples_per_second": examples / seconds,
           "tflops_per_second": flops / seconds / 1e12}
    print(f"{name:<34} {seconds * 1000:10.2f} ms  {examples / seconds:9.1f} ex/s "
          f"{row['tflops_per_second']:8.2f} TFLOP/s", flush=True)
    return row


def layer_flops(size: dict) -> float:
    """Nominal FLOPs of one encoder layer's forward pass over the whole batch: the six
    matrix products per token (Q, K, V, attention output, two feed-forward) and the two
    attention products (scores, context), 2 FLOPs per multiply-add."""
    tokens = size["batch"] * size["seq"]
    hidden, inner = size["hidden"], size["intermediate"]
    dense = 2 * tokens * (4 * hidden * hidden + 2 * hidden * inner)
    attention = 2 * 2 * size["batch"] * size["seq"] * size["seq"] * hidden
    return float(dense + attention)


def step_flops(size: dict, forward_layers: int, trained_layers: int) -> float:
    """Nominal FLOPs of a step that runs ``forward_layers`` layers forward only (the
    frozen teacher) and ``trained_layers`` forward and backward (3x a forward: the
    backward pass computes gradients for both inputs and weights).  Embeddings, the
    head and the losses are left out (under 1% at BERT-base shapes), and so is the
    saving of the [CLS]-only last layer: model FLOPs count the layers as written."""
    return layer_flops(size) * (forward_layers + 3 * trained_layers)


def mapping(size: dict):
    """[(student_layer, teacher_layer)], 1-based: every (L_t / L_s)-th teacher layer."""
    step = size["teacher_layers"] // size["student_layers"]
    return [(k, k * step) for k in range(1, size["student_layers"] + 1)]


def ratios(timings: dict, n: int) -> dict:
    """The ratios the benchmark tables report, each one whose rows were timed.

    Args:
        timings: row name -> {"seconds": ...}, as bench.py and bench_jax.py record them.
        n: the student's layer count (the number of sid internal stages).
    """
    s = {name: value["seconds"] for name, value in timings.items()}
    sid_stages = [f"distill_sid_stage_{k}" for k in range(1, n + 1)]

    def sid_internal():
        return statistics.mean(s[stage] for stage in sid_stages)

    def quotient(numerator: str, denominator: str):
        return [numerator, denominator], lambda: s[numerator] / s[denominator]

    formulas = [
        ("fused_all / (teacher_forward + student_train_step)",
         ["distill_all", "teacher_forward", "student_train_step"],
         lambda: s["distill_all"] / (s["teacher_forward"] + s["student_train_step"])),
        ("naive_distill_step / distill_all", *quotient("naive_distill_step", "distill_all")),
        ("mean sid internal stage / distill_all", sid_stages + ["distill_all"],
         lambda: sid_internal() / s["distill_all"]),
        ("pid stage 1 / distill_all", *quotient("distill_pid_stage_1", "distill_all")),
        ("sid classifier cached / student_train_step",
         *quotient("distill_sid_classifier_cached", "student_train_step")),
        ("sid classifier uncached / student_train_step",
         *quotient("distill_sid_classifier", "student_train_step")),
        ("serving student / teacher throughput, batch 32",
         *quotient("serving_teacher_batch_32", "serving_student_batch_32")),
        ("serving student / teacher throughput, batch 1",
         *quotient("serving_teacher_batch_1", "serving_student_batch_1")),
        # One epoch of each stage, as a share of as many epochs of `all` steps.
        ("sid run (N internal + cached classifier epochs) / same epochs of all",
         sid_stages + ["distill_sid_classifier_cached", "distill_all"],
         lambda: (n * sid_internal() + s["distill_sid_classifier_cached"])
         / ((n + 1) * s["distill_all"])),
    ]
    return {name: formula() for name, rows, formula in formulas if set(rows) <= set(s)}


# What caps both frameworks at AVX2 on an AVX-512 CPU: oneDNN (TensorFlow's and
# PyTorch's), MKL (PyTorch's matrix products) and PyTorch's own kernels.
AVX2_CAP = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
            "ATEN_CPU_CAPABILITY": "avx2"}


def isa_cap(environ=None) -> str:
    """"AVX2" when the environment caps the libraries at AVX2 (all of ``AVX2_CAP``), "" when
    none of those variables is set; exits (2) with a one-line error on a partial cap,
    which would time one framework capped and the other not."""
    environ = os.environ if environ is None else environ
    found = {name: environ.get(name, "") for name in AVX2_CAP}
    if not any(found.values()):
        return ""
    if all(found[name].lower() == value.lower() for name, value in AVX2_CAP.items()):
        return "AVX2"
    wanted = " ".join(f"{name}={value}" for name, value in AVX2_CAP.items())
    print(f"error: cap both frameworks or neither: set all of {wanted} (found {found})",
          file=sys.stderr)
    raise SystemExit(2)


# Checked on import, so that a half-capped environment fails before any timing, not
# after it when the result file is named.
isa_cap()


def cpu_description(environ=None) -> dict:
    """The CPU model and the vector extensions that decide TensorFlow's speed on it; an
    AVX-512 CPU capped at AVX2 (``isa_cap``) is described, and tagged, as such."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name") and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    isa_tag = isa.lower().replace("-", "")
    if isa_cap(environ) and isa == "AVX-512":
        isa, bf16, isa_tag = "AVX-512 capped at AVX2", False, "avx512-capped-avx2"
    return {"model": model, "isa": isa, "bfloat16": bf16,
            "tag": "-".join(model.lower().replace("(r)", "").replace("(tm)", "").split()[:2]
                            + [isa_tag] + (["bf16"] if bf16 else []))}


def serving_signature(model, vocab_size: int, folder: str, max_seq_length: int):
    """Exports ``model`` as the student export does (a made-up vocabulary of
    ``vocab_size`` tokens) and returns its loaded ``serving_default`` signature."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the export's raw-text signature needs its ops)

    from kd_keras.export import saved_model

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
        f"w{i}" for i in range(vocab_size - 5)]
    path = os.path.join(folder, "1")
    saved_model.save(path, model, vocab, ["a", "b"], max_seq_length, True)
    return tf.saved_model.load(path).signatures["serving_default"]
