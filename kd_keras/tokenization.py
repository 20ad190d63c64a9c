"""Tokenizers of every encoder family, from a model's files, with Hugging Face's fast
(Rust) tokenizers: WordPiece for BERT, MiniLM, ELECTRA and DistilBERT (cased or not as the
checkpoint says), byte-level BPE for RoBERTa.  No TensorFlow here."""

from __future__ import annotations

import hashlib
import json
import os
from typing import List

from kd_keras.errors import ModelError
from kd_keras.hub import model_folder

BPE_FAMILIES = ("roberta",)


def _model_type(folder: str) -> str:
    path = os.path.join(folder, "config.json")
    if not os.path.exists(path):
        return "bert"
    with open(path, encoding="utf-8") as handle:
        return json.load(handle).get("model_type", "bert")


def _bpe_tokenizer(folder: str):
    """RoBERTa's byte-level BPE from tokenizer.json, or vocab.json + merges.txt."""
    from transformers import RobertaTokenizerFast

    if os.path.exists(os.path.join(folder, "tokenizer.json")):
        return RobertaTokenizerFast(tokenizer_file=os.path.join(folder, "tokenizer.json"))
    vocab, merges = (os.path.join(folder, name) for name in ("vocab.json", "merges.txt"))
    if os.path.exists(vocab) and os.path.exists(merges):
        return RobertaTokenizerFast(vocab_file=vocab, merges_file=merges)
    raise ModelError(f"{folder} has no tokenizer.json or vocab.json + merges.txt.")


def load_tokenizer(name: str, cache_dir: str):
    """The tokenizer that belongs to a model: its family's kind, cased or not as its files
    say.

    Args:
        name: a model folder, ``minilm``, a hub name, or a WordPiece vocab.txt path.
        cache_dir: where the MiniLM package is extracted.

    Raises:
        ModelError: no tokenizer files, or the model cannot be found.
    """
    from transformers import BertTokenizerFast

    if os.path.isfile(name):
        return BertTokenizerFast(vocab_file=name, do_lower_case=_vocab_is_uncased(name))
    folder = model_folder(name, cache_dir)
    if _model_type(folder) in BPE_FAMILIES:
        return _bpe_tokenizer(folder)
    lower_case = lower_cases(folder)
    if os.path.exists(os.path.join(folder, "tokenizer.json")):
        return BertTokenizerFast(tokenizer_file=os.path.join(folder, "tokenizer.json"),
                                 do_lower_case=lower_case)
    if os.path.exists(os.path.join(folder, "vocab.txt")):
        return BertTokenizerFast(vocab_file=os.path.join(folder, "vocab.txt"),
                                 do_lower_case=lower_case)
    raise ModelError(f"{folder} has no tokenizer.json or vocab.txt.")


def lower_cases(folder: str) -> bool:
    """Whether a checkpoint's tokenizer lower-cases its input.

    In order: tokenizer_config.json's ``do_lower_case``, tokenizer.json's normalizer
    (``lowercase``), else the vocabulary: one with upper-case tokens is cased.
    """
    config_path = os.path.join(folder, "tokenizer_config.json")
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as handle:
            setting = json.load(handle).get("do_lower_case")
        if setting is not None:
            return bool(setting)
    tokenizer_path = os.path.join(folder, "tokenizer.json")
    if os.path.exists(tokenizer_path):
        with open(tokenizer_path, encoding="utf-8") as handle:
            normalizer = json.load(handle).get("normalizer") or {}
        for part in [normalizer] + list(normalizer.get("normalizers") or []):
            if "lowercase" in part:
                return bool(part["lowercase"])
    vocab_path = os.path.join(folder, "vocab.txt")
    return _vocab_is_uncased(vocab_path) if os.path.exists(vocab_path) else True


def _vocab_is_uncased(vocab_path: str) -> bool:
    """True unless a token other than the bracketed special ones has upper-case letters."""
    with open(vocab_path, encoding="utf-8") as handle:
        return not any(token != token.lower() for token in (line.strip() for line in handle)
                       if not (token.startswith("[") and token.endswith("]")))


def tokenizer_digest(tokenizer) -> str:
    """A short digest of a tokenizer's vocabulary and casing: equal for tokenizers that
    turn every text into the same ids."""
    digest = hashlib.sha256("\n".join(vocab_tokens(tokenizer)).encode())
    digest.update(f"lower_case={bool(getattr(tokenizer, 'do_lower_case', True))}".encode())
    return digest.hexdigest()[:16]


def vocab_tokens(tokenizer) -> List[str]:
    """The tokenizer's vocab as a list indexed by token id."""
    vocab = tokenizer.get_vocab()
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    return tokens




def is_wordpiece(tokenizer) -> bool:
    """Whether the tokenizer is WordPiece, which the exported raw-text signature
    (tensorflow-text's BertTokenizer) reproduces; BPE models export ids only."""
    return type(tokenizer.backend_tokenizer.model).__name__ == "WordPiece"
