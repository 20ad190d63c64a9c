"""Shared tiny, odd-sized fixtures: 3 heads, hidden 48, vocab 97, so shape bugs show."""

import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf

# The JAX runs that tests start share one compilation cache: the same tiny shapes are
# compiled once per test session, not once per process (seconds each on a CPU).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    tempfile.gettempdir(), f"kd_keras_tests_jax_cache_{os.getuid()}_{os.getppid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# The tests' XLA programs (JAX steps, TensorFlow's jit_compile) are tiny: compiling them
# takes seconds, running them nothing.  XLA's backend optimisations off halves the
# compile time (tests/backend_step.py on JAX: 85 s -> 46 s, terms and weights within
# 3e-6 of the optimised build's).  Subprocesses inherit it.
FAST_COMPILE = "--xla_backend_optimization_level=0"
if FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()

from kd_keras import models, tasks, tokenization
from kd_keras.data.features import tokenize
from kd_keras.data.sources import load_examples
from kd_keras.data.synthetic import synthetic_vocab
from kd_keras.data.vocab import write_vocab

TINY = dict(hidden_size=48, num_heads=3, intermediate_size=60, max_position_embeddings=64)
TEXTS = ["the cat sat on the mat", "a dog barked at the cat", "good movie, great plot"]


def write_bpe_tokenizer(folder: str) -> str:
    """A RoBERTa tokenizer trained on TEXTS, saved in folder as a hub checkpoint's
    tokenizer.json beside a config.json naming the family; returns folder."""
    import json

    from tokenizers import Tokenizer, decoders, models as bpe_models, pre_tokenizers
    from tokenizers import processors, trainers

    tokenizer = Tokenizer(bpe_models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(TEXTS * 10, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", tokenizer.token_to_id("</s>")), ("<s>", tokenizer.token_to_id("<s>")))
    tokenizer.save(os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "config.json"), "w") as handle:
        json.dump({"model_type": "roberta"}, handle)
    return folder


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vocab")
    path = os.path.join(folder, "vocab.txt")
    write_vocab(path, synthetic_vocab())
    return tokenization.load_tokenizer(path, str(folder))


def tiny_teacher(num_layers=4, num_labels=2, seed=1, dropout=0.1, **overrides):
    sizes = dict(TINY, **overrides)
    config = models.bert_config(len(synthetic_vocab()), num_labels, num_layers=num_layers,
                                dropout=dropout, **sizes)
    return models.build_model(config, seed=seed)


@pytest.fixture(scope="session")
def teacher():
    return tiny_teacher()


def make_batch(batch=5, seq=9, seed=0, pad_last=3):
    """Features int32 [batch, seq]: pair inputs, the last rows padded."""
    rng = np.random.RandomState(seed)
    ids = rng.randint(5, 97, size=(batch, seq)).astype(np.int32)
    mask = np.ones((batch, seq), np.int32)
    for row in range(batch):
        if row >= batch - 2:
            mask[row, seq - pad_last - row % 2:] = 0
    ids[mask == 0] = 0
    ids[:, 0] = 2  # [CLS]
    types = np.zeros((batch, seq), np.int32)
    types[:, seq // 2:] = 1
    types[mask == 0] = 0
    labels = rng.randint(0, 2, size=batch).astype(np.int32)
    return ({"input_ids": tf.constant(ids), "attention_mask": tf.constant(mask),
             "token_type_ids": tf.constant(types)}, tf.constant(labels))


@pytest.fixture(scope="session")
def synthetic_features(tokenizer):
    spec = tasks.get_task("synthetic")
    train, _ = load_examples(spec, "train", synthetic_size=96, seed=3)
    return tokenize(train, tokenizer, 32)


# The longest files first (seconds per file, measured on 2026-12-07), then the rest in
# collection order.  pytest.ini keeps this order (--no-loadscope-reorder; pytest-xdist
# would otherwise sort files by their number of tests), so each process takes the longest
# file left whenever it runs low, and the two finish close together.
LONGEST_FIRST = ("test_fault_injection.py", "test_resume_jax.py",  # KD_KERAS_LONG_TESTS
                 "test_end_to_end.py", "test_distiller.py", "test_own_data_cli.py",
                 "test_resume.py", "test_distribute.py", "test_reproduce.py",
                 "test_cli_errors.py", "test_backends.py", "test_transfer.py",
                 "test_jax_pipeline.py", "test_folder_lock.py", "test_presets.py",
                 "test_bench.py", "test_bench_jax.py", "test_export_formats.py",
                 "test_encoders.py", "test_precision.py", "test_evaluate.py",
                 "test_attention_shift.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = os.path.basename(str(item.fspath))
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file stays
