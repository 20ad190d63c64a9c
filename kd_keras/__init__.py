"""kd_keras: distil a fine-tuned BERT teacher into a smaller BERT student.

Implements "Knowledge Distillation from Internal Representations" (Aguilar et al.,
AAAI 2020) on TensorFlow / Keras 2.

Hugging Face's TensorFlow models only run on Keras 2 (the ``tf_keras`` package), and
TensorFlow picks the Keras version when it is first imported.  Setting the variable
here, before anything imports TensorFlow, means users never have to.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# Hide TensorFlow's INFO chatter (oneDNN, CUDA probing); warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# transformers would otherwise warn that PyTorch is missing, which is expected here.
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

__version__ = "0.1.0"
