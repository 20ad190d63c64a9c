"""Benchmark shapes shared by bench.py (TensorFlow) and bench_textbrewer.py (PyTorch),
and the CPU description every benchmark file is named by."""

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
