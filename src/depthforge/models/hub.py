"""Pretrained weights from a ``save_pretrained`` folder or a Hugging Face hub id, loaded without running anything
the folder brings.

- A hub id becomes a local folder first (``snapshot_download`` of the configs and safetensors only): with network
  it downloads, without it (or under ``HF_HUB_OFFLINE=1``) it takes the cached snapshot. ``transformers`` then
  only sees local folders: its ``AutoBackbone.from_pretrained`` (5.x) asks the hub whether the id exists first,
  which rejects a local path and needs network even for a cached id, so depthforge calls the concrete classes.
- ``config.json`` is read as JSON and built with ``transformers``' own class for its ``model_type``; ``auto_map``
  code is never imported (``trust_remote_code=False``, so ``transformers`` never asks on standard input).
- Weights load from safetensors only: a pickled ``pytorch_model.bin`` is refused, never unpickled.
- Weights must fit: a tensor of the model that the folder lacks or gives another shape is refused (one line
  listing them) unless ``partial_weights``; what was loaded and what was initialised is logged.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import DepthforgeError, error_line

log = logging.getLogger(__name__)
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")  # "organisation/model" on the Hugging Face hub
# What a hub snapshot needs: never a pickle (pytorch_model.bin) nor code (*.py).
# model_index.json: a diffusers pipeline's (Marigold), whose parts are fetched after it says what they are.
HUB_FILES = ["config.json", "preprocessor_config.json", "model_index.json", "*.safetensors",
             "*.safetensors.index.json"]
PICKLES = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def hub_error(source: str, what: str, error: BaseException) -> DepthforgeError:
    """One line for weights that could not be had: what, from where, and how to pass a local folder."""
    reason = error_line(error, 160)
    if os.path.exists(source):
        return DepthforgeError(f"{source}: not a loadable {what} folder ({reason})")
    return DepthforgeError(f"{source}: the {what} could not be downloaded from the Hugging Face hub and is not in "
                           f"its cache ({reason}); download it where there is network (hf download {source} "
                           f"--local-dir DIR) and pass the folder DIR instead")


def local_folder(source: str, what: str, files: list[str] = HUB_FILES, nested: bool = False) -> Path:
    """The folder holding ``source``: the folder itself, or a hub id's snapshot of ``files`` (patterns; downloaded,
    or cached offline), at the repository's top level only unless ``nested`` (a diffusers pipeline's parts: a
    pattern's * also matches "/", and a pipeline's subfolders hold gigabytes of fp16 copies)."""
    if not source.strip():
        raise DepthforgeError(f"pretrained {what}: an empty name; give a save_pretrained folder or a hub id")
    path = Path(source)
    if path.is_dir():
        return path
    if path.exists():
        raise DepthforgeError(f"{source}: not a folder; a pretrained {what} is a save_pretrained folder or a hub id")
    if not HUB_ID.fullmatch(source):
        raise DepthforgeError(f"{source}: no such folder (nor a hub id organisation/name) for the {what}")
    from huggingface_hub import snapshot_download

    try:
        # without network (or offline) this falls back to the cached snapshot by itself
        return Path(snapshot_download(source, allow_patterns=files, ignore_patterns=None if nested else ["*/*"]))
    except Exception as e:  # huggingface_hub raises validation, HTTP, network and cache errors alike
        raise hub_error(source, what, e) from None


def read_config(folder: Path, source: str, what: str, model_types: tuple[str, ...] = ()):
    """``transformers``' config of a folder: config.json read as JSON, built by the class of its model_type.

    ``model_types``: the ones accepted (empty: any ``transformers`` knows); another -> one line naming both."""
    from transformers import CONFIG_MAPPING

    path = folder / "config.json"
    if not path.is_file():
        raise DepthforgeError(f"{source}: no config.json; not a save_pretrained {what} folder")
    try:
        raw = json.loads(path.read_text())
        model_type = raw.get("model_type")
    except (OSError, ValueError, AttributeError) as e:
        raise DepthforgeError(f"{path}: not a readable config.json ({e})") from None
    if model_type not in CONFIG_MAPPING:
        known = f" (a {what} is one of: {', '.join(model_types)})" if model_types else ""
        raise DepthforgeError(f"{source}: model_type {model_type!r} is not one transformers knows; depthforge "
                              f"does not run a model folder's own code{known}")
    if model_types and model_type not in model_types:
        raise DepthforgeError(f"{source}: a {model_type} model, not a {what} ({' or '.join(model_types)})")
    if raw.get("auto_map"):
        log.warning("%s: config.json's auto_map names the folder's own code; it is not run (transformers' %s "
                    "is used)", source, model_type)
    try:
        return CONFIG_MAPPING[model_type].from_pretrained(folder, local_files_only=True)
    except Exception as e:  # transformers' strict configs raise several types for a bad field
        reason = error_line(e, whole=True)
        raise DepthforgeError(f"{path}: not a valid {model_type} config ({reason})") from None


def require_safetensors(folder: Path, source: str, what: str) -> None:
    """Refuse a folder without safetensors weights, naming the pickles it has instead (never opened)."""
    if not list(folder.glob("*.safetensors")):
        pickles = sorted(p.name for pattern in PICKLES for p in folder.glob(pattern))
        found = f"{', '.join(pickles)} is a pickle, which depthforge never opens" if pickles else "no weights at all"
        raise DepthforgeError(f"{source}: no .safetensors weights for the {what} ({found}); save the model again "
                              "with save_pretrained (safetensors) where its origin is trusted")


def load_weights(model_class, folder: Path, source: str, what: str, config, partial: bool = False,
                 expected_missing: tuple[str, ...] = (), only: str | None = None, **kwargs: Any):
    """``model_class.from_pretrained(folder)`` from safetensors, in training mode, its weights checked.

    ``expected_missing``: prefixes of tensors the folder lacks by design (a backbone's added output norms),
    initialised without complaint. ``only``: keep just the weights under this prefix and initialise the rest
    (a sibling model's checkpoint, e.g. its encoder). A missing or misshapen tensor otherwise -> one line listing
    them, unless ``partial`` (then they start from ``transformers``' initialisation, and the log lists them)."""
    require_safetensors(folder, source, what)
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its table of missing tensors: the checks and the log line below say it
    try:
        model, info = model_class.from_pretrained(
            folder, config=config, use_safetensors=True, trust_remote_code=False, local_files_only=True,
            output_loading_info=True, ignore_mismatched_sizes=True, dtype=torch.float32, **kwargs)
    except Exception as e:  # transformers raises OSError, ValueError, RuntimeError, safetensors errors
        reason = error_line(e, whole=True)
        raise DepthforgeError(f"{source}: the {what} weights cannot be loaded ({reason})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = sorted(k for k in info["missing_keys"] if not k.startswith(expected_missing))
    misfit = sorted(k for k, *_ in info["mismatched_keys"])
    bad = missing + misfit
    if bad and not partial:
        raise DepthforgeError(f"{source}: the weights fit the {what} only partly: {len(bad)} tensor(s) not loaded "
                              f"({_few(bad)}); set model.partial_weights=true to start them from random values")
    model.train()  # from_pretrained returns eval mode; fine-tuning trains every module
    total = len(model.state_dict())
    if only is not None:
        fresh = model_class(config).train()
        kept = {k: v for k, v in model.state_dict().items() if k.startswith(only)}
        fresh.load_state_dict(kept, strict=False)
        parts = sorted({k.split(".")[0] for k in fresh.state_dict() if not k.startswith(only)})
        log.info("%s: loaded %d weight tensors (%s*) from %s; initialised: %s", what, len(kept), only, source,
                 ", ".join(parts))
        return fresh
    init = sorted(set(bad) | {k for k in info["missing_keys"]})
    log.info("%s: loaded %d of %d weight tensors from %s%s%s", what, total - len(init), total, source,
             f"; initialised: {_few(init)}" if init else "",
             f"; not used: {len(info['unexpected_keys'])} tensor(s) of the folder" if info["unexpected_keys"] else "")
    return model


def _few(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")
