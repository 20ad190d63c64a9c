"""Exports in every format, each run by its own runtime: LiteRT by ai-edge-litert's
interpreter, ONNX by onnxruntime, the Hugging Face folder by our encoders; text turned
into inputs by the shipped text_inputs.py with TensorFlow and kd_keras out of reach."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from kd_keras import config, encoders, export
from kd_keras.data.examples import Example
from kd_keras.data.features import tokenize
from kd_keras.errors import DiskFull, ExportError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = [Example("w2 w4 w6", "w1 w3 w8 w5", 1), Example("w11 w13", "w20 w22 w24 w7 w9", 0),
            Example("w30 w31 w32 w33 w34 w35", "w40", 1)]


def training_text(count=60, seed=0):
    """Made-up training pairs of 1-8 words each, for full-integer calibration."""
    rng = np.random.default_rng(seed)
    words = lambda: " ".join(f"w{i}" for i in rng.integers(1, 41, rng.integers(1, 9)))
    return [Example(words(), words(), 0) for _ in range(count)]


def make_student():
    """A tiny student whose logits differ from example to example (a wide initialiser:
    the usual 0.02 gives near-constant logits, and any export would match them; at 0.3
    its activations have outliers that no int8 range of a trained student has)."""
    keras.utils.set_random_seed(0)
    return encoders.build(encoders.EncoderConfig("bert", 97, 48, 2, 3, 60, max_positions=64,
                                                 num_labels=2, initializer_range=0.2))


@pytest.fixture(scope="module")
def exported(tokenizer, tmp_path_factory):
    """One call writing every format of a tiny student."""
    student = make_student()
    folder = str(tmp_path_factory.mktemp("exports"))
    calibration = export.calibration_sample(tokenize(training_text(), tokenizer, 32), 32)
    folders = export.export(export.Exportable(student, tokenizer, ("no", "yes"), 32, True,
                                              calibration), folder, config.EXPORT_FORMATS)
    return student, folder, folders


def test_the_formats_of_the_flag_are_the_formats_written():
    assert tuple(export.WRITERS) == config.EXPORT_FORMATS


def test_one_call_writes_every_format_under_one_version(exported):
    _, folder, folders = exported
    assert folders["saved_model"] == os.path.join(folder, "1")
    for name in config.EXPORT_FORMATS[1:]:
        assert folders[name] == os.path.join(folder, name, "1")
    for name in export.IDS_FORMATS:
        assert {"labels.txt", "tokenizer.json", "text_inputs.py", "export.json"} <= set(
            os.listdir(folders[name]))
        assert open(os.path.join(folders[name], "labels.txt")).read() == "no\nyes\n"
    leftovers = [n for root, dirs, names in os.walk(folder) for n in dirs + names
                 if n.startswith(".")]
    assert not leftovers
    assert export.next_version(folder, ["onnx", "hf"]) == 2


def test_float_exports_give_the_students_logits_and_int8_stays_close(exported, tokenizer):
    student, _, folders = exported
    x = tokenize(EXAMPLES, tokenizer, 32).padded()
    expected = np.asarray(student(x))
    for name in ("litert", "onnx"):
        got = export.runner(name, folders[name])(x)
        assert np.abs(got - expected).max() <= 1e-4, name
    for name in ("litert_int8", "onnx_int8"):
        got = export.runner(name, folders[name])(x)
        # int8 weights: within a tenth of the logits' scale (MiniLM: BENCHMARKS.md)
        assert np.abs(got - expected).max() <= 0.1 * np.abs(expected).max(), name
    assert np.ptp(expected[:, 1] - expected[:, 0]) > 0.1  # logits that tell examples apart
    sizes = {name: os.path.getsize(os.path.join(folders[name], export.read_settings(
        folders[name])["model_file"])) for name in export.IDS_FORMATS}
    # Tiny matrices: int8 weights shrink the file, not yet 4x (BENCHMARKS.md: MiniLM).
    assert sizes["litert_int8"] < sizes["litert"] / 2 and sizes["onnx_int8"] < sizes["onnx"]


def int8_tensors(folder):
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(os.path.join(folder, "model.tflite")).get_tensor_details()
    return sum(detail["dtype"] == np.int8 for detail in details)


def test_full_integer_litert_computes_in_int8_and_gives_the_students_answers(exported,
                                                                             tokenizer):
    """Calibrated on other text, padded to 32: rows of different lengths (padding inside
    the batch) stay near the float student's logits and keep its clear answers (an
    untrained student has near ties int8 may flip), and the activations are int8 too (the
    int8-weight model has int8 weights only)."""
    student, _, folders = exported
    x = tokenize(EXAMPLES + training_text(20, seed=1), tokenizer, 32).padded()
    expected = np.asarray(student(x))
    got = export.runner("litert_full_int8", folders["litert_full_int8"])(x)
    scale = np.abs(expected).max()
    # Random students of this size: 0.08-0.18 of the scale; the encoder's -1e4 padding
    # mask in the int8 graph: 0.5-1.
    assert np.abs(got - expected).max() <= 0.25 * scale
    clear = np.abs(expected[:, 1] - expected[:, 0]) > 0.2 * scale
    assert clear.sum() >= 10
    assert (got.argmax(-1) == expected.argmax(-1))[clear].all()
    assert int8_tensors(folders["litert_full_int8"]) > 2 * int8_tensors(folders["litert_int8"])
    assert export.read_settings(folders["litert_full_int8"])["precision"].startswith(
        "int8 weights and activations")


def test_the_calibration_sample_is_spread_over_the_set_and_padded_to_one_length(tokenizer):
    train = tokenize(training_text(7), tokenizer, 32)
    sample = export.calibration_sample(train, 32, size=3)
    rows = [0, 3, 6]  # evenly spread: first, middle, last
    assert set(sample) == {"input_ids", "attention_mask", "token_type_ids"}
    for name, values in sample.items():
        assert values.shape == (3, 32) and values.dtype == np.int32
        for k, row in enumerate(rows):
            ids = train.row(row)[name]
            np.testing.assert_array_equal(values[k, :len(ids)], ids)
            assert not values[k, len(ids):].any()
    assert len(export.calibration_sample(train, 32)["input_ids"]) == 7  # fewer than asked


def test_the_hf_folder_names_the_labels_and_loads_as_the_student(exported, tokenizer):
    student, _, folders = exported
    with open(os.path.join(folders["hf"], "config.json")) as handle:
        saved = json.load(handle)
    assert saved["id2label"] == {"0": "no", "1": "yes"}
    assert saved["label2id"] == {"no": 0, "yes": 1}
    loaded = encoders.from_pretrained(folders["hf"])
    x = tokenize(EXAMPLES, tokenizer, 32).padded()
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(student(x)), atol=1e-5)


CLIENT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np, onnxruntime, text_inputs
from ai_edge_litert.interpreter import Interpreter
assert "tensorflow" not in sys.modules or sys.modules["tensorflow"] is None
texts = json.loads(sys.argv[3])
inputs = text_inputs.encode(texts[0], texts[1])
onnx_logits = onnxruntime.InferenceSession(sys.argv[1] + "/model.onnx").run(["logits"], inputs)[0]
runner = Interpreter(sys.argv[2] + "/model.tflite").get_signature_runner()
litert_logits = runner(**inputs)["logits"]
print(json.dumps({"inputs": {k: v.tolist() for k, v in inputs.items()},
                  "onnx": onnx_logits.tolist(), "litert": litert_logits.tolist(),
                  "labels": [text_inputs.label_names()[i] for i in onnx_logits.argmax(-1)],
                  "kd_keras": any(name.startswith("kd_keras") for name in sys.modules)}))
"""


def test_text_to_label_with_the_runtimes_alone(exported, tokenizer, tmp_path):
    """README's client: text_inputs.py + onnxruntime or the LiteRT interpreter, without
    TensorFlow or kd_keras, gives the student's inputs and logits."""
    student, _, folders = exported
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    texts = [[e.text_a for e in EXAMPLES], [e.text_b for e in EXAMPLES]]
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "tests", "without_tensorflow.py"), str(script),
         folders["onnx"], folders["litert"], json.dumps(texts)],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert not got["kd_keras"]
    x = tokenize(EXAMPLES, tokenizer, 32).padded()
    for name, values in x.items():
        np.testing.assert_array_equal(np.asarray(got["inputs"][name]), values)
    expected = np.asarray(student(x))
    assert np.abs(np.asarray(got["onnx"]) - expected).max() <= 1e-4
    assert np.abs(np.asarray(got["litert"]) - expected).max() <= 1e-4
    assert got["labels"] == [["no", "yes"][i] for i in expected.argmax(-1)]


def snapshot(folder):
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = open(path, "rb").read()
    return found


def test_bad_requests_write_nothing(exported, tokenizer, monkeypatch):
    student, folder, _ = exported
    before = snapshot(folder)
    plain = export.Exportable(student, tokenizer, ("no", "yes"), 32, True)
    with pytest.raises(ExportError, match="unknown format 'tflite'"):
        export.export(plain, folder, ["onnx", "tflite"])
    with pytest.raises(ExportError, match="already exists"):
        export.export(plain, folder, ["hf"], version=1)
    with pytest.raises(ExportError, match="litert_full_int8 calibrates .* training text"):
        export.export(plain, folder, ["litert", "litert_full_int8"])

    def fails(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(export.WRITERS, "onnx", fails)
    # hf is written first, then onnx finds the disk full: neither stays.
    with pytest.raises(DiskFull, match=r"no space left on the disk writing .*onnx"):
        export.export(plain, folder, ["hf", "onnx"])
    assert snapshot(folder) == before
    assert sorted(os.listdir(os.path.join(folder, "hf"))) == ["1"]
