"""Benchmark shapes shared by bench.py (TensorFlow) and bench_textbrewer.py (PyTorch)."""

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
