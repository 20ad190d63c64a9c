"""A hand-written eager PyTorch distillation step with kd_keras' `all` losses: the peer
that bench_jax.py's step is compared with on a GPU (where TextBrewer hung, issue #17).

    python scripts/bench_torch_step.py --size=base32 --precision=bfloat16 --json=OUT.json
    python scripts/bench_torch_step.py --check=DIR     # DIR from bench_jax.py --check_inputs

The step: the frozen teacher's forward (no gradient), the student's forward with dropout,
soft-label cross-entropy + 0.1 x hard-label cross-entropy, and per matched layer pair
the attention KL (teacher || student, over valid query rows, averaged over heads) and
the squared [CLS] cosine distance; backward, gradient norm clipped at 1, AdamW (epsilon
1e-6, no weight decay on LayerNorm weights and biases).  The same BERT as kd_keras'
encoders (post-LayerNorm, exact GELU, additive mask -1e4, tanh pooler).  bfloat16 runs
the models under torch.autocast and every loss in float32, as Keras' mixed_bfloat16
policy does.  --check loads both models' weights and a batch written by bench_jax.py and
fails unless every term equals the Distiller's (float32, dropout off) within --tolerance.

Timed like bench_jax.py: median of --repeats steps after --warmup, each step waited for
(torch.cuda.synchronize on a GPU).  Needs only torch and numpy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_sizes import SIZES, mapping, numpy_inputs, step_flops, timed_row  # noqa: E402

MASK_VALUE = -1e4
EPSILON = 1e-12
LAYER_NORM_EPS = 1e-12


class Layer(nn.Module):
    """One post-LayerNorm BERT layer that also returns its attention probabilities."""

    def __init__(self, hidden: int, heads: int, inner: int, dropout: float,
                 attention_dropout: float):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.attention_output = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)
        self.intermediate = nn.Linear(hidden, inner)
        self.output = nn.Linear(inner, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(dropout)
        self.attention_dropout = nn.Dropout(attention_dropout)

    def forward(self, hidden, additive_mask):
        """hidden float [batch, seq, hidden], additive_mask [batch, 1, 1, seq] ->
        (output [batch, seq, hidden], probabilities [batch, heads, seq, seq])."""
        batch, seq, width = hidden.shape

        def split(x):
            return x.view(batch, seq, self.heads, width // self.heads).transpose(1, 2)

        query, key, value = split(self.query(hidden)), split(self.key(hidden)), \
            split(self.value(hidden))
        scores = query @ key.transpose(-1, -2) / math.sqrt(width // self.heads)
        probabilities = torch.softmax(scores + additive_mask, dim=-1)
        context = (self.attention_dropout(probabilities) @ value).transpose(1, 2)
        context = context.reshape(batch, seq, width)
        attended = self.attention_norm(hidden + self.dropout(self.attention_output(context)))
        output = self.output(F.gelu(self.intermediate(attended)))
        return self.output_norm(attended + self.dropout(output)), probabilities


class Bert(nn.Module):
    """A BERT classifier returning logits, every layer's attention probabilities and
    hidden states (embeddings first)."""

    def __init__(self, size: dict, layers: int, dropout: float = 0.1,
                 attention_dropout: float = 0.1, labels: int = 2):
        super().__init__()
        hidden = size["hidden"]
        self.word = nn.Embedding(size["vocab"], hidden)
        self.position = nn.Embedding(max(512, size["seq"]), hidden)
        self.token_type = nn.Embedding(2, hidden)
        self.norm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            Layer(hidden, size["heads"], size["intermediate"], dropout, attention_dropout)
            for _ in range(layers))
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, labels)
        for module in self.modules():  # BERT's initialisation
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, ids, mask, types):
        positions = torch.arange(ids.shape[1], device=ids.device)[None, :]
        hidden = self.dropout(self.norm(self.word(ids) + self.position(positions)
                                        + self.token_type(types)))
        additive = (1.0 - mask[:, None, None, :].float()) * MASK_VALUE
        hidden_states, attentions = [hidden], []
        for layer in self.layers:
            hidden, probabilities = layer(hidden, additive)
            hidden_states.append(hidden)
            attentions.append(probabilities)
        pooled = self.dropout(torch.tanh(self.pooler(hidden[:, 0])))
        return self.classifier(pooled), attentions, hidden_states

    def load_hf(self, weights: dict, prefix: str) -> None:
        """Copies a BERT classifier's tensors in the Hugging Face layout (PyTorch names,
        [out, in] kernels) from ``weights`` (name -> array) under ``prefix``."""
        def put(parameter, name):
            value = torch.as_tensor(np.asarray(weights.pop(prefix + name)))
            assert parameter.shape == value.shape, (name, parameter.shape, value.shape)
            parameter.data.copy_(value)

        def linear(module, name):
            put(module.weight, name + ".weight")
            put(module.bias, name + ".bias")

        for module, name in ((self.word, "word_embeddings"), (self.position,
                             "position_embeddings"), (self.token_type, "token_type_embeddings")):
            put(module.weight, f"bert.embeddings.{name}.weight")
        linear(self.norm, "bert.embeddings.LayerNorm")
        parts = (("query", "attention.self.query"), ("key", "attention.self.key"),
                 ("value", "attention.self.value"),
                 ("attention_output", "attention.output.dense"),
                 ("attention_norm", "attention.output.LayerNorm"),
                 ("intermediate", "intermediate.dense"), ("output", "output.dense"),
                 ("output_norm", "output.LayerNorm"))
        for index, layer in enumerate(self.layers):
            for attribute, name in parts:
                linear(getattr(layer, attribute), f"bert.encoder.layer.{index}.{name}")
        linear(self.pooler, "bert.pooler.dense")
        linear(self.classifier, "classifier")


def attention_kl(teacher, student, mask):
    """Per example: KL over keys, summed over valid query rows and heads, divided by
    heads x valid rows.  teacher, student [b, h, s, s]; mask [b, s]."""
    teacher, student = teacher.float(), student.float()
    rows = (teacher * (torch.log(teacher + EPSILON) - torch.log(student + EPSILON))).sum(-1)
    valid = mask.float()[:, None, :]
    count = teacher.shape[1] * valid.sum((1, 2)).clamp(min=1.0)
    return (rows * valid).sum((1, 2)) / count


def cls_cosine(teacher, student):
    """Per example: (1 - cos)^2 of [CLS] vectors [b, hidden]."""
    cosine = F.cosine_similarity(teacher.float(), student.float(), dim=-1, eps=1e-6)
    return (1.0 - cosine) ** 2


def all_terms(teacher_out, student_out, labels, mask, pairs):
    """Every `all` term, per example float32 [batch], by kd_keras' term names."""
    t_logits, t_attentions, t_hidden = teacher_out
    s_logits, s_attentions, s_hidden = student_out
    log_probs = F.log_softmax(s_logits.float(), dim=-1)
    terms = {"soft": -(F.softmax(t_logits.float(), dim=-1) * log_probs).sum(-1),
             "hard": -log_probs.gather(1, labels[:, None].long())[:, 0]}
    for s, t in pairs:
        terms[f"att_kl_s{s}_t{t}"] = attention_kl(t_attentions[t - 1], s_attentions[s - 1],
                                                 mask)
        terms[f"cos_s{s}_t{t}"] = cls_cosine(t_hidden[t][:, 0], s_hidden[s][:, 0])
    return terms


def total_loss(terms: dict, hard_label_weight: float = 0.1):
    """The `all` loss: soft + lambda * hard + every pair's terms, mean over the batch."""
    return sum((hard_label_weight if name == "hard" else 1.0) * value.mean()
               for name, value in terms.items())


class Step:
    """The eager distillation step of one student against a frozen teacher."""

    def __init__(self, teacher: Bert, student: Bert, pairs, precision: str, device):
        self.teacher, self.student, self.pairs = teacher.eval(), student.train(), pairs
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)
        decay = [p for n, p in student.named_parameters() if "norm" not in n and
                 not n.endswith("bias")]
        rest = [p for n, p in student.named_parameters() if "norm" in n or n.endswith("bias")]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                            {"params": rest, "weight_decay": 0.0}],
                                           lr=1e-5, eps=1e-6)
        self.autocast = (torch.autocast(device.type, dtype=torch.bfloat16)
                         if precision == "bfloat16" else None)

    def _context(self):
        return self.autocast if self.autocast is not None else torch.autocast(
            "cpu", enabled=False)

    def __call__(self, ids, mask, types, labels) -> float:
        with self._context():
            with torch.no_grad():
                teacher_out = self.teacher(ids, mask, types)
            student_out = self.student(ids, mask, types)
            loss = total_loss(all_terms(teacher_out, student_out, labels, mask, self.pairs))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.student.parameters(), 1.0)
        self.optimizer.step()
        return loss


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_timings(size: dict, precision: str, device, warmup: int, repeats: int) -> dict:
    torch.manual_seed(0)
    pairs = mapping(size)
    teacher = Bert(size, size["teacher_layers"]).to(device)
    student = Bert(size, size["student_layers"], attention_dropout=0.0).to(device)
    features, labels = numpy_inputs(size, size["batch"])
    ids, mask, types = (torch.as_tensor(features[k]).long().to(device) for k in (
        "input_ids", "attention_mask", "token_type_ids"))
    labels = torch.as_tensor(labels).long().to(device)
    step = Step(teacher, student, pairs, precision, device)
    results = {}

    def record(name, function, flops):
        def step():
            function()
            synchronize(device)
        results[name] = timed_row(name, step, size["batch"], flops, warmup, repeats)

    def forward():
        with step._context(), torch.no_grad():
            return teacher(ids, mask, types)[0]

    t, n = size["teacher_layers"], size["student_layers"]
    record("teacher_forward", forward, step_flops(size, t, 0))
    record("distill_all", lambda: step(ids, mask, types, labels), step_flops(size, t, n))
    return results


def check(folder: str, tolerance: float) -> int:
    """Compares every `all` term with the Distiller's, written by bench_jax.py."""
    with open(os.path.join(folder, "shapes.json")) as handle:
        size = json.load(handle)
    weights = dict(np.load(os.path.join(folder, "weights.npz")))
    expected = np.load(os.path.join(folder, "terms.npz"))
    teacher = Bert(size, size["teacher_layers"]).eval()
    student = Bert(size, size["student_layers"]).eval()
    teacher.load_hf(weights, "teacher/")
    student.load_hf(weights, "student/")
    if weights:
        raise SystemExit(f"error: tensors left unused: {sorted(weights)}")
    ids, mask, types = (torch.as_tensor(expected[k]).long() for k in (
        "input_ids", "attention_mask", "token_type_ids"))
    pairs = [tuple(pair) for pair in size["mapping"]]
    with torch.no_grad():
        terms = all_terms(teacher(ids, mask, types), student(ids, mask, types),
                          torch.as_tensor(expected["labels"]), mask, pairs)
    worst = 0.0
    for name, value in terms.items():
        difference = float(np.max(np.abs(value.numpy() - expected[f"term/{name}"])))
        worst = max(worst, difference)
        print(f"{name:<16} max |PyTorch - kd_keras| = {difference:.2e}")
    missing = sorted(k[5:] for k in expected.files if k.startswith("term/")
                     and k[5:] not in terms)
    total = float(total_loss(terms))
    print(f"total {total:.6f} against {float(np.mean(expected['total'])):.6f}")
    if missing or worst > tolerance:
        print(f"error: the PyTorch step's terms differ from kd_keras' (worst {worst:.2e}, "
              f"tolerance {tolerance:.0e}; missing {missing})")
        return 1
    print(f"PyTorch terms equal kd_keras' within {tolerance:.0e} ({len(terms)} terms)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", default=None, help="write the result here")
    parser.add_argument("--check", default=None, metavar="DIR",
                        help="only compare the terms with bench_jax.py --check_inputs=DIR")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()
    if args.check:
        return check(args.check, args.tolerance)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = SIZES[args.size]
    timings = run_timings(size, args.precision, device, args.warmup, args.repeats)
    result = {"size": size, "precision": args.precision, "torch": torch.__version__,
              "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
              "date": time.strftime("%Y-%m-%d"), "warmup": args.warmup,
              "repeats": args.repeats, "timings": timings}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
