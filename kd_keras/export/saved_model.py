"""The student as a SavedModel, in the layout TF Serving loads: <export_dir>/<version>/.

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
from typing import List, Sequence

import tensorflow as tf

from kd_keras.export import graph


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

    @tf.function(input_signature=graph.INPUT_SPECS)
    def serve_ids(self, input_ids, attention_mask, token_type_ids):
        return graph.outputs(self.model, input_ids, attention_mask, token_type_ids)

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
        outputs = graph.outputs(self.model, ids, mask, type_ids)
        if not self.regression:
            outputs["label"] = tf.gather(self.label_names,
                                         tf.argmax(outputs["logits"], axis=-1))
        return outputs


def save(folder: str, student, vocab: Sequence[str], label_names: Sequence[str],
         max_seq_length: int, pair: bool, lower_case: bool = True,
         text_signature: bool = True) -> None:
    """Writes the student as a SavedModel into ``folder`` (empty; the caller commits it).

    Args:
        folder: where saved_model.pb, variables/ and assets/ go.
        student: the trained student, an encoders.EncoderClassifier.
        vocab: WordPiece tokens in id order.
        label_names: class names in index order (["score"] for regression).
        max_seq_length: longest input of the raw-text signature.
        pair: the raw-text signature takes text_a and text_b.
        lower_case: lower-case text in the raw-text signature (uncased vocabs).
        text_signature: add ``serving_text`` (WordPiece vocabularies only: the in-graph
            tokenizer is tensorflow-text's BertTokenizer).
    """
    assets_src = tempfile.mkdtemp(prefix="kd_keras_assets_")
    try:
        vocab_path = os.path.join(assets_src, "vocab.txt")
        labels_path = os.path.join(assets_src, "labels.txt")
        with open(vocab_path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(vocab) + "\n")
        with open(labels_path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(label_names) + "\n")
        module = _StudentModule(student, vocab_path, labels_path, label_names,
                                max_seq_length, lower_case, pair)
        text_specs = [tf.TensorSpec([None], tf.string, name="text_a")]
        if pair:
            text_specs.append(tf.TensorSpec([None], tf.string, name="text_b"))
        serve_text = tf.function(module.serve_text, input_signature=text_specs)
        signatures = {"serving_default": module.serve_ids}
        if text_signature:
            signatures["serving_text"] = serve_text.get_concrete_function()
        tf.saved_model.save(module, folder, signatures=signatures)
    finally:
        shutil.rmtree(assets_src, ignore_errors=True)  # the export holds its own copies
