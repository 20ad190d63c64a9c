#!/usr/bin/env bash
# The Python packages scripts/gpu_bench.sh needs on a GPU machine that has JAX, PyTorch,
# numpy, absl-py, h5py, ml-dtypes, rich, packaging and tensorboard but not Keras 3: the
# keras, namex and optree wheels for its Python (3.12, x86-64), downloaded here into .whl/
# (git-ignored; about 3 MB).  Carry .whl to the machine with the device tool.
set -euo pipefail
cd "$(dirname "$0")/.."
KERAS_VERSION=$(python3 -c "import keras; print(keras.__version__)" 2>/dev/null || echo 3.15.1)
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${PYTHON_VERSION:-3.12}" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  "keras==$KERAS_VERSION" namex optree
ls -l .whl
