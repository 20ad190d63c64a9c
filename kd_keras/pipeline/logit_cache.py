"""The frozen teacher's logits on the training set, computed once per teacher and data
and kept in the cache folder, so stages that read only them run no teacher."""

from __future__ import annotations

import hashlib
import os
import time

import keras
import numpy as np

from kd_keras import files
from kd_keras.data.features import Features
from kd_keras.encoders import EncoderClassifier
from kd_keras.pipeline import inference


def teacher_logits(teacher: EncoderClassifier, features: Features,
                   batch_size: int, folder: str) -> np.ndarray:
    """The frozen teacher's logits on ``features``, computed once per teacher and data.

    The file in ``folder`` is keyed by a digest of the teacher's weights, the token ids,
    the batch size and the precision policy, so runs that share a cache folder reuse it
    and a changed teacher or dataset never reads stale logits.

    Returns:
        float32 [num_examples, num_labels] in example order.
    """
    digest = hashlib.sha1()
    for weight in teacher.weights:  # in build order; names would carry Keras' counters
        digest.update(str(tuple(weight.shape)).encode())
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    for name in sorted(features.flat):  # hashed in place: the ids may be memory-mapped
        digest.update(memoryview(np.ascontiguousarray(features.flat[name])))
    digest.update(np.ascontiguousarray(features.lengths).tobytes())
    digest.update(f"{batch_size}/{keras.config.dtype_policy().name}".encode())
    # .npz: zip's CRC of the array tells a damaged file, which is then computed again.
    path = os.path.join(folder, f"teacher_logits_{digest.hexdigest()[:20]}.npz")

    def load(stored_path: str) -> np.ndarray:
        with np.load(stored_path) as stored:
            logits = stored["logits"]
        if logits.shape[0] != len(features):
            raise ValueError(f"{logits.shape[0]} rows for {len(features)} examples")
        return logits

    logits = files.load_cache(path, load)
    if logits is not None:
        print(f"Reusing the teacher's logits on {len(features)} training examples from "
              f"{path}.")
        return logits
    started = time.perf_counter()
    logits = inference.predict_logits(teacher, features, batch_size)
    files.save_npz(path, logits=logits)  # runs sharing the folder never read half a file
    print(f"Cached the teacher's logits on {len(logits)} training examples in "
          f"{time.perf_counter() - started:.1f} s.")
    return logits
