"""Where a task's examples come from: generated (synthetic), the user's files, a GLUE
folder, or TFDS."""

from __future__ import annotations

from typing import List, Optional, Tuple

from kd_keras.data import glue, own_files, synthetic
from kd_keras.data.examples import Example, splits
from kd_keras.errors import DataError
from kd_keras.tasks import TaskSpec


def load_examples(spec: TaskSpec, split: str, data_dir: Optional[str] = None,
                  use_tfds: bool = False, tfds_data_dir: Optional[str] = None,
                  skip_bad_rows: bool = False, max_examples: Optional[int] = None,
                  synthetic_size: int = 2000, seed: int = 0,
                  own_rows=None) -> Tuple[List[Example], int]:
    """Loads a split of a task from wherever it lives.

    The synthetic task is generated; otherwise a GLUE directory wins over TFDS.

    Args:
        spec: the task.
        split: ``"train"``, ``"dev"`` or an extra evaluation split (``splits(spec)``).
        data_dir: GLUE data directory (parent of <TASK>/), or None.
        use_tfds: fall back to TFDS when no data_dir is given.
        tfds_data_dir: where TFDS keeps prepared data (TFDS default when None).
        skip_bad_rows: skip malformed TSV rows instead of failing.
        max_examples: keep only the first this many (None keeps all).
        synthetic_size: training examples of the synthetic task (dev is a quarter).
        seed: seed of the synthetic task.
        own_rows: own data: the split's (rows, skipped) already read (own_files), so the
            file is read once.

    Returns:
        (examples, number of skipped rows).

    Raises:
        DataError: nothing could be loaded; the message says how to provide data.
    """
    if split not in splits(spec):
        raise ValueError(f"split must be one of {splits(spec)}, got '{split}'.")
    skipped = 0
    if spec.source == "synthetic":
        size = synthetic_size if split == "train" else max(8, synthetic_size // 4)
        seed = seed if split == "train" else seed + 10_007
        examples = synthetic.make_synthetic(size, seed=seed)
    elif spec.source == "files":
        examples, skipped = own_files.read_own_examples(spec, split, skip_bad_rows, own_rows)
    elif data_dir:
        examples, skipped = glue.read_glue_tsv(glue.glue_file(data_dir, spec, split), spec,
                                               skip_bad_rows)
    elif use_tfds:
        examples = glue.load_tfds(spec, split, tfds_data_dir)
    else:
        raise DataError(
            f"No data for task '{spec.name}': pass --data_dir=<GLUE dir> (containing "
            f"{spec.dir_name}/{spec.train_file}), set $GLUE_DIR, or pass --use_tfds.")
    if max_examples:
        examples = examples[:max_examples]
    if not examples:
        where = f"the {split} file {spec.files[split != 'train']}" if spec.files else \
            f"the {split} split of task '{spec.name}'"
        raise DataError(f"{where[0].upper()}{where[1:]} has no examples; check the file "
                        "(and --max_examples).")
    return examples, skipped
