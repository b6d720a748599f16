"""What ``depthforge bench`` checks before it allocates or times anything, beside ``check_args``'s limits: the
device exists, and every size is one the benchmarked model accepts (its contract's ``multiple``)."""
from __future__ import annotations

import torch

from ..errors import DepthforgeError


def check_device(device: str) -> torch.device:
    """``device`` ("cpu", "cuda", "cuda:N") as a torch.device, or a one-line DepthforgeError where this machine
    has no such device (a CUDA-less torch build or no visible GPU)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise DepthforgeError(f"bench --device {device}: not a device (cpu, cuda or cuda:N)") from None
    if dev.type not in ("cpu", "cuda"):
        raise DepthforgeError(f"bench --device {device}: only cpu and cuda are benchmarked")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = (f"torch {torch.__version__} was built without CUDA" if torch.version.cuda is None
                   else "torch sees no GPU (CUDA_VISIBLE_DEVICES, driver)")
            raise DepthforgeError(f"bench --device {device}: no CUDA device: {why}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DepthforgeError(f"bench --device {device}: no CUDA device: only {torch.cuda.device_count()} "
                                  "GPU(s) are visible")
    return dev


_MULTIPLES: dict[str, int] = {}


def model_multiple(name: str, kwargs: dict) -> int:
    """The ``multiple`` of registered model ``name`` built with ``kwargs``, read from a build on the meta device
    (no weights are allocated: even Depth Pro's catalog size takes under a second); a plain build where a model
    cannot be built there."""
    from ..models import MODELS

    key = f"{name} {sorted(kwargs.items())!r}"
    if key not in _MULTIPLES:
        try:
            with torch.device("meta"):
                model = MODELS.build(name, **kwargs)
        except Exception:  # noqa: BLE001  a model whose build computes on tensors; its own error comes later
            try:
                model = MODELS.build(name, **kwargs)
            except Exception:  # noqa: BLE001  e.g. a missing package: the timed row says why
                return 1
        _MULTIPLES[key] = int(model.multiple)
    return _MULTIPLES[key]


def check_size(option: str, name: str, size, multiple: int) -> tuple[int, int]:
    """``size`` (H, W) as ints when both sides are multiples of model ``name``'s size ``multiple`` (its
    ``contract.multiple``: a ViT's patch, a CNN's total downsampling), else one line naming ``option`` and the
    nearest size that fits. Used for a registry build (``model_multiple``) and a loaded model alike."""
    h, w = (int(s) for s in size)
    m = int(multiple)
    if h < m or w < m or h % m or w % m:
        fit = " ".join(str(max(1, round(s / m)) * m) for s in (h, w))
        raise DepthforgeError(f"bench {option} {h} {w}: {name} takes sides that are multiples of {m} "
                              f"(its size multiple); e.g. {option} {fit}")
    return h, w


MAX_SIDE = 4096  # the longest side any bench option takes
# option -> (low, high) of the profile and device sections (``check_args`` holds the others')
LIMITS = {"--profile-batch": (1, 256), "--profile-steps": (1, 100), "--device-batch": (1, 4096),
          "--device-steps": (1, 10_000), "--device-predict-batches": (1, 4096)}


def check_sections(sections, *, width: float, size, models, model_size, model_kwargs: str, profile_names,
                   profile_size, profile_batch: int, profile_steps: int, profile_kwargs: str,
                   device_options: dict) -> None:
    """The profile and device sections' options, and every size against the multiple of each model it is used
    with (``model_size`` None: rounded up per model, not checked)."""
    from ..models import MODELS
    from .device import AT, DEVICE_MODELS
    from .profile import PROFILE_MODELS

    opts = device_options
    values = [("--profile-batch", profile_batch), ("--profile-steps", profile_steps)] if "profile" in sections else []
    values += [(f"--device-{k}", v) for k in ("batch", "steps") if (v := opts.get(k)) is not None]
    values += [("--device-predict-batches", b) for b in opts.get("predict_batches", ())]
    if opts.get("predict_batches") == []:
        raise DepthforgeError("bench --device-predict-batches: name at least one batch size")
    for option, hw in (("--profile-size", profile_size), ("--device-size", opts.get("size"))):
        if hw is not None and not all(16 <= side <= MAX_SIDE for side in hw):
            raise DepthforgeError(f"bench {option} {' '.join(map(str, hw))}: each side must be 16..{MAX_SIDE}")
    for option, value in values:
        low, high = LIMITS[option]
        if not low <= value <= high:
            raise DepthforgeError(f"bench {option} {value}: must be {low}..{high}")
    for option, names in (("--profile-models", profile_names), ("--device-models", opts.get("models"))):
        if names is not None and not names:
            raise DepthforgeError(f"bench {option}: name at least one model")
        unknown = [n for n in names or () if n not in MODELS]
        if unknown:
            raise DepthforgeError(f"bench {option}: unknown model(s) {', '.join(unknown)}; "
                                  f"known: {', '.join(sorted(MODELS))}")
    checks = [("--size", "seed-unet", {"width": width}, size)] if "train" in sections else []
    if model_size is not None and "models" in sections:
        checks += [("--model-size", n, MODELS.info[n].get(model_kwargs, {}), model_size) for n in models or MODELS]
    if "profile" in sections:
        checks += [("--profile-size", n, MODELS.info[n].get(profile_kwargs, {}), profile_size)
                   for n in profile_names or PROFILE_MODELS]
    if "device" in sections:
        key = opts.get("kwargs_key", "catalog")
        checks += [("--device-size", n, MODELS.info[n].get(key, {}), opts.get("size") or DEVICE_MODELS.get(n, AT))
                   for n in opts.get("models") or DEVICE_MODELS]
    for option, name, kwargs, hw in checks:
        check_size(option, name, hw, model_multiple(name, kwargs))
