"""Benchmark shapes shared by bench.py (TensorFlow) and bench_textbrewer.py (PyTorch),
the CPU description every benchmark file is named by, and the student export the
serving timings call (TensorFlow only, imported when used)."""

import platform

SIZES = {
    "tiny": dict(teacher_layers=4, student_layers=2, hidden=64, heads=4, intermediate=128,
                 vocab=512, batch=16, seq=32),
    "base": dict(teacher_layers=12, student_layers=6, hidden=768, heads=12,
                 intermediate=3072, vocab=30522, batch=16, seq=128),
}


def mapping(size: dict):
    """[(student_layer, teacher_layer)], 1-based: every (L_t / L_s)-th teacher layer."""
    step = size["teacher_layers"] // size["student_layers"]
    return [(k, k * step) for k in range(1, size["student_layers"] + 1)]


def cpu_description() -> dict:
    """The CPU model and the vector extensions that decide TensorFlow's speed on it."""
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
    return {"model": model, "isa": isa, "bfloat16": bf16,
            "tag": "-".join(model.lower().replace("(r)", "").replace("(tm)", "").split()[:2]
                            + [isa.lower().replace("-", "")]
                            + (["bf16"] if bf16 else []))}


def serving_signature(model, vocab_size: int, folder: str, max_seq_length: int):
    """Exports ``model`` as the student export does (a made-up vocabulary of
    ``vocab_size`` tokens) and returns its loaded ``serving_default`` signature."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the export's raw-text signature needs its ops)

    from kd_keras import export

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
        f"w{i}" for i in range(vocab_size - 5)]
    path = export.export_student(model, vocab, ["a", "b"], folder, max_seq_length, True)
    return tf.saved_model.load(path).signatures["serving_default"]
