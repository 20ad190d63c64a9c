"""Tokenizers of every encoder family, from a model's files, with Hugging Face's fast
(Rust) ``tokenizers`` library: WordPiece for BERT, MiniLM, ELECTRA and DistilBERT (cased
or not as the checkpoint says), byte-level BPE for RoBERTa.  The ids are those of
transformers' BertTokenizerFast / RobertaTokenizerFast built from the same files (tested
against them), without importing transformers (seconds in every process).  No
TensorFlow here."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Dict, List, Optional, Sequence, Union

import tokenizers
from tokenizers import decoders, normalizers, pre_tokenizers, processors

from kd_keras import files
from kd_keras.errors import ModelError
from kd_keras.hub import model_folder

BPE_FAMILIES = ("roberta",)

# Special tokens by role, in the order transformers registers them (a token missing
# from the vocabulary gets the next free id in this order).
WORDPIECE_SPECIALS = {"unk": "[UNK]", "sep": "[SEP]", "pad": "[PAD]", "cls": "[CLS]",
                      "mask": "[MASK]"}
BPE_SPECIALS = {"bos": "<s>", "eos": "</s>", "unk": "<unk>", "sep": "</s>", "pad": "<pad>",
                "cls": "<s>", "mask": "<mask>"}
# What transformers writes as tokenizer_config.json's tokenizer_class.
_TOKENIZER_CLASSES = {"wordpiece": "BertTokenizer", "bpe": "RobertaTokenizer"}


class TextTokenizer:
    """A fast tokenizer with the few calls kd_keras needs, saved the way Hugging Face
    checkpoints are (tokenizer.json, the vocabulary files, tokenizer_config.json).

    Args:
        backend: the ``tokenizers.Tokenizer`` (normaliser, pre-tokenizer, model and the
            post-processor that adds the special tokens).
        kind: "wordpiece" or "bpe".
        do_lower_case: whether the normaliser lower-cases (WordPiece; BPE: False).
    """

    def __init__(self, backend: tokenizers.Tokenizer, kind: str, do_lower_case: bool):
        self.backend_tokenizer = backend
        self.kind = kind
        self.do_lower_case = do_lower_case
        self.special_tokens = WORDPIECE_SPECIALS if kind == "wordpiece" else BPE_SPECIALS
        backend.no_padding()
        backend.no_truncation()
        # transformers registers the special tokens as added tokens: matched whole in raw
        # text before normalisation, given the next free id where the vocabulary lacks one.
        # RoBERTa's mask also takes the space before it (lstrip), even where the file
        # registered it without.
        registered = {token.content for token in backend.get_added_tokens_decoder().values()}
        added = []
        for role, token in self.special_tokens.items():
            if token not in registered or (kind == "bpe" and role == "mask"):
                registered.add(token)
                added.append(tokenizers.AddedToken(
                    token, special=True, normalized=False,
                    lstrip=(kind == "bpe" and role == "mask")))
        backend.add_special_tokens(added)

    def __len__(self) -> int:
        """Vocabulary size, added tokens included."""
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> Dict[str, int]:
        """Token -> id, added tokens included."""
        return self.backend_tokenizer.get_vocab(with_added_tokens=True)

    @property
    def pad_token_id(self) -> Optional[int]:
        return self.backend_tokenizer.token_to_id(self.special_tokens["pad"])

    @property
    def unk_token_id(self) -> Optional[int]:
        return self.backend_tokenizer.token_to_id(self.special_tokens["unk"])

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> List[str]:
        return [self.backend_tokenizer.id_to_token(int(i)) for i in ids]

    def __call__(self, texts: Union[str, Sequence[str]],
                 pairs: Union[None, str, Sequence[str]] = None,
                 max_length: Optional[int] = None) -> Dict[str, list]:
        """Token ids with the family's special tokens, no padding.

        Args:
            texts: one text or a list of them.
            pairs: the second texts of sentence pairs (same shape as texts), or None.
            max_length: truncate each input to this many tokens, special ones included,
                shortening the longer of a pair's two texts first (transformers'
                "longest_first"); None: no truncation.

        Returns:
            "input_ids", "token_type_ids" and "attention_mask": a list of ints for one
            text, a list of such lists for a list of texts.
        """
        single = isinstance(texts, str)
        if single:
            texts, pairs = [texts], None if pairs is None else [pairs]
        backend = self.backend_tokenizer
        inputs = list(texts) if pairs is None else list(zip(texts, pairs))
        if max_length is not None:
            backend.enable_truncation(max_length, strategy="longest_first")
        try:
            encodings = backend.encode_batch(inputs)
        finally:  # the tokenizer's saved form and digest never carry a call's setting
            backend.no_truncation()
        encoded = {"input_ids": [e.ids for e in encodings],
                   "token_type_ids": [e.type_ids for e in encodings],
                   "attention_mask": [e.attention_mask for e in encodings]}
        return {k: v[0] for k, v in encoded.items()} if single else encoded

    def save_pretrained(self, folder: str) -> None:
        """Writes tokenizer.json, the vocabulary (vocab.txt, or vocab.json + merges.txt),
        tokenizer_config.json and special_tokens_map.json into folder, which transformers'
        AutoTokenizer and load_tokenizer both read."""
        os.makedirs(folder, exist_ok=True)
        files.write_text(os.path.join(folder, "tokenizer.json"),
                         self.backend_tokenizer.to_str())
        self.backend_tokenizer.model.save(folder)
        special = {f"{role}_token": token for role, token in self.special_tokens.items()}
        config = {"tokenizer_class": _TOKENIZER_CLASSES[self.kind], "model_max_length": 512,
                  **special}
        if self.kind == "wordpiece":
            config["do_lower_case"] = self.do_lower_case
        files.write_json(os.path.join(folder, "tokenizer_config.json"), config)
        files.write_json(os.path.join(folder, "special_tokens_map.json"), special)


def _model_type(folder: str) -> str:
    path = os.path.join(folder, "config.json")
    if not os.path.exists(path):
        return "bert"
    with open(path, encoding="utf-8") as handle:
        return json.load(handle).get("model_type", "bert")


def _wordpiece_from_vocab(vocab_path: str, lower_case: bool) -> TextTokenizer:
    """BERT's WordPiece from a vocab.txt, as transformers converts its slow tokenizer."""
    vocab: Dict[str, int] = {}
    with open(vocab_path, encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            vocab[line.rstrip("\n")] = index
    backend = tokenizers.Tokenizer(tokenizers.models.WordPiece(
        vocab, unk_token=WORDPIECE_SPECIALS["unk"], max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lower_case)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    cls, sep = WORDPIECE_SPECIALS["cls"], WORDPIECE_SPECIALS["sep"]
    if cls in vocab and sep in vocab:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])])
    return TextTokenizer(backend, "wordpiece", lower_case)


def _wordpiece_from_file(path: str, lower_case: bool) -> TextTokenizer:
    """A WordPiece tokenizer.json; a BERT normaliser is made to lower-case as the
    checkpoint's settings say (as transformers' BertTokenizerFast does)."""
    backend = tokenizers.Tokenizer.from_file(path)
    if backend.normalizer is not None:
        state = json.loads(backend.normalizer.__getstate__())
        wanted = {"lowercase": lower_case, "strip_accents": None, "handle_chinese_chars": True}
        if any(state.get(key, value) != value for key, value in wanted.items()):
            kind = state.pop("type")
            state.update(wanted)
            backend.normalizer = getattr(normalizers, kind)(**state)
    return TextTokenizer(backend, "wordpiece", lower_case)


def _bpe_tokenizer(folder: str) -> TextTokenizer:
    """RoBERTa's byte-level BPE from tokenizer.json, or vocab.json + merges.txt."""
    if os.path.exists(os.path.join(folder, "tokenizer.json")):
        backend = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        return TextTokenizer(backend, "bpe", False)
    vocab, merges = (os.path.join(folder, name) for name in ("vocab.json", "merges.txt"))
    if not (os.path.exists(vocab) and os.path.exists(merges)):
        raise ModelError(f"{folder} has no tokenizer.json or vocab.json + merges.txt.")
    backend = tokenizers.Tokenizer(tokenizers.models.BPE.from_file(
        vocab, merges, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    sep, cls = BPE_SPECIALS["sep"], BPE_SPECIALS["cls"]
    backend.post_processor = processors.RobertaProcessing(
        (sep, backend.token_to_id(sep)), (cls, backend.token_to_id(cls)), trim_offsets=True,
        add_prefix_space=False)
    return TextTokenizer(backend, "bpe", False)


def load_tokenizer(name: str, cache_dir: str) -> TextTokenizer:
    """The tokenizer that belongs to a model: its family's kind, cased or not as its files
    say.

    Args:
        name: a model folder, ``minilm``, a hub name, or a WordPiece vocab.txt path.
        cache_dir: where the MiniLM package is extracted.

    Raises:
        ModelError: no tokenizer files, or the model cannot be found.
    """
    if os.path.isfile(name):
        return _wordpiece_from_vocab(name, _vocab_is_uncased(name))
    folder = model_folder(name, cache_dir)
    if _model_type(folder) in BPE_FAMILIES:
        return _bpe_tokenizer(folder)
    lower_case = lower_cases(folder)
    if os.path.exists(os.path.join(folder, "tokenizer.json")):
        return _wordpiece_from_file(os.path.join(folder, "tokenizer.json"), lower_case)
    if os.path.exists(os.path.join(folder, "vocab.txt")):
        return _wordpiece_from_vocab(os.path.join(folder, "vocab.txt"), lower_case)
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
    # BPE never lower-cases, but its digests were recorded with True (run_identity.json of
    # earlier runs), so they stay so.
    lower_case = tokenizer.do_lower_case or tokenizer.kind == "bpe"
    digest.update(f"lower_case={lower_case}".encode())
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
