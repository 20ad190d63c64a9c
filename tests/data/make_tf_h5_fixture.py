"""Writes tests/data/tf_bert_h5/: a tiny BERT classifier saved by Hugging Face's TF model
(config.json + tf_model.h5, the layout kd_keras' teachers had before Keras 3), with a
batch of inputs and the logits that model gives them (expected.npz).

Needs what the fixture stands in for: tensorflow, tf-keras and transformers 4
(``pip install tf-keras==2.21.0``).  Run from the repository root:

    python tests/data/make_tf_h5_fixture.py
"""

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    import tf_keras
    from transformers import BertConfig, TFBertForSequenceClassification

    config = BertConfig(vocab_size=97, hidden_size=48, num_hidden_layers=2,
                        num_attention_heads=3, intermediate_size=60,
                        max_position_embeddings=64, num_labels=3)
    tf_keras.utils.set_random_seed(5)
    model = TFBertForSequenceClassification(config)
    rng = np.random.RandomState(0)
    ids = rng.randint(5, 97, size=(4, 9)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[2:, 6:] = 0
    ids[mask == 0] = 0
    types = np.zeros_like(ids)
    types[:, 5:] = 1
    types[mask == 0] = 0
    x = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    logits = model(x, training=False).logits.numpy()
    folder = os.path.join(HERE, "tf_bert_h5")
    model.save_pretrained(folder)
    np.savez(os.path.join(folder, "expected.npz"), logits=logits, **x)
    print("wrote", folder, sorted(os.listdir(folder)))


if __name__ == "__main__":
    main()
