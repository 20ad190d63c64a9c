"""What text without labels costs (issue #30): writing augmented copies, and an epoch of
a distillation stage over the labelled set alone against one over it and N copies.

    python scripts/bench_augment.py --data_dir=$GLUE_DIR          # MRPC train, MiniLM
    python scripts/bench_augment.py --examples=300 --no_write      # minutes, made-up reviews

The teacher is the packaged MiniLM when it is installed (its vocabulary and embeddings:
what --augment_method=embedding reads), else a random MiniLM-sized BERT over the same
vocabulary size.  Measures, in one process:

- ``augment_<method>``: examples/s of data.augment.augment writing --copies copies of
  each training text (the embedding method's neighbour search included); ``mlm`` over
  the first --mlm_examples only (one masked-LM pass per word), on the teacher's encoder
  with a random masked-LM head (the packaged MiniLM has none; its weights do not change
  the cost), with MiniLM only (the random vocabulary has no whole words to replace);
- ``tokenize_copies``: examples/s tokenizing those copies;
- ``epoch_labelled`` / ``epoch_with_copies``: one epoch of sid's first stage on the first
  --examples training examples, then on them and their copies (one fit each, after a
  warm-up epoch), and their ratio against the data ratio (N + 1).

Writes benchmarks/augment@<cpu tag>.json and rebuilds BENCHMARKS.md (scripts/bench.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_sizes import cpu_description  # noqa: E402


def training_examples(data_dir, count: int):
    """MRPC's training pairs (--data_dir), or the made-up reviews of README's example."""
    from kd_keras import tasks
    from kd_keras.data import sources
    import make_example_data

    if data_dir:
        examples, _ = sources.load_examples(tasks.get_task("mrpc"), "train", data_dir)
        return "MRPC train", examples[:count]
    from kd_keras.data.examples import Example

    return "made-up reviews", [Example(text, None, 0)
                               for _, text, _ in make_example_data.rows(count, 1)]


def teacher_and_tokenizer(cache: str):
    """The MiniLM teacher and its tokenizer, or a random model of its size."""
    from kd_keras import models, tokenization
    from kd_keras.errors import ModelError

    try:
        tokenizer = tokenization.load_tokenizer("minilm", cache)
        return "MiniLM-L6", models.load_pretrained("minilm", 2, cache), tokenizer
    except ModelError:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "vocab.txt")
            with open(path, "w") as handle:  # a vocabulary of MiniLM's size
                handle.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                                       + [f"w{i}" for i in range(30517)]) + "\n")
            tokenizer = tokenization.load_tokenizer(path, cache)
        config = models.bert_config(30522, 2, num_layers=6, hidden_size=384, num_heads=12,
                                    intermediate_size=1536)
        return "random MiniLM-sized BERT", models.build_model(config, seed=0), tokenizer


def random_head_candidates(teacher, tokenizer):
    """MaskedLMCandidates from the teacher's encoder and a random masked-LM head."""
    from kd_keras.encoders.masked_lm import MaskedLanguageModel, MaskedLMHead
    from kd_keras.pipeline.transfer import masked_lm_candidates

    head = MaskedLMHead(teacher.hidden_size, teacher.config.vocab_size, "gelu", 1e-12)
    head.build((None, teacher.hidden_size))
    return masked_lm_candidates(MaskedLanguageModel(teacher, head), tokenizer, 128)


def epoch_seconds(teacher, features, batch_size: int) -> float:
    """One epoch of sid's first stage (a 3-layer student), after a warm-up epoch."""
    from kd_keras import backends, config, distiller, models, optimization, schedules
    from kd_keras.data import batching

    mapping = models.layer_mapping(teacher.num_layers, 3)
    student = models.derive_student(teacher, 3, mapping)
    model = distiller.Distiller(student, teacher, schedules.build(
        config.DistillConfig(schedule="sid", epochs=1, epochs_per_stage=1), mapping))
    model.compile(optimizer=optimization.make_optimizer(1e-4, 1000, 0.0, 0.01))
    model.build_optimizer()
    steps = batching.batches_per_epoch(features.lengths, batch_size)
    times = []
    for epoch in range(2):
        data = backends.make_dataset(features, batch_size, True, seed=0, epochs=epoch + 1,
                                     start_epoch=epoch)
        start = time.perf_counter()
        model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
        times.append(time.perf_counter() - start)
    return times[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=os.environ.get("GLUE_DIR"))
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--mlm_examples", type=int, default=200)
    parser.add_argument("--no_write", action="store_true")
    args = parser.parse_args()
    from kd_keras import tokenization
    from kd_keras.data import augment
    from kd_keras.data.features import concatenate, tokenize
    import keras

    cache = tempfile.mkdtemp(prefix="bench_augment_")
    data_name, examples = training_examples(args.data_dir, args.examples)
    teacher_name, teacher, tokenizer = teacher_and_tokenizer(cache)
    timings = {}

    def timed(name, call, count):
        start = time.perf_counter()
        value = call()
        seconds = time.perf_counter() - start
        timings[name] = {"seconds": seconds, "examples_per_second": count / seconds}
        print(f"{name:<24} {seconds:8.2f} s  {count / seconds:10.1f} examples/s", flush=True)
        return value

    neighbours = augment.EmbeddingNeighbours(
        tokenization.vocab_tokens(tokenizer),
        keras.ops.convert_to_numpy(teacher.embeddings.word.embeddings),
        bool(getattr(tokenizer, "do_lower_case", True)))
    count = len(examples) * args.copies
    copies = timed("augment_embedding", lambda: augment.augment(
        examples, args.copies, "embedding", 0, neighbours), len(examples))
    timed("augment_delete_swap", lambda: augment.augment(
        examples, args.copies, "delete_swap", 0), len(examples))
    mlm_examples = examples[:args.mlm_examples] if teacher_name == "MiniLM-L6" else []
    if mlm_examples:
        candidates = random_head_candidates(teacher, tokenizer)
        timed("augment_mlm", lambda: augment.augment(
            mlm_examples, args.copies, "mlm", 0, candidates), len(mlm_examples))
    labelled = tokenize(examples, tokenizer, 128)
    added = timed("tokenize_copies", lambda: tokenize(copies, tokenizer, 128), count)
    plain = epoch_seconds(teacher, labelled, args.batch_size)
    more = epoch_seconds(teacher, concatenate([labelled, added]), args.batch_size)
    timings["epoch_labelled"] = {"seconds": plain,
                                 "examples_per_second": len(examples) / plain}
    timings["epoch_with_copies"] = {"seconds": more,
                                    "examples_per_second": (len(examples) + count) / more}
    ratio = more / plain
    print(f"epoch with {args.copies} copies / labelled epoch: {ratio:.2f}x "
          f"(data {args.copies + 1}x)")
    cpu = cpu_description()
    result = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu, "data": data_name,
              "teacher": teacher_name, "examples": len(examples), "copies": args.copies,
              "batch_size": args.batch_size, "mlm_examples": len(mlm_examples),
              "timings": timings,
              "epoch_ratio": ratio, "data_ratio": args.copies + 1}
    if not args.no_write:
        path = os.path.join(REPO, "benchmarks", f"augment@{cpu['tag']}.json")
        with open(path, "w") as handle:
            json.dump(result, handle, indent=2)
        subprocess.run([sys.executable, os.path.join(REPO, "scripts", "bench.py"),
                        "--markdown_only"], check=True)
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
