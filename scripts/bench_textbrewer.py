"""The PyTorch peer: TextBrewer's distillation step on the shapes and losses of bench.py.

Runs in its own virtualenv (torch, not TensorFlow):

    python3 -m venv /tmp/tb && /tmp/tb/bin/pip install torch==2.13.0 textbrewer \\
        'transformers>=4.57,<5'
    /tmp/tb/bin/python scripts/bench_textbrewer.py --size=base

Losses, as in kd_keras' `all` step: soft-label cross-entropy (T=1) + 0.1 * hard-label
cross-entropy, and for every matched layer pair the attention cross-entropy (KL up to
the teacher's constant entropy) and the [CLS] hidden-state cosine loss.  A step is what
TextBrewer's training loop does per batch: train_on_batch (both forwards, adaptors,
losses), backward, gradient clipping, optimizer step.  Writes
benchmarks/textbrewer_<size>@<cpu tag>.json; run scripts/bench.py afterwards (or before: it
rebuilds BENCHMARKS.md from every JSON) to see the comparison.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import textbrewer
import transformers
from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig
from transformers import BertConfig, BertForSequenceClassification

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_sizes import SIZES, cpu_description, mapping  # noqa: E402

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "benchmarks")


def build(size, layers, attention_dropout):
    config = BertConfig(vocab_size=size["vocab"], hidden_size=size["hidden"],
                        num_hidden_layers=layers, num_attention_heads=size["heads"],
                        intermediate_size=size["intermediate"],
                        max_position_embeddings=max(512, size["seq"]), num_labels=2,
                        attention_probs_dropout_prob=attention_dropout,
                        output_attentions=True, output_hidden_states=True,
                        # Attention probabilities are only returned by the eager kernel.
                        attn_implementation="eager")
    return BertForSequenceClassification(config)


def make_batch(size):
    """The same pattern as bench.py's inputs: last quarter padded in half the rows."""
    generator = torch.Generator().manual_seed(0)
    batch, seq = size["batch"], size["seq"]
    ids = torch.randint(5, size["vocab"], (batch, seq), generator=generator)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[batch // 2:, seq - seq // 4:] = 0
    ids[mask == 0] = 0
    ids[:, 0] = 2
    types = torch.zeros(batch, seq, dtype=torch.long)
    types[:, seq // 2:] = 1
    types[mask == 0] = 0
    labels = torch.randint(0, 2, (batch,), generator=generator)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types,
            "labels": labels}


def make_adaptor(matched_layers):
    def adaptor(batch, outputs):
        attention = list(outputs.attentions)
        for index in matched_layers:  # log-probabilities: TextBrewer softmaxes its input
            attention[index] = torch.log(attention[index].clamp_min(1e-12))
        return {"logits": outputs.logits, "attention": attention,
                "hidden": [h[:, :1] for h in outputs.hidden_states],
                "losses": outputs.loss}
    return adaptor


def median_seconds(step, args) -> float:
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--step_only", action="store_true",
                        help="only time the distillation step; print one JSON line, write "
                             "nothing (what scripts/bench_peer.py runs)")
    args = parser.parse_args()
    torch.manual_seed(0)
    size = SIZES[args.size]
    pairs = mapping(size)
    teacher = build(size, size["teacher_layers"], 0.1).eval()
    student = build(size, size["student_layers"], 0.0).train()
    matches = []
    for s, t in pairs:
        matches.append({"layer_T": t - 1, "layer_S": s - 1, "feature": "attention",
                        "loss": "attention_ce", "weight": 1})
        matches.append({"layer_T": t, "layer_S": s, "feature": "hidden", "loss": "cos",
                        "weight": 1})
    distill_config = DistillationConfig(temperature=1, hard_label_weight=0.1,
                                        kd_loss_type="ce", intermediate_matches=matches)
    train_config = TrainingConfig(device="cpu", log_dir=None, output_dir="/tmp/tb_out")
    distiller = GeneralDistiller(
        train_config, distill_config, teacher, student,
        make_adaptor([t - 1 for _, t in pairs]), make_adaptor([s - 1 for s, _ in pairs]))
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-5, weight_decay=0.01)
    batch = make_batch(size)

    def step():
        loss, _ = distiller.train_on_batch(batch, {})
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()

    def teacher_forward():
        with torch.no_grad():
            teacher(**{k: v for k, v in batch.items() if k != "labels"})

    def student_train_step():
        student(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()

    seconds = median_seconds(step, args)
    if args.step_only:
        print(json.dumps({"textbrewer_step_seconds": seconds}))
        return 0
    # Earlier runs at the same shapes stay in the record: the peer's timing varies from
    # run to run more than ours, so BENCHMARKS.md compares against the median run.
    path = os.path.join(BENCH_DIR, f"textbrewer_{args.size}@{cpu_description()['tag']}.json")
    runs = []
    if os.path.exists(path):
        with open(path) as handle:
            runs = json.load(handle).get("runs_seconds", [])[-3:]
    runs.append(seconds)
    # Components, to see where time goes next to kd_keras' own breakdown.
    components = {"teacher_forward": median_seconds(teacher_forward, args),
                  "student_train_step": median_seconds(student_train_step, args)}
    median_run = statistics.median(runs)
    result = {"size": size, "seconds": median_run,
              "examples_per_second": size["batch"] / median_run, "runs_seconds": runs,
              "components_seconds": components,
              "torch": torch.__version__, "textbrewer": textbrewer.__version__,
              "transformers": transformers.__version__, "threads": torch.get_num_threads(),
              "repeats": args.repeats, "date": time.strftime("%Y-%m-%d")}
    print(f"teacher forward {components['teacher_forward'] * 1000:.1f} ms, student train "
          f"step {components['student_train_step'] * 1000:.1f} ms")
    print(f"TextBrewer step: {seconds * 1000:.1f} ms, "
          f"{result['examples_per_second']:.2f} examples/s")
    os.makedirs(BENCH_DIR, exist_ok=True)
    with open(path, "w") as handle:
        json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
