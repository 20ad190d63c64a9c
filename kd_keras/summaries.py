"""TensorBoard event files written with the tensorboard package alone (no TensorFlow), so
a run on Keras' JAX backend is watched the same way as one on TensorFlow.

Scalars, text and images are stored as tensors with their plugin's metadata, the format
``tf.summary`` writes: TensorBoard and its EventAccumulator read both alike.
"""

from __future__ import annotations

import struct
import time
import zlib
from typing import Dict, Optional

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar import summary_v2 as scalar_summary
from tensorboard.plugins.text import summary_v2 as text_summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util


def png_bytes(image: np.ndarray) -> bytes:
    """An RGB picture as a PNG file (no compression filter; zlib level 6).

    Args:
        image: uint8 [height, width, 3].
    """
    height, width, channels = image.shape
    if channels != 3 or image.dtype != np.uint8:
        raise ValueError(f"png_bytes takes uint8 [h, w, 3], not {image.dtype} {image.shape}")

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    rows = np.concatenate([np.zeros((height, 1), np.uint8),  # filter type 0 per row
                           image.reshape(height, width * 3)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def _image_pb(tag: str, images: np.ndarray) -> summary_pb2.Summary:
    """An image summary as tf.summary.image stores it: strings [width, height, png...]."""
    height, width = images.shape[1:3]
    encoded = [str(width).encode(), str(height).encode()] + [png_bytes(i) for i in images]
    tensor = tensor_util.make_tensor_proto(np.array(encoded, dtype=np.object_))
    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, tensor=tensor,
                      metadata=image_metadata.create_summary_metadata(None, None))
    return summary


class EventWriter:
    """One TensorBoard run folder's event file.

    Args:
        log_dir: the run folder (made when missing).
    """

    def __init__(self, log_dir: str):
        self._writer = EventFileWriter(log_dir)

    def _add(self, summary: summary_pb2.Summary, step: int) -> None:
        self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                               summary=summary))

    def scalar(self, tag: str, value: float, step: int) -> None:
        self._add(scalar_summary.scalar_pb(tag, np.float32(value)), step)

    def text(self, tag: str, value: str, step: int) -> None:
        self._add(text_summary.text_pb(tag, value), step)

    def image(self, tag: str, images: np.ndarray, step: int) -> None:
        """Args: images: uint8 [k, height, width, 3]."""
        self._add(_image_pb(tag, images), step)

    def hparams(self, values: Dict, trial_id: Optional[str] = None) -> None:
        """The run's settings for TensorBoard's HParams tab."""
        self._add(hparams_summary.hparams_pb(values, trial_id=trial_id), 0)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
