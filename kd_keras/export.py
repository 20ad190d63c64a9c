"""Student-only SavedModel export in the layout TF Serving loads: <export_dir>/<version>/.

Signatures:
- ``serving_default``: int32 input_ids, attention_mask, token_type_ids [batch, seq] ->
  logits [batch, num_labels] and probabilities [batch, num_labels].
- ``serving_text``: strings text_a [batch] (and text_b [batch] for pair tasks),
  tokenized inside the graph with tensorflow-text and the same WordPiece vocab -> the
  same outputs plus the predicted label name.  Loading it needs ``import
  tensorflow_text`` first (TF Serving builds with those ops include them).

vocab.txt and labels.txt travel as assets.  The teacher and the projection heads are
not part of the export.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import List, Optional, Sequence

import tensorflow as tf

from kd_keras import files
from kd_keras.errors import ExportError


class _StudentModule(tf.Module):
    """What the SavedModel holds: the student, its vocab and label names."""

    def __init__(self, student, vocab_path: str, labels_path: str,
                 label_names: Sequence[str], max_seq_length: int, lower_case: bool,
                 pair: bool):
        super().__init__()
        import tensorflow_text as tf_text

        # A Keras 3 model inside a tf.Module: tf.saved_model.save tracks its variables.
        self.model = student
        self.vocab_asset = tf.saved_model.Asset(vocab_path)
        self.labels_asset = tf.saved_model.Asset(labels_path)
        self.label_names = tf.constant(list(label_names))
        self.max_seq_length = max_seq_length
        self.regression = student.num_labels == 1
        vocab_table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                self.vocab_asset, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER), default_value=-1)
        self.vocab_table = vocab_table
        self.tokenizer = tf_text.BertTokenizer(vocab_table, token_out_type=tf.int64,
                                               lower_case=lower_case, unknown_token="[UNK]")
        self.cls_id = self._token_id("[CLS]")
        self.sep_id = self._token_id("[SEP]")
        self.pair = pair

    def _token_id(self, token: str) -> tf.Tensor:
        return self.vocab_table.lookup(tf.constant(token))

    def _outputs(self, input_ids, attention_mask, token_type_ids):
        outputs = self.model({"input_ids": input_ids, "attention_mask": attention_mask,
                              "token_type_ids": token_type_ids}, training=False)
        logits = tf.cast(outputs, tf.float32)  # float16 / bfloat16 under mixed precision
        probabilities = logits if self.regression else tf.nn.softmax(logits, axis=-1)
        return {"logits": logits, "probabilities": probabilities}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="input_ids"),
                                  tf.TensorSpec([None, None], tf.int32, name="attention_mask"),
                                  tf.TensorSpec([None, None], tf.int32, name="token_type_ids")])
    def serve_ids(self, input_ids, attention_mask, token_type_ids):
        return self._outputs(input_ids, attention_mask, token_type_ids)

    def tokenize(self, segments: List[tf.Tensor]):
        """Strings [batch] per segment -> padded int32 features [batch, seq]."""
        import tensorflow_text as tf_text

        pieces = [self.tokenizer.tokenize(s).merge_dims(-2, -1) for s in segments]
        budget = self.max_seq_length - (len(pieces) + 1)
        pieces = tf_text.RoundRobinTrimmer(max_seq_length=budget).trim(pieces)
        ids, type_ids = tf_text.combine_segments(pieces, start_of_sequence_id=self.cls_id,
                                                 end_of_segment_id=self.sep_id)
        longest = tf.cast(tf.reduce_max(ids.row_lengths()), tf.int32)
        ids, mask = tf_text.pad_model_inputs(ids, max_seq_length=longest)
        type_ids, _ = tf_text.pad_model_inputs(type_ids, max_seq_length=longest)
        return (tf.cast(ids, tf.int32), tf.cast(mask, tf.int32), tf.cast(type_ids, tf.int32))

    def serve_text(self, *segments):
        ids, mask, type_ids = self.tokenize(list(segments))
        outputs = self._outputs(ids, mask, type_ids)
        if not self.regression:
            outputs["label"] = tf.gather(self.label_names,
                                         tf.argmax(outputs["logits"], axis=-1))
        return outputs


def next_version(export_dir: str) -> int:
    """One more than the largest numeric version folder in export_dir (1 when empty)."""
    if not os.path.isdir(export_dir):
        return 1
    versions = [int(name) for name in os.listdir(export_dir) if name.isdigit()]
    return max(versions, default=0) + 1


def export_student(student, vocab: Sequence[str], label_names: Sequence[str],
                   export_dir: str, max_seq_length: int, pair: bool,
                   version: Optional[int] = None, lower_case: bool = True,
                   text_signature: bool = True) -> str:
    """Writes the student as <export_dir>/<version>/, atomically.

    Args:
        student: the trained student, an encoders.EncoderClassifier.
        vocab: WordPiece tokens in id order.
        label_names: class names in index order (["score"] for regression).
        export_dir: the model's base folder for TF Serving.
        max_seq_length: longest input of the raw-text signature.
        pair: the raw-text signature takes text_a and text_b.
        version: version number; the next free one when None.
        lower_case: lower-case text in the raw-text signature (uncased vocabs).
        text_signature: add ``serving_text`` (WordPiece vocabularies only: the in-graph
            tokenizer is tensorflow-text's BertTokenizer).

    Returns:
        The version folder.

    Raises:
        ExportError: the version folder already exists.
    """
    version = next_version(export_dir) if version is None else version
    target = os.path.join(export_dir, str(version))
    if os.path.exists(target):
        raise ExportError(f"Export {target} already exists; pass another --export_version or "
                          "remove it.")
    assets_src = tempfile.mkdtemp(prefix="kd_keras_assets_")
    try:
        vocab_path = os.path.join(assets_src, "vocab.txt")
        labels_path = os.path.join(assets_src, "labels.txt")
        files.write_text(vocab_path, "\n".join(vocab) + "\n")
        files.write_text(labels_path, "\n".join(label_names) + "\n")
        module = _StudentModule(student, vocab_path, labels_path, label_names,
                                max_seq_length, lower_case, pair)
        text_specs = [tf.TensorSpec([None], tf.string, name="text_a")]
        if pair:
            text_specs.append(tf.TensorSpec([None], tf.string, name="text_b"))
        serve_text = tf.function(module.serve_text, input_signature=text_specs)
        signatures = {"serving_default": module.serve_ids}
        if text_signature:
            signatures["serving_text"] = serve_text.get_concrete_function()
        with files.atomic_folder(target, replace=False) as staging:
            tf.saved_model.save(module, staging, signatures=signatures)
    finally:
        shutil.rmtree(assets_src, ignore_errors=True)  # the export holds its own copies
    return target
