"""kd_keras: distil a fine-tuned Transformer teacher into a smaller student.

Implements "Knowledge Distillation from Internal Representations" (Aguilar et al.,
AAAI 2020) on Keras 3 (TensorFlow backend) with its own encoders (kd_keras.encoders).

Importing kd_keras changes no global setting: ``tf.keras`` stays what TensorFlow makes
it, and a user's own Keras models are untouched.
"""

__version__ = "0.2.0"
