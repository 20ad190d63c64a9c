"""Own data: CSV / TSV / JSONL readers, labels from the training file, their errors, the
tiny teacher's vocabulary, macro F1 and the prediction files."""

import csv
import json
import os
import tempfile

import numpy as np
import pytest

from kd_keras import metrics, predictions, tasks
from kd_keras.data.examples import Example
from kd_keras.errors import DataError
from kd_keras.data.own_files import own_labels, read_own_rows
from kd_keras.data.sources import load_examples
from kd_keras.data.vocab import SPECIAL_TOKENS, build_vocab, write_vocab


def spec_for(train, dev, text_fields, label_field="label", task_type="classification",
             skip=False):
    rows, _ = read_own_rows(str(train), text_fields, label_field, skip)
    labels = own_labels(rows) if task_type == "classification" else None
    return tasks.from_files(str(train), str(dev), text_fields, label_field, task_type, labels)


def test_csv_pairs_with_quotes_and_labels_read_from_training_file(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text('id,question,answer,label\n1,"Is it, really?",Yes,spam\n'
                     '2,Why,"Because ""so""",ham\n3,Who,Me,spam\n', encoding="utf-8")
    spec = spec_for(train, train, ["question", "answer"])
    assert spec.labels == ("ham", "spam") and spec.is_pair and spec.num_labels == 2
    assert spec.metrics == ("accuracy", "macro_f1")
    examples, skipped = load_examples(spec, "train")
    assert skipped == 0
    assert examples == [Example("Is it, really?", "Yes", 1),
                        Example("Why", 'Because "so"', 0), Example("Who", "Me", 1)]


def test_tsv_single_text_and_numeric_labels_in_numeric_order(tmp_path):
    train = tmp_path / "train.tsv"
    train.write_text("text\tstars\nfine\t10\nbad\t2\nok\t3\n\n", encoding="utf-8")
    spec = spec_for(train, train, ["text"], "stars")
    assert spec.labels == ("2", "3", "10") and not spec.is_pair
    examples, _ = load_examples(spec, "train")
    assert [(e.text_a, e.text_b, e.label) for e in examples] == [
        ("fine", None, 2), ("bad", None, 0), ("ok", None, 1)]


def test_jsonl_regression_and_values_that_are_not_strings(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text('{"a": "one", "b": "two", "score": 3.5}\n\n'
                     '{"a": "three", "b": 4, "score": "1"}\n', encoding="utf-8")
    spec = spec_for(train, train, ["a", "b"], "score", "regression")
    assert spec.labels is None and spec.metrics == ("pearson", "spearman")
    examples, _ = load_examples(spec, "train")
    assert examples == [Example("one", "two", 3.5), Example("three", "4", 1.0)]


def test_jsonl_integer_labels_become_label_names(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"t": f"x{i}", "y": i % 3}) + "\n" for i in range(6)))
    assert spec_for(train, train, ["t"], "y").labels == ("0", "1", "2")


def test_missing_column_names_the_columns_there_are(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("sentence,label\nhi,a\n")
    with pytest.raises(DataError, match=r"train.csv: no column 'text'; the header row has "
                                        r"'sentence', 'label'\.$"):
        read_own_rows(str(train), ["text"], "label")


def test_wrong_delimiter_is_named(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("text\tlabel\nhi\ta\n")
    with pytest.raises(DataError, match="looks tab-separated.*fix the delimiter"):
        read_own_rows(str(train), ["text"], "label")


def test_empty_text_names_file_and_line_and_can_be_skipped(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("text,label\nhi,a\n ,b\nyo,b\nlast,\n")
    with pytest.raises(DataError, match=r"train.csv:3: empty text in 'text'\. Fix the row, "
                                        r"or pass --skip_bad_rows"):
        read_own_rows(str(train), ["text"], "label")
    rows, skipped = read_own_rows(str(train), ["text"], "label", skip_bad_rows=True)
    assert skipped == 2 and [r.text_a for r in rows] == ["hi", "yo"]
    assert [r.line for r in rows] == [2, 4]


def test_jsonl_missing_field_and_bad_json_name_the_line(tmp_path):
    path = tmp_path / "dev.jsonl"
    path.write_text('{"t": "a", "y": "p"}\n{"text": "b", "y": "q"}\n')
    with pytest.raises(DataError, match=r"dev.jsonl:2: no field 't' \(the row has 'text', "
                                        r"'y'\)"):
        read_own_rows(str(path), ["t"], "y")
    path.write_text('{"t": "a", "y": "p"}\n{"t": "b", \n')
    with pytest.raises(DataError, match=r"dev.jsonl:2: not a JSON object"):
        read_own_rows(str(path), ["t"], "y")


def test_dev_label_never_seen_in_training_lists_known_labels(tmp_path):
    train, dev = tmp_path / "train.csv", tmp_path / "dev.csv"
    train.write_text("text,label\na,pos\nb,neg\n")
    dev.write_text("text,label\nc,pos\nd,neutral\n")
    spec = spec_for(train, dev, ["text"])
    with pytest.raises(DataError, match=r"dev.csv:3: label 'neutral' never appears in the "
                                        r"training file .*train.csv \(known labels: neg, pos\)"):
        load_examples(spec, "dev")


def test_one_label_and_unknown_extension_are_refused(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("text,label\na,pos\nb,pos\n")
    with pytest.raises(ValueError, match="at least two labels"):
        spec_for(train, train, ["text"])
    with pytest.raises(DataError, match="unknown file type '.txt'"):
        read_own_rows(str(tmp_path / "train.txt"), ["text"], "label")


@pytest.mark.parametrize("reader", ["own", "glue"])
def test_file_that_is_not_utf8_names_file_and_line(tmp_path, reader):
    path = tmp_path / ("train.csv" if reader == "own" else "RTE/train.tsv")
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"text,label\nfine,a\ncaf\xe9,b\n" if reader == "own" else
                     b"index\ts1\ts2\tlabel\n0\ta\tb\tentailment\n1\tcaf\xe9\tb\tentailment\n")
    with pytest.raises(DataError, match=r"train\.[ct]sv:3: not UTF-8 text \(byte 0xe9\); "
                                        "save the file as UTF-8"):
        if reader == "own":
            read_own_rows(str(path), ["text"], "label")
        else:
            load_examples(tasks.get_task("rte"), "train", str(tmp_path))


# Hostile files (#29, item 6): each works as a user expects or is one DataError naming
# the file and line.
ROWS = "".join(f"{i},text {i},{'pos' if i % 2 else 'neg'}\n" for i in range(6))


@pytest.mark.parametrize("name, content", [
    ("bom.csv", b"\xef\xbb\xbf" + ("id,review,label\n" + ROWS).encode()),
    ("crlf.csv", ("id,review,label\n" + ROWS).replace("\n", "\r\n").encode()),
    ("crlf.jsonl", "".join(json.dumps({"review": f"text {i}", "label": "pos" if i % 2 else "neg"})
                           + "\r\n" for i in range(6)).encode()),
    ("nul_byte.csv", ("id,review,label\n" + ROWS.replace("text 0", "te\x00xt 0")).encode()),
])
def test_files_that_work_as_expected(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    rows, skipped = read_own_rows(str(path), ["review"], "label")
    assert skipped == 0 and len(rows) == 6
    assert [r.label for r in rows] == ["neg", "pos"] * 3
    assert rows[1].text_a == "text 1"  # no BOM, no carriage return left in a field


def test_quoted_newlines_stay_in_the_text_and_lines_count_past_them(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_text('id,review,label\n1,"line one\nline two",pos\n2,,neg\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"quoted.csv:4: empty text"):
        read_own_rows(str(path), ["review"], "label")
    rows, skipped = read_own_rows(str(path), ["review"], "label", skip_bad_rows=True)
    assert rows[0].text_a == "line one\nline two" and skipped == 1


def test_a_very_long_text_is_read_whole(tmp_path):
    long_text = "word " * 100_000  # 500 KB in one field: csv's default limit is 128 KiB
    path = tmp_path / "long.csv"
    path.write_text(f"review,label\n{long_text},pos\nshort,neg\n", encoding="utf-8")
    rows, _ = read_own_rows(str(path), ["review"], "label")
    assert rows[0].text_a == long_text and rows[1].text_a == "short"


@pytest.mark.parametrize("name, content, message", [
    ("dup.csv", "review,review,label\na,b,pos\n",
     "dup.csv:1: the header names the column 'review' 2 times"),
    ("header_only.csv", "id,review,label\n", "header_only.csv: no rows to read below the header"),
    ("blank.jsonl", "\n\n", "blank.jsonl: no rows to read"),
    ("spaces.csv", "review,label\n   ,pos\n\t,neg\n", "spaces.csv:2: empty text in 'review'"),
    ("list_label.jsonl", '{"review": "a", "label": "pos"}\n{"review": "b", "label": [1, 2]}\n',
     "list_label.jsonl:2: field 'label' holds a JSON list"),
    ("object_text.jsonl", '{"review": {"a": 1}, "label": "pos"}\n',
     "object_text.jsonl:1: field 'review' holds a JSON object"),
])
def test_hostile_files_are_one_error_naming_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_own_rows(str(path), ["review"], "label")


def test_every_row_bad_and_skipped_is_still_an_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("review,label\n,pos\nx,\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.csv: no rows to read \(2 malformed rows skipped\)"):
        read_own_rows(str(path), ["review"], "label", skip_bad_rows=True)


def test_mixed_label_types_in_jsonl_are_one_label_each(tmp_path):
    """1 and "1" are the same label as the user wrote it; true is "True"."""
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps({"review": f"t{i}", "label": value}) + "\n"
                            for i, value in enumerate([1, "1", 2, "2", 10])), encoding="utf-8")
    rows, _ = read_own_rows(str(path), ["review"], "label")
    assert own_labels(rows) == ["1", "2", "10"]


def test_binary_garbage_is_refused_by_line(tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes(b"review,label\nok,pos\n" + bytes(range(128, 256)) * 4)
    with pytest.raises(DataError, match=r"garbage.csv:3: not UTF-8 text"):
        read_own_rows(str(path), ["review"], "label")


def test_tiny_teacher_vocab_covers_every_training_word():
    from kd_keras import tokenization

    texts = ["Hello, World!", "naïve café x", "hello again"]
    tokens = build_vocab(texts)
    assert tokens[:5] == list(SPECIAL_TOKENS) and len(tokens) == len(set(tokens))
    assert {"hello", "world", "again", "!", "##e"} <= set(tokens)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "vocab.txt")
        write_vocab(path, tokens)
        tokenizer = tokenization.load_tokenizer(path, folder)
    # Unseen words of seen characters (accents are stripped, as BERT-uncased does).
    for text in texts + ["a cave ahead, NAIVE"]:
        assert tokenizer.unk_token_id not in tokenizer(text)["input_ids"], text


def test_macro_f1_by_hand():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 1, 1, 1, 0, 2])
    # class 0: tp 1, fp 1, fn 1 -> 2/4; class 1: tp 2, fp 1, fn 0 -> 4/5; class 2: tp 1,
    # fp 0, fn 1 -> 2/3.
    assert metrics.macro_f1(labels, predictions) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert metrics.macro_f1(labels, labels) == 1.0
    # A class only ever predicted (never a label) counts with F1 0.
    assert metrics.macro_f1(np.array([0, 0]), np.array([0, 1])) == pytest.approx(
        (2 / 3 + 0.0) / 2)


def test_prediction_files_carry_label_names_and_probabilities(tmp_path):
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0]], np.float32)
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = ["neg", "pos", "neutral"]
    predictions.write_own(str(tmp_path / "out.csv"), logits, labels)
    with open(tmp_path / "out.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["prediction"] for r in rows] == ["neg", "pos"]
    got = np.array([[float(r[f"prob_{n}"]) for n in labels] for r in rows])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    predictions.write_own(str(tmp_path / "out.jsonl"), logits, labels)
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == [0, 1] and records[1]["prediction"] == "pos"
    np.testing.assert_allclose([list(r["probabilities"].values()) for r in records],
                               expected, atol=1e-6)
    predictions.write_own(str(tmp_path / "scores.tsv"), np.array([[0.25], [1.5]]), None)
    assert (tmp_path / "scores.tsv").read_text().splitlines() == [
        "index\tprediction", "0\t0.250000", "1\t1.500000"]
    with pytest.raises(ValueError, match="unknown file type '.txt'"):
        predictions.check_output_format("out.txt")


def test_a_run_reads_each_of_its_files_once(tmp_path, monkeypatch):
    """The labels, the tiny teacher's vocabulary and the tokenized splits all come from
    one reading of the training file (three before) and one of the dev file."""
    from kd_keras import config as config_lib, distribute
    from kd_keras.data import own_files
    from kd_keras.pipeline import context, inputs

    train, dev = tmp_path / "train.csv", tmp_path / "dev.csv"
    train.write_text("text,label\nw1 w2 up,pos\nw3 down,neg\nw4 up w5,pos\n", encoding="utf-8")
    dev.write_text("text,label\nw2 up,pos\nw5 down,neg\n", encoding="utf-8")
    reads = []
    real = own_files.read_own_rows
    monkeypatch.setattr(own_files, "read_own_rows",
                        lambda path, *args: reads.append(os.path.basename(path))
                        or real(path, *args))
    config = config_lib.RunConfig(
        data=config_lib.DataConfig(task="custom", train_file=str(train), dev_file=str(dev),
                                   text_fields=("text",), label_field="label",
                                   max_seq_length=16),
        model=config_lib.ModelConfig(teacher="tiny"),
        train=config_lib.TrainConfig(model_dir=str(tmp_path / "run")))
    run = context.RunContext(config, distribute.SingleProcess(), str(tmp_path / "run"),
                             str(tmp_path / "run"))
    task_inputs = inputs.TaskInputs(config)
    tokenizer = inputs.load_tokenizer(run, task_inputs)  # its vocabulary: the train texts
    task = inputs.load_task_data(run, task_inputs, tokenizer)
    assert task.spec.labels == ("neg", "pos") and list(task.train.labels) == [1, 0, 1]
    assert "down" in tokenizer.get_vocab() and list(task.dev.labels) == [1, 0]
    assert sorted(reads) == ["dev.csv", "train.csv"]
