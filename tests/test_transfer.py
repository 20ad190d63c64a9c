"""Text without labels (issue #30): transfer text and augmented copies.  The augmenters
by hand, the gold-label term skipping unlabelled examples, and a run end to end: the
copies written once into the cache and reused, recorded in the folder's identity."""

import csv
import json
import os
import sys

import numpy as np
import pytest

from kd_keras import config as config_lib
from kd_keras.data import augment, own_files
from kd_keras.data import features as features_module
from kd_keras.data.examples import Example
from kd_keras.data.features import concatenate, tokenize
from kd_keras.errors import DataError
from kd_keras.pipeline import inputs, transfer
from test_end_to_end import REPO, run_cli, run_cli_batch

sys.path.insert(0, os.path.join(REPO, "scripts"))
import make_example_data  # noqa: E402

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "great", "fine", "bad",
         "awful", "##ly", ",", "x1"]
EMBEDDINGS = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 0], [0, 0, -1], [0, 1, 0],
                       [1, 0, 0], [0.9, 0.1, 0], [0.7, 0.3, 0], [-1, 0, 0],
                       [-0.9, -0.1, 0], [0.99, 0, 0], [1, 0.01, 0], [1, 0, 0.01]],
                      np.float32)


def neighbours(count=3):
    return augment.EmbeddingNeighbours(VOCAB, EMBEDDINGS, lower_case=True, count=count)


def test_embedding_neighbours_are_the_nearest_whole_words():
    unit = EMBEDDINGS / np.linalg.norm(EMBEDDINGS, axis=1, keepdims=True)
    words = ["good", "great", "fine", "bad", "awful"]  # the whole-word tokens
    cosine = {w: float(unit[VOCAB.index(w)] @ unit[VOCAB.index("good")]) for w in words}
    expected = sorted((w for w in words if w != "good"), key=lambda w: -cosine[w])[:3]
    assert neighbours().neighbours("Good") == expected == ["great", "fine", "awful"]
    # [CLS], "##ly", "," and "x1" lie right beside "good" but are no whole words.
    assert neighbours(count=10).neighbours("good") == ["great", "fine", "awful", "bad"]
    for word in (",", "x1", "ly", "[CLS]", "unknownword"):
        assert neighbours().neighbours(word) == []


def test_replacement_keeps_every_length_and_the_same_seed_gives_the_same_copies():
    examples = [Example("The good film , fine acting !", "bad plot", 1),
                Example("great good fine", "awful", 0)]
    copies = augment.augment(examples, 4, "embedding", seed=5, candidates=neighbours())
    assert copies == augment.augment(examples, 4, "embedding", 5, neighbours())
    assert copies != augment.augment(examples, 4, "embedding", 6, neighbours())
    assert len(copies) == 8 and all(copy.label is None for copy in copies)
    changed = 0
    for k, copy in enumerate(copies):
        source = examples[k // 4]
        for text, original in ((copy.text_a, source.text_a), (copy.text_b, source.text_b)):
            new, old = augment.words(text), augment.words(original)
            assert len(new) == len(old)  # the length class stays
            for a, b in zip(new, old):
                # A word changes only into one of its neighbours; punctuation never.
                assert a == b or a in neighbours().neighbours(b), (a, b)
                changed += a != b
    assert changed > 0


def test_delete_and_swap_keeps_a_word_and_only_the_texts_words():
    rng = np.random.default_rng(0)
    text = "one two three four five six"
    for _ in range(50):
        out = augment.delete_and_swap(text, rng, probability=0.5).split()
        assert 1 <= len(out) <= 6 and set(out) <= set(text.split())
    assert augment.delete_and_swap("alone", rng, probability=1.0) == "alone"


def own_config(folder, **data):
    return config_lib.RunConfig(data=config_lib.DataConfig(
        task="custom", train_file=f"{folder}/train.csv", dev_file=f"{folder}/dev.csv",
        text_fields=("review",), label_field="sentiment", **data))


def write_transfer(path, count, seed=9):
    """Reviews without a label, in a CSV file with the column 'text'."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text"])
        writer.writerows([review] for _, review, _ in make_example_data.rows(count, seed))


def test_transfer_text_is_read_without_labels_and_must_fit_the_task(tmp_path):
    make_example_data.write_example(str(tmp_path), train_size=20, dev_size=10)
    write_transfer(tmp_path / "more.csv", 7)
    text = inputs.TaskInputs(own_config(
        tmp_path, transfer_file=str(tmp_path / "more.csv"), transfer_fields=("text",),
        max_transfer_examples=5)).transfer_text()
    found = list(text.examples)
    assert len(found) == 5 and text.skipped() == 0
    assert all(e.label is None and e.text_b is None for e in found)
    with pytest.raises(DataError, match="reads one text, so name 1 --transfer_fields"):
        inputs.TaskInputs(own_config(tmp_path, transfer_file=str(tmp_path / "more.csv"),
                                     transfer_fields=("text", "text"))).transfer_text()
    with pytest.raises(DataError, match="--transfer_task=mrpc has pairs"):
        inputs.TaskInputs(own_config(tmp_path, transfer_task="mrpc")).transfer_text()


def test_a_transfer_file_is_streamed_into_the_cache_and_read_again_only_when_it_changes(
        tokenizer, tmp_path, monkeypatch):
    """Tokenized row by row straight into files (the ids come back memory-mapped, as the
    whole list would give them), joined to the labelled set on disk; the cache spares
    reading the file again, and changed bytes are read again, never the old ids."""
    make_example_data.write_example(str(tmp_path), train_size=20, dev_size=10)
    path = tmp_path / "more.csv"
    write_transfer(path, 9)
    monkeypatch.setattr(features_module, "TOKENIZE_CHUNK", 4)  # 3 chunks, the last short
    cache = str(tmp_path / "cache")
    os.makedirs(cache)

    def taken_in():
        text = inputs.TaskInputs(own_config(tmp_path, transfer_file=str(path),
                                            transfer_fields=("text",))).transfer_text()
        return tokenize(text.examples, tokenizer, 16, cache_dir=cache, cache_key="t",
                        source_digest=text.digest)

    def by_hand():
        with open(path, newline="", encoding="utf-8") as handle:
            texts = [row["text"] for row in csv.DictReader(handle)]
        return tokenizer(texts, max_length=16)

    streamed = taken_in()
    encoded = by_hand()
    assert len(streamed) == 9 and all(isinstance(a, np.memmap) for a in streamed.flat.values())
    for row in range(9):
        assert list(streamed.row(row)["input_ids"]) == encoded["input_ids"][row]
    assert list(streamed.label_weights) == [0.0] * 9
    labelled = tokenize([Example("good", None, 2)], tokenizer, 16)
    joined = concatenate([labelled, streamed], cache)
    assert isinstance(joined.flat["input_ids"], np.memmap)
    assert list(joined.row(1)["input_ids"]) == encoded["input_ids"][0]
    assert list(joined.labels) == [2] + [0] * 9
    assert list(joined.label_weights) == [1.0] + [0.0] * 9

    read = own_files._records

    def records(name, needed):
        assert name != str(path), "the transfer file was read again"
        return read(name, needed)

    with monkeypatch.context() as patched:
        patched.setattr(own_files, "_records", records)
        again = taken_in()  # from the cache
    np.testing.assert_array_equal(again.flat["input_ids"], streamed.flat["input_ids"])
    with open(path, "a", newline="", encoding="utf-8") as handle:
        handle.write("an awful new line\n")
    grown = taken_in()
    assert len(grown) == 10
    assert list(grown.row(9)["input_ids"]) == tokenizer("an awful new line")["input_ids"]


TINY = ["--teacher=tiny", "--tiny_layers=2", "--tiny_hidden_size=32", "--tiny_heads=2",
        "--teacher_epochs=1", "--student_layers=1", "--epochs=1", "--epochs_per_stage=1",
        "--max_seq_length=32", "--batch_size=32", "--speed_seconds=0", "--schedule=sid",
        "--mode=distill"]


def test_a_run_distils_on_transfer_text_and_augmented_copies_written_once(tmp_path):
    folder = str(tmp_path)
    make_example_data.write_example(folder, train_size=96, dev_size=32)
    write_transfer(tmp_path / "more.csv", 40)
    model_dir = str(tmp_path / "run")
    flags = [f"--train_file={folder}/train.csv", f"--dev_file={folder}/dev.csv",
             "--text_fields=review", "--label_field=sentiment", *TINY,
             f"--transfer_file={folder}/more.csv", "--transfer_fields=text", "--augment=2",
             f"--model_dir={model_dir}"]
    first = run_cli(*flags)
    assert "Transfer text: 40 examples" in first.stdout and "Augmenting the 96" in first.stdout
    with open(os.path.join(model_dir, "results.json")) as handle:
        assert json.load(handle)["unlabelled_examples"] == 40 + 2 * 96
    written = [n for n in os.listdir(os.path.join(model_dir, "cache"))
               if n.startswith("augmented_")]
    assert len(written) == 1
    with open(os.path.join(model_dir, "cache", written[0])) as handle:
        assert len(handle.readlines()) == 2 * 96 + 1  # the copies, then their checksum
    with open(os.path.join(model_dir, "run_identity.json")) as handle:
        added = json.load(handle)["added_text"]
    assert added["augment"] == 2 and added["augment_method"] == "embedding"
    assert added["transfer_file"] == os.path.abspath(f"{folder}/more.csv")
    # In one process (TensorFlow imported once): the same command again reads the copies
    # back (the teacher too); another method in the same folder would mix copies of two
    # methods: refused; finetune on the same copies, each with its example's label, reads
    # them back from the shared cache.
    labelled_dir = str(tmp_path / "finetune")
    again, other, labelled = run_cli_batch(
        flags, [*flags, "--augment_method=delete_swap"],
        [*flags[:-4], "--augment=2", "--augment_labels=source", "--schedule=finetune",
         f"--teacher={model_dir}/teacher", "--teacher_finetuned",
         f"--cache_dir={model_dir}/cache", f"--model_dir={labelled_dir}"], check=False)
    assert again.returncode == 0, again.stderr
    assert "Reusing 2 augmented copies" in again.stdout and "Augmenting" not in again.stdout
    assert other.returncode == 2 and "holds another run" in other.stderr
    assert '"augment_method": "embedding"' in other.stderr.replace("\\", "")
    assert labelled.returncode == 0, labelled.stderr
    assert "Reusing 2 augmented copies" in labelled.stdout
    with open(os.path.join(labelled_dir, "results.json")) as handle:
        results = json.load(handle)
    assert (results["unlabelled_examples"], results["labelled_copies"]) == (0, 2 * 96)
    with open(os.path.join(labelled_dir, "run_identity.json")) as handle:
        assert json.load(handle)["added_text"]["augment_labels"] == "source"


def test_copies_with_source_labels_carry_their_examples_label_into_the_gold_term(tokenizer):
    examples = [Example("w1 w2 w3", None, 1), Example("w4 w5 w6", None, 0)]
    copies = augment.augment(examples, 3, "delete_swap", seed=0)
    assert [copy.label for copy in copies] == [None] * 6
    labelled = transfer.with_source_labels(copies, examples)
    assert [copy.label for copy in labelled] == [1, 1, 1, 0, 0, 0]
    assert [copy.text_a for copy in labelled] == [copy.text_a for copy in copies]
    parts = [tokenize(copies, tokenizer, 16), tokenize(labelled, tokenizer, 16)]
    np.testing.assert_array_equal(parts[0].label_weights, np.zeros(6))
    assert parts[1].label_weights is None  # every example has a label: weight 1
    np.testing.assert_array_equal(parts[1].labels, [1, 1, 1, 0, 0, 0])
    assert transfer.counts(parts) == {"unlabelled_examples": 6, "labelled_copies": 6}
    assert transfer.counts(parts[:1]) == {"unlabelled_examples": 6}


def test_the_runs_own_task_as_transfer_text_is_what_lies_beyond_its_labels(tmp_path):
    """--task=mrpc --max_train_examples=2 --transfer_task=mrpc: 2 labelled examples, the
    other 3 training examples as text without labels."""
    folder = tmp_path / "MRPC"
    folder.mkdir()
    rows = "".join(f"{i % 2}\t{i}\t{i + 10}\tfirst {i}\tsecond {i}\n" for i in range(5))
    (folder / "train.tsv").write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n" + rows)
    config = config_lib.RunConfig(data=config_lib.DataConfig(
        task="mrpc", data_dir=str(tmp_path), max_train_examples=2, transfer_task="mrpc"))
    task_inputs = inputs.TaskInputs(config)
    labelled, _ = task_inputs.examples("train")
    unlabelled = task_inputs.transfer_text().examples
    assert [e.text_a for e in labelled] == ["first 0", "first 1"]
    assert [(e.text_a, e.label) for e in unlabelled] == [("first 2", None), ("first 3", None),
                                                         ("first 4", None)]
