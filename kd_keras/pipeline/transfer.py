"""Text without labels the student distils on beside the labelled set: the transfer text
(--transfer_file or --transfer_task) and augmented copies of the training text
(--augment), tokenized like the rest.  The augmented copies are written once into the
cache folder, keyed by the training text, the method, the copies, the seed and the model
that proposes the words (``embedding``: the teacher's embeddings; ``mlm``:
--augment_model's files), and read back by a rerun or a resumed run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from typing import Callable, Dict, List, Sequence

import keras
import numpy as np

from kd_keras import encoders, files, hub, tokenization
from kd_keras.data import augment
from kd_keras.data.examples import Example
from kd_keras.data.features import Features, tokenize
from kd_keras.encoders import EncoderClassifier
from kd_keras.errors import ModelError
from kd_keras.pipeline.context import RunContext
from kd_keras.pipeline.inputs import TaskData, TaskInputs


def added_features(context: RunContext, task_inputs: TaskInputs, task: TaskData,
                   teacher: EncoderClassifier) -> List[Features]:
    """The transfer text and the augmented copies, tokenized (cached; the token ids
    memory-mapped), as parts to join to the training set; none when the run adds no
    text.  They carry no label (label weight 0), except copies made with
    --augment_labels=source."""
    data = context.config.data
    spec, parts = task.spec, []
    if data.transfer_file or data.transfer_task:
        text = task_inputs.transfer_text()
        features = tokenize(text.examples, task.tokenizer, data.max_seq_length,
                            cache_dir=context.cache_dir, cache_key=f"transfer/{text.source}",
                            regression=spec.is_regression, source_digest=text.digest)
        skipped = text.skipped()  # 0 when the cache spared reading the file
        print(f"Transfer text: {len(features)} examples from {text.source}"
              + (f" ({skipped} malformed rows skipped)." if skipped else "."))
        parts.append(features)
    if data.augment:
        train, _ = task_inputs.examples("train")
        copies = augmented(context, train, teacher, task.tokenizer)
        if data.augment_labels == "source":
            copies = with_source_labels(copies, train)
        parts.append(tokenize(copies, task.tokenizer, data.max_seq_length,
                              cache_dir=context.cache_dir, cache_key="augmented",
                              regression=spec.is_regression))
    return parts


def counts(parts: Sequence[Features]) -> Dict[str, int]:
    """What results.json reports of the added text: unlabelled_examples, and
    labelled_copies where --augment_labels=source gave copies a label."""
    unlabelled = sum(0 if part.label_weights is None  # None: every example has a label
                     else int(np.sum(part.label_weights == 0)) for part in parts)
    labelled = sum(len(part) for part in parts) - unlabelled
    return {"unlabelled_examples": unlabelled, **({"labelled_copies": labelled} if labelled
                                                  else {})}


def augmented(context: RunContext, examples: List[Example], teacher: EncoderClassifier,
              tokenizer) -> List[Example]:
    """--augment copies of every training example, written once into the cache folder
    (augmented_<digest>.jsonl) and read back when the same data, method, copies, seed
    and the model proposing the words (the teacher's embeddings, or --augment_model's
    weights) come again."""
    config = context.config
    method, copies, seed = config.data.augment_method, config.data.augment, config.train.seed
    key = hashlib.sha256(json.dumps(
        [method, copies, seed, [(e.text_a, e.text_b) for e in examples]]).encode())
    make_candidates = None
    if method == "embedding":
        make_candidates = _embedding_neighbours(teacher, tokenizer, key)
    elif method == "mlm":
        make_candidates = _masked_lm_candidates(context, key)
    path = os.path.join(context.cache_dir, f"augmented_{key.hexdigest()[:20]}.jsonl")
    found = files.load_cache(path, read)
    if found is not None:
        print(f"Reusing {copies} augmented cop{'y' if copies == 1 else 'ies'} of each "
              f"training text ({method}) from {path}.")
        return found
    print(f"Augmenting the {len(examples)} training texts ({copies} "
          f"cop{'y' if copies == 1 else 'ies'} each, {method}).")
    candidates = make_candidates() if make_candidates else None
    bar = keras.utils.Progbar(len(examples), verbose=1 if sys.stdout.isatty() else 2)

    def progress(done: int) -> None:
        if done % 100 == 0 or done == len(examples):
            bar.update(done, finalize=done == len(examples))

    found = augment.augment(examples, copies, method, seed, candidates, progress)
    lines = [json.dumps({"text_a": example.text_a, "text_b": example.text_b}) + "\n"
             for example in found]
    with files.atomic_file(path) as handle:  # a killed run leaves no half file
        handle.writelines(lines)
        # The last line checks the others: a damaged file is rebuilt, not read.
        handle.write(json.dumps({"sha256": _checksum(lines)}) + "\n")
    return found


def _embedding_neighbours(teacher: EncoderClassifier, tokenizer, key
                          ) -> Callable[[], augment.Candidates]:
    """Adds the teacher's embeddings and vocabulary to the cache key; returns what makes
    the neighbours."""
    embeddings = keras.ops.convert_to_numpy(teacher.embeddings.word.embeddings)
    key.update(np.ascontiguousarray(embeddings).tobytes())
    key.update(tokenization.tokenizer_digest(tokenizer).encode())
    if tokenizer.kind == "bpe":  # tokenizer_digest says lower-case; lookups are cased
        key.update(b"cased")
    return lambda: augment.EmbeddingNeighbours(
        tokenization.vocab_tokens(tokenizer), embeddings, tokenizer.do_lower_case)


def _masked_lm_candidates(context: RunContext, key) -> Callable[[], augment.Candidates]:
    """Adds --augment_model's files (weights, configuration, tokenizer) to the cache key;
    returns what loads the masked LM (only when copies must be written).

    Raises:
        ModelError: the checkpoint cannot be found, or has no masked-LM head.
    """
    data = context.config.data
    source = data.augment_model or context.config.model.teacher
    folder = hub.model_folder(source, context.cache_dir)
    lm_tokenizer = tokenization.load_tokenizer(folder, context.cache_dir)
    for name in encoders.FOLDER_FILES:  # the files load_masked_lm may read
        if os.path.exists(os.path.join(folder, name)):
            files.file_digest(os.path.join(folder, name), key)
    key.update(tokenization.tokenizer_digest(lm_tokenizer).encode())

    def load() -> augment.Candidates:
        print(f"Proposing words with {source}'s masked-LM head.")
        try:
            lm = encoders.load_masked_lm(folder)
        except encoders.EncoderError as error:
            raise ModelError(f"--augment_method=mlm: {error}") from None
        return masked_lm_candidates(lm, lm_tokenizer, data.max_seq_length)

    return load


def masked_lm_candidates(lm: encoders.MaskedLanguageModel, tokenizer, max_length: int,
                         **options) -> augment.MaskedLMCandidates:
    """The LM's candidates for a text's words, each masked text cut to max_length tokens;
    options go to MaskedLMCandidates (count, batch)."""
    return augment.MaskedLMCandidates(
        tokenization.vocab_tokens(tokenizer), tokenizer.do_lower_case,
        tokenizer.special_tokens["mask"], masked_lm_scores(lm, tokenizer, max_length),
        **options)


def masked_lm_scores(lm: encoders.MaskedLanguageModel, tokenizer, max_length: int
                     ) -> Callable[[List[str]], np.ndarray]:
    """texts, each with the mask token once -> float [texts, vocab], the LM's logits at
    the mask (NaN rows where truncation to max_length tokens cut the mask off)."""
    mask_id = tokenizer.get_vocab()[tokenizer.special_tokens["mask"]]

    def score(texts: List[str]) -> np.ndarray:
        batch = tokenize([Example(text, None, None) for text in texts], tokenizer,
                         max_length).padded()  # int32 [texts, longest]
        at_mask = batch["input_ids"] == mask_id
        logits = lm.logits_at(batch, np.argmax(at_mask, axis=1).astype(np.int32))
        logits[~at_mask.any(axis=1)] = np.nan
        return logits

    return score


def with_source_labels(copies: Sequence[Example], examples: Sequence[Example]) -> List[Example]:
    """The copies, each with the label of the training example it was made from
    (--augment_labels=source); ``augment.augment`` writes an example's copies one after
    another, so copy k comes from example k // (copies per example)."""
    per_example = len(copies) // len(examples)
    return [dataclasses.replace(copy, label=examples[k // per_example].label)
            for k, copy in enumerate(copies)]


def _checksum(lines: List[str]) -> str:
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def read(path: str) -> List[Example]:
    """Augmented copies written by ``augmented``.

    Raises:
        ValueError: the file is damaged (its checksum line is missing or disagrees).
    """
    with open(path, encoding="utf-8") as handle:
        lines = handle.readlines()
    if not lines or json.loads(lines[-1]).get("sha256") != _checksum(lines[:-1]):
        raise ValueError("the checksum line does not match the copies")
    return [Example(record["text_a"], record["text_b"], None)
            for record in map(json.loads, lines[:-1])]
