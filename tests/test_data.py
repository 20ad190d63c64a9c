"""GLUE TSV parsing, the synthetic task, tokenization and the tf.data pipeline."""

import json
import os
import time

import numpy as np
import pytest

from kd_keras import backends, net, tasks, tokenization
from kd_keras.data.batching import batches_per_epoch, epoch_batches, plan_batches
from kd_keras.data.examples import Example, splits
from kd_keras.errors import DataError
from kd_keras.data import features as features_module
from kd_keras.data.features import FEATURE_NAMES, tokenize
from kd_keras.data.glue import load_tfds, tfds_label_map
from kd_keras.data.sources import load_examples
from kd_keras.data.synthetic import make_synthetic, synthetic_vocab
from kd_keras.data.vocab import SPECIAL_TOKENS, write_vocab


def write(path, text, bom=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8") as handle:
        handle.write(text)


def test_registry_covers_glue_and_rejects_unknown_names():
    for name in ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli",
                 "synthetic"):
        assert tasks.get_task(name).name == name
    assert tasks.get_task("SST-2").name == "sst2"
    assert tasks.get_task("stsb").is_regression and tasks.get_task("mnli").num_labels == 3
    with pytest.raises(ValueError, match="Choose one of: cola"):
        tasks.get_task("squad")


def test_mrpc_with_bom(tmp_path):
    write(str(tmp_path / "MRPC" / "train.tsv"),
          "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tfirst a\tfirst b\n"
          "0\t3\t4\tsecond a\tsecond b\n", bom=True)
    examples, skipped = load_examples(tasks.get_task("mrpc"), "train", str(tmp_path))
    assert skipped == 0
    assert examples == [Example("first a", "first b", 1),
                        Example("second a", "second b", 0)]


def test_cola_without_header(tmp_path):
    write(str(tmp_path / "CoLA" / "dev.tsv"), "src\t1\t\tgood one .\nsrc\t0\t*\tbad one .\n")
    examples, _ = load_examples(tasks.get_task("cola"), "dev", str(tmp_path))
    assert [(e.text_a, e.text_b, e.label) for e in examples] == [
        ("good one .", None, 1), ("bad one .", None, 0)]


def test_mnli_label_is_last_column_and_stsb_is_float(tmp_path):
    mnli_row = "\t".join(["0", "1", "2", "g", "p", "h", "pp", "hp", "prem", "hyp"]
                         + ["neutral"] * 5 + ["contradiction"])
    write(str(tmp_path / "MNLI" / "dev_matched.tsv"), "header\n" + mnli_row + "\n")
    examples, _ = load_examples(tasks.get_task("mnli"), "dev", str(tmp_path))
    assert examples == [Example("prem", "hyp", 0)]
    stsb_row = "\t".join(["0", "g", "f", "y", "o", "s1", "s2", "one", "two", "3.25"])
    write(str(tmp_path / "STS-B" / "train.tsv"), "header\n" + stsb_row + "\n")
    examples, _ = load_examples(tasks.get_task("stsb"), "train", str(tmp_path))
    assert examples == [Example("one", "two", 3.25)]


QQP = ("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
       "1\t1\t2\twhat is a?\twhat is b? 0\n"          # 5 columns: a space before the label
       "2\t3\t4\thow?\t\t1\n"                          # empty question2 is fine
       "3\t5\t6\twhy?\twhy not?\tmaybe\n"             # unknown label
       "4\t7\t8\twhen?\twhen not?\t0\n")


def test_malformed_rows_name_file_and_line(tmp_path):
    path = tmp_path / "QQP" / "train.tsv"
    write(str(path), QQP)
    with pytest.raises(DataError) as error:
        load_examples(tasks.get_task("qqp"), "train", str(tmp_path))
    message = str(error.value)
    assert f"{path}:2:" in message and "found 5" in message and "--skip_bad_rows" in message
    assert "\n" not in message


def test_skip_bad_rows_reports_count(tmp_path):
    write(str(tmp_path / "QQP" / "train.tsv"), QQP)
    examples, skipped = load_examples(tasks.get_task("qqp"), "train", str(tmp_path),
                                           skip_bad_rows=True)
    assert skipped == 2
    assert examples == [Example("how?", "", 1), Example("when?", "when not?", 0)]


def test_unknown_label_message(tmp_path):
    write(str(tmp_path / "RTE" / "dev.tsv"), "index\ts1\ts2\tlabel\n0\ta\tb\tyes\n")
    with pytest.raises(DataError, match=r"dev.tsv:2: unknown label 'yes' \(expected one of "
                                        r"entailment, not_entailment\)"):
        load_examples(tasks.get_task("rte"), "dev", str(tmp_path))


def test_missing_file_and_missing_source_and_empty_split(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_examples(tasks.get_task("rte"), "train", str(tmp_path))
    with pytest.raises(DataError, match="--data_dir"):
        load_examples(tasks.get_task("rte"), "train")
    write(str(tmp_path / "RTE" / "train.tsv"), "index\ts1\ts2\tlabel\n")
    with pytest.raises(DataError, match="no examples"):
        load_examples(tasks.get_task("rte"), "train", str(tmp_path))


def test_unreachable_tfds_fails_fast(tmp_path):
    start = time.time()
    with pytest.raises(DataError, match="not prepared"):
        load_tfds(tasks.get_task("rte"), "train", str(tmp_path),
                       hosts=("unreachable.invalid",))
    assert time.time() - start < 30


def test_synthetic_is_deterministic_balanced_and_consistent():
    a = make_synthetic(200, seed=5)
    assert a == make_synthetic(200, seed=5)
    assert a != make_synthetic(200, seed=6)
    assert sum(e.label for e in a) == 100
    for example in a:
        shares = [np.mean([int(w[1:]) % 2 == 0 for w in text.split()])
                  for text in (example.text_a, example.text_b)]
        assert (shares[0] > shares[1]) == bool(example.label)
    vocab = synthetic_vocab()
    assert len(vocab) == 97 and vocab[:5] == list(SPECIAL_TOKENS)


def test_tokenize_pairs_and_cache(tokenizer, tmp_path):
    examples = [Example("w1 w2", "w3", 1), Example("w4", "w5 w6 w7", 0)]
    features = tokenize(examples, tokenizer, 16, cache_dir=str(tmp_path), cache_key="k")
    vocab = {t: i for i, t in enumerate(synthetic_vocab())}
    row = features.row(0)
    assert list(row["input_ids"]) == [vocab[t] for t in
                                      ["[CLS]", "w1", "w2", "[SEP]", "w3", "[SEP]"]]
    assert list(row["token_type_ids"]) == [0, 0, 0, 0, 1, 1]
    assert len(os.listdir(tmp_path)) == 1
    again = tokenize(examples, tokenizer, 16, cache_dir=str(tmp_path), cache_key="k")
    np.testing.assert_array_equal(again.flat["input_ids"], features.flat["input_ids"])
    long = tokenize([Example(" ".join(["w1"] * 30), "w2 w3", 0)], tokenizer, 10)
    assert long.lengths[0] == 10


def test_tokenizing_in_chunks_gives_the_tokenizers_own_ids(tokenizer, monkeypatch):
    """Chunks of 2 over 5 pairs (the last chunk short), truncated at 8: every row as the
    tokenizer gives it for all the pairs in one call."""
    monkeypatch.setattr(features_module, "TOKENIZE_CHUNK", 2)
    examples = [Example(" ".join(f"w{i + k}" for k in range(i + 1)), f"w{30 + i} w9", i % 2)
                for i in range(5)]
    features = tokenize(examples, tokenizer, 8)
    encoded = tokenizer([e.text_a for e in examples], [e.text_b for e in examples],
                        max_length=8)
    assert list(features.lengths) == [len(ids) for ids in encoded["input_ids"]]
    assert max(features.lengths) == 8
    for row in range(5):
        for name in FEATURE_NAMES:
            assert list(features.row(row)[name]) == encoded[name][row], (row, name)
    assert list(features.labels) == [0, 1, 0, 1, 0]


def test_pipeline_pads_per_batch_and_shuffles_with_seed(synthetic_features):
    def batches(seed):
        return [(x, y) for x, y in backends.make_dataset(synthetic_features, 8, True, seed)]

    first, again, other = batches(1), batches(1), batches(2)
    assert sum(len(y) for _, y in first) == len(synthetic_features)
    for x, _ in first:
        mask = x["attention_mask"].numpy()
        assert mask.shape[1] == mask.sum(1).max()  # padded to this batch's longest only
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(first, other))
    ordered = list(backends.make_dataset(synthetic_features, 10, False))
    np.testing.assert_array_equal(np.concatenate([y for _, y in ordered]),
                                  synthetic_features.labels)


def test_tfds_labels_are_mapped_by_name_not_index(monkeypatch):
    """TFDS glue/mnli orders its classes entailment, neutral, contradiction; the GLUE files
    (and our labels) contradiction, entailment, neutral."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    def as_dataset(self, split, *args, **kwargs):  # TFDS label i, premise "p<i>"
        rows = [{"premise": f"p{i}".encode(), "hypothesis": b"h", "label": i, "idx": i}
                for i in range(3)]
        return tf.data.Dataset.from_generator(lambda: iter(rows), output_signature={
            "premise": tf.TensorSpec([], tf.string), "hypothesis": tf.TensorSpec([], tf.string),
            "label": tf.TensorSpec([], tf.int64), "idx": tf.TensorSpec([], tf.int32)})

    monkeypatch.setattr(net, "host_reachable", lambda *args, **kwargs: True)
    spec = tasks.get_task("mnli")
    tfds_names = ["entailment", "neutral", "contradiction"]
    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        assert tfds.builder("glue/mnli").info.features["label"].names == tfds_names
        for split in ("train", "dev", "dev_mismatched"):
            examples = load_tfds(spec, split)
            assert [spec.labels[e.label] for e in examples] == tfds_names, split
            assert [e.text_a for e in examples] == ["p0", "p1", "p2"]
    with pytest.raises(DataError, match="has the classes"):
        tfds_label_map(spec, ["yes", "no", "maybe"])
    # Every GLUE task names each of its classes in TFDS.
    for task in tasks.TASKS.values():
        if task.tfds_name and task.labels:
            assert len(task.tfds_label_names) == task.num_labels, task.name


def test_mnli_dev_mismatched_is_a_split(tmp_path):
    spec = tasks.get_task("mnli")
    assert splits(spec) == ["train", "dev", "dev_mismatched"]
    row = "\t".join(["0", "1", "2", "g", "p", "h", "pp", "hp", "prem", "hyp"]
                    + ["neutral"] * 5 + ["entailment"])
    write(str(tmp_path / "MNLI" / "dev_mismatched.tsv"), "header\n" + row + "\n")
    examples, _ = load_examples(spec, "dev_mismatched", str(tmp_path))
    assert examples == [Example("prem", "hyp", 1)]
    assert splits(tasks.get_task("rte")) == ["train", "dev"]


def test_epoch_batches_fill_length_buckets_in_a_seeded_order(synthetic_features):
    lengths = synthetic_features.lengths
    first = epoch_batches(lengths, 8, seed=1, epoch=0)
    assert len(first) == batches_per_epoch(lengths, 8)
    rows = np.concatenate(first)
    np.testing.assert_array_equal(np.sort(rows), np.arange(len(lengths)))  # each once
    buckets = []
    for batch in first:
        bucket = set((lengths[batch] - 1) // 16)  # boundaries 17, 33, ...: 16 tokens wide
        assert len(bucket) == 1 and 1 <= len(batch) <= 8
        buckets.append(bucket.pop())
    # Only the last batch of each bucket is short, and those come at the epoch's end.
    short = [b for b, batch in zip(buckets, first) if len(batch) < 8]
    assert len(short) == len(set(short))
    assert all(len(batch) == 8 for batch in first[:len(first) - len(short)])
    again = epoch_batches(lengths, 8, seed=1, epoch=0)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    for other in (epoch_batches(lengths, 8, seed=1, epoch=1),
                  epoch_batches(lengths, 8, seed=2, epoch=0)):
        assert not np.array_equal(np.concatenate(other), rows)


def test_resumed_dataset_reads_the_rest_of_the_uninterrupted_run(synthetic_features):
    whole = list(backends.make_dataset(synthetic_features, 8, True, seed=3, epochs=3))
    per_epoch = batches_per_epoch(synthetic_features.lengths, 8)
    resumed = list(backends.make_dataset(synthetic_features, 8, True, seed=3, epochs=3,
                                     start_epoch=1, start_batch=4))
    assert len(resumed) == len(whole) - per_epoch - 4
    for (x, y), (x_whole, y_whole) in zip(resumed, whole[per_epoch + 4:]):
        np.testing.assert_array_equal(y.numpy(), y_whole.numpy())
        np.testing.assert_array_equal(x["input_ids"].numpy(), x_whole["input_ids"].numpy())


def test_numpy_batches_hold_the_tf_data_batches_padded_to_16_and_filled(synthetic_features):
    from kd_keras.backends import jax as jax_backend

    logits = np.arange(2 * len(synthetic_features), dtype=np.float32).reshape(-1, 2)
    for training in (True, False):
        tf_batches = list(backends.make_dataset(synthetic_features, 7, training, seed=5,
                                                teacher_logits=logits, epochs=2))
        plan = plan_batches(synthetic_features.lengths, 7, training, 5, 2, 0, 0)
        numpy_batches = jax_backend.batches(synthetic_features, plan, 7, logits)
        assert len(numpy_batches) == len(tf_batches)
        assert any(len(t["labels"]) < 7 for _, t in tf_batches)  # a short batch gets filled
        shapes = set()
        for (x, targets), (x_np, targets_np, weights) in zip(tf_batches, numpy_batches):
            y, cached = targets["labels"], targets["teacher_logits"]
            y_np, cached_np = targets_np["labels"], targets_np["teacher_logits"]
            real = len(y)
            assert set(x) == set(x_np) == set(FEATURE_NAMES)  # model inputs only
            assert len(y_np) == 7 and list(weights) == [1.0] * real + [0.0] * (7 - real)
            np.testing.assert_array_equal(y_np[:real], y.numpy())
            np.testing.assert_array_equal(cached_np[:real], cached.numpy())
            # Each row's cached logits are its own example's (logits[i] = 2i, 2i + 1).
            rows = (cached.numpy()[:, 0] / 2).astype(int)
            np.testing.assert_array_equal(synthetic_features.labels[rows], y.numpy())
            width = x["input_ids"].shape[1]
            shapes.add(x_np["input_ids"].shape)
            for name in FEATURE_NAMES:
                assert x_np[name].shape[1] % 16 == 0 and x_np[name].shape[1] >= width
                np.testing.assert_array_equal(x_np[name][:real, :width], x[name].numpy())
                assert not x_np[name][:, width:].any()
                # Filler rows repeat the batch's own rows in order.
                np.testing.assert_array_equal(x_np[name][real:], x_np[name][
                    np.arange(real, 7) % real])
        if training:  # one shape per 16-token length bucket, whatever the batch's size
            buckets = {-(-int(n) // 16) * 16 for n in synthetic_features.lengths}
            assert shapes == {(7, width) for width in buckets}


def test_tokenizers_of_one_size_never_share_a_cached_tokenization(tmp_path):
    """The same vocabulary read cased and uncased: one cache folder, each its own ids."""
    loaded = []
    for lower_case in (True, False):
        folder = tmp_path / f"lower_{lower_case}"
        folder.mkdir()
        write_vocab(str(folder / "vocab.txt"), [*SPECIAL_TOKENS, "the", "The"])
        (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lower_case}))
        loaded.append(tokenization.load_tokenizer(str(folder), str(folder)))
    assert len(loaded[0]) == len(loaded[1])
    ids = [list(tokenize([Example("The", None, 0)], tok, 8, cache_dir=str(tmp_path / "cache"),
                         cache_key="same").flat["input_ids"]) for tok in loaded]
    the, capital = len(SPECIAL_TOKENS), len(SPECIAL_TOKENS) + 1
    assert ids[0][1] == the and ids[1][1] == capital
