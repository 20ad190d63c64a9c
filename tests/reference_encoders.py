"""Independent numpy references of the four encoder families, written from their
definitions and reading Hugging Face (PyTorch-layout) checkpoint names directly: the
names and shapes here are typed out from the families' published layouts, not taken from
kd_keras' name table, so a wrong name or transpose there fails the tests.

``random_checkpoint`` writes a tiny random checkpoint folder (config.json +
model.safetensors) in that layout; ``forward`` runs it in float64.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Tuple

import numpy as np
from scipy.special import erf

VOCAB, LABELS, HIDDEN, LAYERS, HEADS, INNER = 97, 3, 48, 2, 3, 60

CONFIGS = {
    "bert": dict(model_type="bert", vocab_size=VOCAB, hidden_size=HIDDEN,
                 num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                 intermediate_size=INNER, max_position_embeddings=64, type_vocab_size=2,
                 hidden_act="gelu", layer_norm_eps=1e-12, pad_token_id=0),
    "roberta": dict(model_type="roberta", vocab_size=VOCAB, hidden_size=HIDDEN,
                    num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                    intermediate_size=INNER, max_position_embeddings=66, type_vocab_size=1,
                    hidden_act="gelu_new", layer_norm_eps=1e-5, pad_token_id=1),
    "electra": dict(model_type="electra", vocab_size=VOCAB, hidden_size=HIDDEN,
                    embedding_size=24, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                    intermediate_size=INNER, max_position_embeddings=64, type_vocab_size=2,
                    hidden_act="gelu", layer_norm_eps=1e-12, pad_token_id=0),
    "distilbert": dict(model_type="distilbert", vocab_size=VOCAB, dim=HIDDEN,
                       n_layers=LAYERS, n_heads=HEADS, hidden_dim=INNER,
                       max_position_embeddings=64, activation="gelu", pad_token_id=0),
}
for _config in CONFIGS.values():
    _config.update(id2label={str(i): f"LABEL_{i}" for i in range(LABELS)},
                   label2id={f"LABEL_{i}": i for i in range(LABELS)})


def _bert_style_layer(prefix: str) -> Dict[str, str]:
    return {"q": f"{prefix}attention.self.query", "k": f"{prefix}attention.self.key",
            "v": f"{prefix}attention.self.value", "o": f"{prefix}attention.output.dense",
            "norm1": f"{prefix}attention.output.LayerNorm",
            "ffn1": f"{prefix}intermediate.dense", "ffn2": f"{prefix}output.dense",
            "norm2": f"{prefix}output.LayerNorm"}


def layer_names(family: str, index: int) -> Dict[str, str]:
    """The checkpoint names of one encoder layer's parts."""
    if family == "distilbert":
        p = f"distilbert.transformer.layer.{index}."
        return {"q": p + "attention.q_lin", "k": p + "attention.k_lin",
                "v": p + "attention.v_lin", "o": p + "attention.out_lin",
                "norm1": p + "sa_layer_norm", "ffn1": p + "ffn.lin1", "ffn2": p + "ffn.lin2",
                "norm2": p + "output_layer_norm"}
    return _bert_style_layer(f"{family}.encoder.layer.{index}.")


def shapes(family: str) -> Dict[str, Tuple[int, ...]]:
    """Every tensor of the family's sequence classifier: name -> PyTorch shape."""
    c = CONFIGS[family]
    out: Dict[str, Tuple[int, ...]] = {}

    def dense(name, inputs, outputs):
        out[f"{name}.weight"], out[f"{name}.bias"] = (outputs, inputs), (outputs,)

    def norm(name, width):
        out[f"{name}.weight"], out[f"{name}.bias"] = (width,), (width,)

    width = c.get("embedding_size", HIDDEN)
    e = f"{family}.embeddings."
    out[e + "word_embeddings.weight"] = (VOCAB, width)
    out[e + "position_embeddings.weight"] = (c["max_position_embeddings"], width)
    if family != "distilbert":
        out[e + "token_type_embeddings.weight"] = (c["type_vocab_size"], width)
    norm(e + "LayerNorm", width)
    if family == "electra":
        dense("electra.embeddings_project", width, HIDDEN)
    for i in range(LAYERS):
        n = layer_names(family, i)
        for part in ("q", "k", "v", "o"):
            dense(n[part], HIDDEN, HIDDEN)
        dense(n["ffn1"], HIDDEN, INNER)
        dense(n["ffn2"], INNER, HIDDEN)
        norm(n["norm1"], HIDDEN)
        norm(n["norm2"], HIDDEN)
    if family == "bert":
        dense("bert.pooler.dense", HIDDEN, HIDDEN)
        dense("classifier", HIDDEN, LABELS)
    elif family == "distilbert":
        dense("pre_classifier", HIDDEN, HIDDEN)
        dense("classifier", HIDDEN, LABELS)
    else:
        dense("classifier.dense", HIDDEN, HIDDEN)
        dense("classifier.out_proj", HIDDEN, LABELS)
    return out


def random_checkpoint(family: str, folder: str, seed: int = 0) -> Dict[str, np.ndarray]:
    """Writes config.json and a random model.safetensors; returns the tensors."""
    from safetensors.numpy import save_file

    rng = np.random.RandomState(seed)
    state = {}
    for name, shape in shapes(family).items():
        scale = 1.0 if "LayerNorm" in name or "layer_norm" in name else 0.2
        base = 1.0 if name.endswith("weight") and len(shape) == 1 else 0.0
        state[name] = (base + scale * rng.normal(size=shape)).astype(np.float32)
    os.makedirs(folder, exist_ok=True)
    save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(CONFIGS[family], handle)
    return state


def _gelu(x, approximate: bool):
    if approximate:
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def forward(family: str, state: Dict[str, np.ndarray], config: Dict, x: Dict
            ) -> Tuple[List[np.ndarray], List[np.ndarray], np.ndarray]:
    """The family's classifier in float64, without dropout.

    Args:
        state: checkpoint tensors by name (PyTorch layout: Linear weights [out, in]).
        config: the config.json dict.
        x: input_ids, attention_mask, token_type_ids, int [batch, seq].

    Returns:
        (hidden states [embeddings, layer 1, ...] each [batch, seq, hidden],
        attention probabilities per layer [batch, heads, seq, seq], logits [batch, labels]).
    """
    w = {k: v.astype(np.float64) for k, v in state.items()}
    eps = config.get("layer_norm_eps", 1e-12)
    heads = config.get("num_attention_heads", config.get("n_heads"))
    hidden_size = config.get("hidden_size", config.get("dim"))
    act = config.get("hidden_act", config.get("activation"))

    def dense(name, h):
        return h @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    def norm(name, h):
        mean = h.mean(-1, keepdims=True)
        var = ((h - mean) ** 2).mean(-1, keepdims=True)
        return (h - mean) / np.sqrt(var + eps) * w[f"{name}.weight"] + w[f"{name}.bias"]

    ids, mask = x["input_ids"], x["attention_mask"]
    seq = ids.shape[1]
    e = f"{family}.embeddings."
    if family == "roberta":  # positions count non-padding tokens, after the padding id
        pad = config["pad_token_id"]
        positions = np.cumsum(ids != pad, axis=1) * (ids != pad) + pad
    else:
        positions = np.broadcast_to(np.arange(seq), ids.shape)
    h = w[e + "word_embeddings.weight"][ids] + w[e + "position_embeddings.weight"][positions]
    if family != "distilbert":
        types = x["token_type_ids"] if family != "roberta" else np.zeros_like(ids)
        h = h + w[e + "token_type_embeddings.weight"][types]
    h = norm(e + "LayerNorm", h)
    if family == "electra":
        h = dense("electra.embeddings_project", h)
    size = hidden_size // heads
    hidden, attentions = [h], []
    for i in range(config.get("num_hidden_layers", config.get("n_layers"))):
        n = layer_names(family, i)
        probs = np.zeros((ids.shape[0], heads, seq, seq))
        context = np.zeros_like(h)
        for head in range(heads):
            cut = slice(head * size, (head + 1) * size)
            q, k, v = (dense(n[part], h)[..., cut] for part in ("q", "k", "v"))
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(size)
            scores = np.where(mask[:, None, :] == 1, scores, -np.inf)
            weights = np.exp(scores - scores.max(-1, keepdims=True))
            probs[:, head] = weights / weights.sum(-1, keepdims=True)
            context[..., cut] = probs[:, head] @ v
        a = norm(n["norm1"], h + dense(n["o"], context))
        inner = _gelu(dense(n["ffn1"], a), approximate=act == "gelu_new")
        h = norm(n["norm2"], a + dense(n["ffn2"], inner))
        hidden.append(h)
        attentions.append(probs)
    cls = h[:, 0]
    if family == "bert":
        logits = dense("classifier", np.tanh(dense("bert.pooler.dense", cls)))
    elif family == "distilbert":
        logits = dense("classifier", np.maximum(dense("pre_classifier", cls), 0.0))
    elif family == "roberta":
        logits = dense("classifier.out_proj", np.tanh(dense("classifier.dense", cls)))
    else:  # ELECTRA's head applies the hidden activation
        logits = dense("classifier.out_proj", _gelu(dense("classifier.dense", cls), False))
    return hidden, attentions, logits
