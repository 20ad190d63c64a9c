"""How far fine-tuning moved a model's attention from the checkpoint it started from:
the dev attention KL of each layer, fine-tuned model against starting checkpoint.

    python scripts/attention_shift.py --tuned=runs/study/mrpc-500/teacher/teacher \
        --base=minilm --task=mrpc --data_dir=$GLUE_DIR [--output=shift.json]

Both models must have the same layers and heads.  KL(tuned || base) is the attention KL
the study reports for a student against its teacher (losses.attention_kl: per query
position and head, over the keys, averaged over valid positions and heads), here layer k
of one model against layer k of the other, on the task's dev examples.  Issue #30 asks
when internal distillation helps: where a teacher's attention stayed where its
checkpoint's was, matching it teaches a student pretrained attention, little of the task.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kd_keras import files, models  # noqa: E402
from kd_keras.config import DataConfig, RunConfig, TrainConfig  # noqa: E402
from kd_keras.data.features import Features  # noqa: E402
from kd_keras.pipeline import context as context_lib  # noqa: E402
from kd_keras.pipeline import evaluation, inputs  # noqa: E402


def attention_shift(tuned, base, dev: Features, is_regression: bool, batch_size: int
                    ) -> Dict[int, float]:
    """Layer number (1-based) -> KL(tuned || base) of that layer's attention on ``dev``.

    Raises:
        ValueError: the models differ in layers or heads.
    """
    if (tuned.num_layers, tuned.num_heads) != (base.num_layers, base.num_heads):
        raise ValueError(f"the models differ: {tuned.num_layers} layers x {tuned.num_heads} "
                         f"heads against {base.num_layers} x {base.num_heads}.")
    pairs = [(layer, layer) for layer in range(1, tuned.num_layers + 1)]
    per_pair = evaluation.attention_kl_per_layer(tuned, base, pairs, dev, is_regression,
                                                  batch_size)
    return {layer: per_pair[f"att_kl_s{layer}_t{layer}"] for layer, _ in pairs}


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tuned", required=True, help="the fine-tuned model's folder")
    parser.add_argument("--base", required=True,
                        help="the checkpoint it started from: a folder, minilm or a hub name")
    parser.add_argument("--task", required=True, help="the task whose dev set is read")
    parser.add_argument("--data_dir", default=None, help="GLUE TSV folders (--task's)")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--cache_dir", default=os.path.join("runs", "attention_shift_cache"),
                        help="tokenized dev set and the extracted MiniLM")
    parser.add_argument("--output", default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)

    config = RunConfig(
        data=DataConfig(task=args.task, data_dir=args.data_dir,
                        max_seq_length=args.max_seq_length, eval_batch_size=args.batch_size),
        train=TrainConfig(model_dir=args.cache_dir, cache_dir=args.cache_dir))
    context = context_lib.start(config)
    task_inputs = inputs.TaskInputs(config)
    tokenizer = models.load_tokenizer(args.tuned, args.cache_dir)
    dev, _ = inputs.load_split(context, task_inputs, tokenizer, "dev")
    spec = task_inputs.spec
    tuned = models.load_pretrained(args.tuned, spec.num_labels, args.cache_dir)
    base = models.load_pretrained(args.base, spec.num_labels, args.cache_dir)
    shift = attention_shift(tuned, base, dev, spec.is_regression, args.batch_size)
    for layer, value in shift.items():
        print(f"layer {layer}: KL(tuned || base) {value:.4f}")
    result = {"tuned": args.tuned, "base": args.base, "task": args.task,
              "dev_examples": len(dev), "max_seq_length": args.max_seq_length,
              "attention_kl_by_layer": {str(layer): value for layer, value in shift.items()}}
    if args.output:
        files.write_json(args.output, result)
        print(f"Wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
