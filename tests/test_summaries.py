"""TensorBoard files written without TensorFlow (kd_keras.summaries), read back by
TensorBoard's own reader and an independent PNG decoder."""

import glob
import io
import os
import types

import keras
import numpy as np
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

from kd_keras import summaries, tensorboard_logs


def read(log_dir):
    """tag -> [(step, value array)] over every event file under log_dir."""
    found = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        events = EventAccumulator(path, size_guidance={"tensors": 0})
        events.Reload()
        for tag in events.Tags()["tensors"]:
            found.setdefault(tag, []).extend(
                (e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag))
    return found


def test_png_decodes_to_the_same_pixels():
    image = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(summaries.png_bytes(image))).convert("RGB"))
    np.testing.assert_array_equal(decoded, image)


def test_event_writer_scalars_text_image_hparams(tmp_path):
    writer = summaries.EventWriter(str(tmp_path))
    writer.scalar("loss", 0.25, 3)
    writer.scalar("loss", 0.125, 4)
    writer.text("note", "stage 1 ended", 4)
    picture = np.zeros((1, 4, 6, 3), np.uint8)
    picture[0, 1, 2] = (255, 0, 10)
    writer.image("attention/stage_1", picture, 4)
    writer.hparams({"schedule": "sid", "lambda": 0.1, "layers": 6})
    writer.close()
    found = read(str(tmp_path))
    assert [(step, float(v)) for step, v in found["loss"]] == [(3, 0.25), (4, 0.125)]
    assert found["note"][0][1].item() == b"stage 1 ended"
    step, image = found["attention/stage_1"][0]
    assert step == 4 and list(image[:2]) == [b"6", b"4"]  # width, height as tf.summary
    decoded = np.asarray(Image.open(io.BytesIO(image[2])).convert("RGB"))
    np.testing.assert_array_equal(decoded, picture[0])
    assert "_hparams_/session_start_info" in found


def test_tensorboard_callback_keeps_keras_layout(tmp_path):
    callback = tensorboard_logs.TensorBoard(str(tmp_path))
    optimizer = keras.optimizers.SGD(learning_rate=0.5)
    callback.set_model(types.SimpleNamespace(optimizer=optimizer))
    callback.on_epoch_end(0, {"loss": 1.5, "stage": 1.0, "val_loss": 2.0, "val_f1": 0.75})
    callback.on_train_end()
    callback.on_epoch_end(1, {"loss": 1.25, "val_loss": 1.75, "val_f1": 0.5})  # next fit
    callback.on_train_end()
    train, validation = read(str(tmp_path / "train")), read(str(tmp_path / "validation"))
    assert [(s, float(v)) for s, v in train["epoch_loss"]] == [(0, 1.5), (1, 1.25)]
    assert [float(v) for _, v in train["epoch_learning_rate"]] == [0.5, 0.5]
    assert [(s, float(v)) for s, v in validation["epoch_f1"]] == [(0, 0.75), (1, 0.5)]
    assert [float(v) for _, v in validation["epoch_loss"]] == [2.0, 1.75]
    assert "epoch_val_loss" not in train and "epoch_stage" in train


def test_the_attention_picture_names_its_panels_and_stage():
    """Each panel is titled with its model and layer, the picture with its stage: other
    layer numbers or another stage give another picture, with the maps unchanged."""
    from kd_keras import tensorboard_logs

    rng = np.random.default_rng(1)
    maps = [rng.random((6, 6)) for _ in range(2)]
    picture = tensorboard_logs.attention_image(maps, maps, [(1, 2), (2, 4)], "stage 1: sid")
    assert picture.dtype == np.uint8 and picture.shape[0] == 1 and picture.shape[-1] == 3
    assert picture.min() < 64 < 200 < picture.max()  # dark maps on a light page
    same = tensorboard_logs.attention_image(maps, maps, [(1, 2), (2, 4)], "stage 1: sid")
    np.testing.assert_array_equal(picture, same)
    for pairs, title in (([(1, 3), (2, 6)], "stage 1: sid"), ([(1, 2), (2, 4)], "stage 2: sid")):
        other = tensorboard_logs.attention_image(maps, maps, pairs, title)
        assert other.shape == picture.shape and not np.array_equal(other, picture)
