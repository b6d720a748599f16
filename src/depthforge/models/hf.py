"""Hugging Face ``transformers`` depth models in the depthforge contract: Depth Anything V2, DPT, ZoeDepth, GLPN.

Each wrapper holds the ``transformers`` model as ``net`` and adds what the contract asks: image [N,3,H,W] in [0,1]
-> normalise with the model's own image-processor statistics -> ``net`` -> ``predicted_depth`` resized to H×W ->
[N,1,H,W]. The network is exactly ``transformers``' (tests compare outputs); what the wrapper adds is what the
image processor does around it:

- ``depth-anything-v2`` (Yang et al. 2024, relative head: ReLU, **disparity** up to scale and shift, as the
  maintainers say in DA-V2 #157) and ``depth-anything-v2-metric`` (sigmoid × max_depth metres: 20 m for the
  Hypersim-trained Indoor checkpoints, 80 m for the Virtual-KITTI-2 Outdoor ones). DINOv2 patches: H, W multiples
  of 14; the processor resizes to 518 on the shorter side (keep_aspect_ratio), ImageNet normalisation.
- ``dpt`` (Ranftl et al. 2021, MiDaS v3: disparity). The ViT and hybrid (ResNet-50 + ViT) checkpoints only run
  square, the hybrid only at its config's image_size (its position embeddings are not interpolated in
  ``transformers``), and their processor squashes every image to that square: so does ``forward`` (any H×W in,
  output resized back). DPT with a DINOv2 backbone runs at any multiple of 14.
- ``zoedepth`` (Bhat et al. 2023, metric bins). The processor pads the image by reflection with
  int(√(h/2)·3) rows and int(√(w/2)·3) columns before resizing (the original ZoeDepth's ``pad_input``) and
  post-processing crops it off again: the contract's ``pad="reflect"``, done by the predictor, not ``forward``
  (as the original ZoeDepth pads in ``infer`` only, not in training). Multiples of 32.
  A two-head checkpoint (zoedepth-nyu-kitti) picks its head by a data-dependent vote (``.item()``).
- ``glpn`` (Kim et al. 2022, metric: sigmoid × max_depth). No normalisation (its processor only rescales to
  [0,1]); multiples of 32.

Sources: ``pretrained`` = a hub id or a ``save_pretrained`` folder (safetensors weights and
``preprocessor_config.json``; loaded as ``hub.py`` says: offline from the cache, never the folder's code);
``size="micro"`` = a tiny random network (tests, the synthetic recipe); ``config`` (+ ``processor``) = the
architecture dicts ``spec_kwargs`` records, to rebuild a fine-tuned checkpoint offline. ``from_pretrained_path``
picks the wrapper from a folder's or hub id's ``config.json``.

Resize policy: the contract carries what the processor config does (resize keeping the aspect ratio or not,
ensure_multiple_of / size_divisor, resample, ZoeDepth's padding, normalisation) and the predictor
(``inference.resize.infer``) follows it, then resizes ``predicted_depth`` back bicubic as ``transformers``'
``post_process_depth_estimation`` (clamped at 0: bicubic overshoots below it at edges). ``forward`` itself takes
images already at the network's size. A processor key depthforge cannot follow (another resample, rescale factor,
DPT's zero padding, a shortest_edge size) is one error line naming it.
"""
from __future__ import annotations

import json
import math
import os
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import DepthforgeError, error_line
from .base import IMAGENET_MEAN, IMAGENET_STD, MODELS, Contract, DepthModel
from .hub import load_weights, local_folder, read_config

HALF = (0.5, 0.5, 0.5)
# Processor keys the wrapper uses; spec_kwargs keeps only these.
PROCESSOR_KEYS = ("do_normalize", "image_mean", "image_std", "size", "ensure_multiple_of", "keep_aspect_ratio",
                  "do_pad", "size_divisor", "resample", "do_resize", "do_rescale", "rescale_factor")
RESAMPLES = {2: "bilinear", 3: "bicubic"}  # PIL's numbers, as processor configs store them


def _hf(name: str):
    import transformers

    return getattr(transformers, name)


def _micro_dinov2(**extra: Any) -> dict[str, Any]:
    return dict(model_type="dinov2", hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                image_size=98, patch_size=14, out_indices=[1, 2, 3, 4], reshape_hidden_states=False, **extra)


class HFDepth(DepthModel):
    """Base of the wrappers: see the module docstring. Subclasses set the class attributes below."""

    model_type = ""          # transformers' config.model_type
    config_class = ""        # transformers class names
    model_class = ""
    output_kind = "metric"
    default_hub = ""
    default_processor: dict[str, Any] = {}   # the real checkpoints' processor, used where a source has none
    micro: dict[str, Any] = {}               # config keywords of the tiny random network
    reflect_pad = False                      # whether the processor's do_pad means ZoeDepth's reflect padding
    takes_prompt = False                     # whether forward takes a depth prompt (the contract's prompt)

    def __init__(self, pretrained: str | None = None, size: str | None = None, config: dict[str, Any] | None = None,
                 processor: dict[str, Any] | None = None, max_depth: float | None = None,
                 partial_weights: bool = False):
        super().__init__()
        if sum(x is not None for x in (pretrained, size, config)) > 1:
            raise ValueError("give one of pretrained (hub id or folder), size or config")
        if size is not None and size != "micro":
            raise ValueError(f"size must be 'micro' (a tiny random network), not {size!r}; pass a hub id or folder "
                             f"as pretrained for the real ones (e.g. {self.default_hub})")
        proc = dict(self.default_processor)
        if config is not None or size is not None:
            cfg = _build_config(self.config_class, config if config is not None else self.micro)
            self._check_config(cfg, "config")
            self._set_max_depth(cfg, max_depth, "")
            self.net = _hf(self.model_class)(cfg)
            self._init_from_scratch()
            if size is not None:
                proc["size"] = None  # a micro network has no preferred size
        else:
            source, what = str(pretrained or self.default_hub), f"{self.model_type} model"
            folder = local_folder(source, what)
            cfg = read_config(folder, source, what)
            only = self._sibling(cfg)
            self._check_config(cfg, source)
            self._set_max_depth(cfg, max_depth, source)
            self.net = load_weights(_hf(self.model_class), folder, source, what, cfg, partial_weights, only=only)
            if only is not None:  # the sibling's encoder was kept; the rest starts new, as from scratch
                self._init_from_scratch()
            proc.update(_read_processor(str(folder)))
        proc.update(processor or {})
        self.processor = {k: proc[k] for k in PROCESSOR_KEYS if k in proc}
        from_hub = size is None and config is None and not processor
        self._policy_from(self.processor, f"{pretrained or self.default_hub}/preprocessor_config.json" if from_hub
                          else "processor")
        self._disparity_max = float(max_depth if max_depth is not None else 10.0)
        self.set_contract(self._contract())

    def _init_from_scratch(self) -> None:
        """Re-initialise every convolution and linear layer outside the encoder with PyTorch's defaults.

        transformers initialises all of them with weights of σ ``initializer_range`` (0.02) and zero biases, which
        no reference implementation does for these decoders: with it a micro DPT's or Depth Anything's output is
        at most 1e-4 and its final ReLU shut on most pixels, and DPT never learned (ZoeDepth's and DA-V2 metric's
        outputs are constant to 1e-6). The papers' code builds the neck and head (DPT and MiDaS in
        isl-org/DPT, Depth-Anything-V2's DPTHead, ZoeDepth's bin layers, GLPN's decoder) from plain ``nn.Conv2d``
        / ``nn.Linear`` at PyTorch's default init (Kaiming-uniform weights, uniform biases), and so does this.
        The encoder keeps transformers' init: its ViTs (DINOv2, BEiT, ViT) and MiT are initialised in the
        reference code with the same truncated-normal σ 0.02. Weights loaded afterwards overwrite all of it; a
        sibling's checkpoint whose encoder alone is loaded (``_sibling``) gets this init for the rest.

        One departure: a head that ends in a ReLU (``_relu_output``) starts with its last bias at 1. PyTorch's
        default bias is uniform in ±1/√fan_in and the signal reaching it from a random encoder is far smaller, so
        a negative draw shuts the ReLU on every pixel and no gradient ever opens it (a micro DPT: seeds 0 and 4
        of 8); at 1 every pixel starts open, and the ReLU still keeps the output ≥ 0."""
        encoder = {id(p) for p in self.encoder().parameters()}
        for module in self.net.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and id(module.weight) not in encoder:
                module.reset_parameters()
        last = self._relu_output()
        if last is not None:
            nn.init.constant_(last.bias, 1.0)

    # -- what subclasses specialise -------------------------------------------------------------------------
    def _relu_output(self) -> nn.Conv2d | None:
        """The last convolution when a ReLU follows it to make the output (None: another activation ends it)."""
        return None

    def _sibling(self, cfg) -> str | None:
        """For a sibling family's checkpoint: make ``cfg`` this family's and return the prefix of the weights to
        keep (the rest is initialised). None: the checkpoint is loaded whole."""
        return None

    def _check_config(self, cfg, source: str) -> None:
        if cfg.model_type != self.model_type:
            raise DepthforgeError(f"{source}: a {cfg.model_type} model, not {self.model_type}; load it with "
                                  f"depthforge's from_pretrained_path, which picks the model from config.json")

    def _set_max_depth(self, cfg, max_depth: float | None, source: str) -> None:
        """Metric heads scale a sigmoid by config.max_depth: a given max_depth replaces it (as DA-V2 fine-tunes)."""
        if self.output_kind == "metric" and max_depth is not None:
            if not (max_depth > 0 and float(max_depth).is_integer()):
                # transformers types these configs' max_depth as int (strict dataclasses reject 20.5)
                raise ValueError(f"max_depth must be whole metres > 0, not {max_depth!r}")
            cfg.max_depth = int(max_depth)

    def _metric_max(self) -> float:
        return float(self.net.config.max_depth)

    def _multiple(self) -> int:
        return 1

    def _policy_from(self, p: dict[str, Any], where: str) -> None:
        """The contract's resize policy from the processor config ``p`` (``self.policy``); a key depthforge cannot
        follow -> one DepthforgeError line naming it (``where``: the file or "processor")."""
        def bad(key: str, why: str) -> DepthforgeError:
            return DepthforgeError(f"{where}: {key} {p.get(key)!r} cannot be followed: {why}")

        def number(key: str, default: float) -> float:
            value = p.get(key)
            try:
                return float(default if value is None else value)
            except (TypeError, ValueError):
                raise bad(key, "not a number") from None

        if p.get("do_rescale", True) is False:
            raise bad("do_rescale", "depthforge feeds images in [0, 1] (rescale_factor 1/255)")
        if abs(number("rescale_factor", 1 / 255) * 255 - 1) > 1e-6:
            raise bad("rescale_factor", "depthforge feeds images in [0, 1] (1/255)")
        if p.get("do_pad") and not self.reflect_pad:
            raise bad("do_pad", "DPT's processor pads the normalised image with zeros and keeps the padding in "
                                "its output")
        if p.get("resample", 2) not in RESAMPLES:
            raise bad("resample", "depthforge resamples bilinear (2) or bicubic (3)")
        multiple = number("ensure_multiple_of", 1)
        if not multiple.is_integer() or multiple < 1:
            raise bad("ensure_multiple_of", "it must be a whole number >= 1")
        size = p.get("size")
        if isinstance(size, int) and not isinstance(size, bool):
            size = {"height": size, "width": size}  # old configs: a square side, as transformers reads it
        if size is not None and not (isinstance(size, dict) and {"height", "width"} <= set(size)
                                     and all(isinstance(size[k], int) and size[k] > 0 for k in ("height", "width"))):
            raise bad("size", "depthforge follows {height, width} sizes in pixels")
        self.policy = self._policy(p, (int(size["height"]), int(size["width"])) if size else None, int(multiple))

    def _policy(self, p: dict[str, Any], size: tuple[int, int] | None, multiple: int) -> dict[str, Any]:
        """The contract's resize fields for processor config ``p`` (DPTImageProcessor's, which Depth Anything and
        DPT ship): resize to ``size`` keeping the aspect ratio or not, sides rounded to ensure_multiple_of, PIL
        resampling; the output resized back bicubic (``post_process_depth_estimation``)."""
        resize = "none" if size is None or p.get("do_resize") is False else (
            "keep_aspect" if p.get("keep_aspect_ratio") else "fixed")
        return dict(input_size=size if resize != "none" else None, resize=resize, size_multiple=multiple,
                    resample=RESAMPLES[p.get("resample", 3)], output_resample="bicubic")

    def _contract(self) -> Contract:
        p = self.processor
        norm = p.get("do_normalize", True)
        mean = tuple(p.get("image_mean", IMAGENET_MEAN)) if norm else (0.0, 0.0, 0.0)
        std = tuple(p.get("image_std", IMAGENET_STD)) if norm else (1.0, 1.0, 1.0)
        metric = self.output_kind == "metric"
        return Contract(self.output_kind, self._metric_max() if metric else self._disparity_max, self._multiple(),
                        mean=mean, std=std, camera=self._camera(), prompt=self.takes_prompt, **self.policy)

    def _camera(self) -> bool:
        """Whether this network estimates the camera (``forward_camera``)."""
        return False

    def _run_size(self, h: int, w: int) -> tuple[int, int]:
        """The size the network runs at for an input of h×w (the input's own, unless the network needs another)."""
        return h, w

    # -- the contract ---------------------------------------------------------------------------------------
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image [N,3,H,W] in [0,1] -> [N,1,H,W]: metres (metric) or relative disparity, per the contract."""
        h, w = image.shape[-2:]
        x = self.normalize(image)
        rh, rw = self._run_size(h, w)
        # While tracing for ONNX resize always: the export's size must not decide whether later sizes are resized.
        tracing = torch.jit.is_tracing()
        if tracing or (rh, rw) != (h, w):
            x = F.interpolate(x, size=(rh, rw), mode="bicubic", align_corners=False)
        d = self.net(pixel_values=x).predicted_depth.unsqueeze(1)
        if tracing or d.shape[-2:] != (h, w):
            d = F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False)
        return d

    def encoder(self) -> nn.Module | None:
        return self.net.backbone

    def spec_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The architecture (config dict) and processor settings instead of a hub id: rebuilds offline."""
        spec: dict[str, Any] = {"config": self.net.config.to_dict(), "processor": dict(self.processor)}
        if self.output_kind != "metric":
            spec["max_depth"] = self._disparity_max
        return spec


class _DepthAnything(HFDepth):
    model_type = "depth_anything"
    config_class, model_class = "DepthAnythingConfig", "DepthAnythingForDepthEstimation"
    # The Depth-Anything-V2-*-hf processors: 518 short side, multiple of 14, bicubic, ImageNet statistics.
    default_processor = dict(do_normalize=True, image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD),
                             size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
                             resample=3)
    depth_type = "relative"

    def _check_config(self, cfg, source: str) -> None:
        super()._check_config(cfg, source)
        kind = cfg.depth_estimation_type
        if kind != self.depth_type:
            other = "depth-anything-v2-metric" if kind == "metric" else "depth-anything-v2"
            raise DepthforgeError(f"{source}: a {kind} Depth Anything model; build it as {other!r}")
        if kind == "relative" and cfg.max_depth is None:
            cfg.max_depth = 1  # transformers multiplies the relative head by max_depth; None crashes its forward

    def _multiple(self) -> int:
        return math.lcm(int(self.net.config.patch_size), int(self.processor.get("ensure_multiple_of") or 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image [N,3,H,W] in [0,1], H, W multiples of 14 -> [N,1,H,W].

        ``transformers``' DepthAnythingForDepthEstimation.forward, step by step, except that the head upsamples to
        the input's size taken from the tensor: transformers computes it with int(), which ONNX tracing freezes to
        the export size. At multiples of the patch size both are patch_height × patch_size (the parity test)."""
        return self._decode(image) * self.net.head.max_depth

    def _decode(self, image: torch.Tensor, **neck: Any) -> torch.Tensor:
        """The backbone, the neck (given ``neck`` keywords) and the head up to its last activation."""
        net, x = self.net, self.normalize(image)
        feats = net.backbone.forward_with_filtered_kwargs(x).feature_maps
        patch = net.config.patch_size
        hidden = net.neck(feats, x.shape[-2] // patch, x.shape[-1] // patch, **neck)
        head = net.head
        y = head.conv1(hidden[head.head_in_index])
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=True)
        y = head.conv3(head.activation1(head.conv2(y)))
        return head.activation2(y)


@MODELS.register("depth-anything-v2", family="Depth Anything V2 (DINOv2 ViT + DPT head), relative disparity",
                 weights="hub: depth-anything/Depth-Anything-V2-{Small,Base,Large}-hf; size micro: random",
                 catalog={"config": {}}, test={"size": "micro"})
class DepthAnythingV2(_DepthAnything):
    """Depth Anything V2, relative head: image [N,3,H,W] in [0,1], H, W multiples of 14 -> disparity [N,1,H,W]
    (affine-invariant inverse depth; ``max_depth`` only states the range evaluation caps at, default 10 m)."""

    output_kind = "disparity"
    default_hub = "depth-anything/Depth-Anything-V2-Small-hf"
    micro = dict(backbone_config=_micro_dinov2(), reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                 fusion_hidden_size=16, head_hidden_size=8, patch_size=14)

    def _relu_output(self) -> nn.Conv2d | None:
        return self.net.head.conv3


@MODELS.register("depth-anything-v2-metric", family="Depth Anything V2 metric (DINOv2 ViT + DPT head)",
                 weights="hub: depth-anything/Depth-Anything-V2-Metric-{Indoor,Outdoor}-{Small,Base,Large}-hf; "
                         "size micro: random",
                 catalog={"config": {"depth_estimation_type": "metric", "max_depth": 20}}, test={"size": "micro"})
class DepthAnythingV2Metric(_DepthAnything):
    """Depth Anything V2, metric head: image [N,3,H,W] in [0,1], H, W multiples of 14 -> depth [N,1,H,W] in metres,
    sigmoid × max_depth. ``max_depth`` replaces the checkpoint's (as DA-V2's metric fine-tuning sets it); by
    default the config's, or 20 m / 80 m for a hub id naming Indoor / Outdoor when the config has none.
    ``pretrained`` may also be a relative Depth Anything V2: its encoder is loaded and the head starts new, as
    DA-V2's metric models were fine-tuned (pass ``max_depth``)."""

    output_kind = "metric"
    depth_type = "metric"
    default_hub = "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf"
    micro = dict(DepthAnythingV2.micro, depth_estimation_type="metric", max_depth=20)

    def _sibling(self, cfg) -> str | None:
        # DA-V2's metric fine-tuning starts from the relative model's DINOv2 encoder with a new DPT head (its
        # metric_depth/train.py loads only the encoder's weights, strict=False)
        if cfg.model_type != self.model_type or cfg.depth_estimation_type != "relative":
            return None
        cfg.depth_estimation_type = "metric"
        return "backbone."

    def _set_max_depth(self, cfg, max_depth: float | None, source: str) -> None:
        if max_depth is None and cfg.max_depth in (None, 1):  # 1: transformers' default, not a trained range
            low = source.lower()
            max_depth = 80.0 if "outdoor" in low else 20.0 if "indoor" in low else None
            if max_depth is None:
                raise ValueError(f"{source or 'config'}: no max_depth in the config; pass max_depth (20 indoor, "
                                 f"80 outdoor)")
        super()._set_max_depth(cfg, max_depth, source)


@MODELS.register("prompt-depth-anything",
                 family="Prompt Depth Anything (DINOv2 ViT + DPT head fed a low-resolution depth prompt), metric",
                 weights="hub: depth-anything/prompt-depth-anything-{vits,vitl}-hf, "
                         "depth-anything/prompt-depth-anything-vitl-transparent-hf; size micro: random",
                 catalog={"config": {}}, test={"size": "micro"})
class PromptDepthAnything(_DepthAnything):
    """Prompt Depth Anything (Lin et al. 2025): image [N,3,H,W] in [0,1], H, W multiples of 14, and a depth prompt
    [N,1,h,w] in metres at any (low) resolution, e.g. a phone's 192×256 LiDAR -> depth [N,1,H,W] in metres.

    As transformers' PromptDepthAnythingForDepthEstimation: the prompt is scaled to [0, 1] by its own minimum and
    maximum, resized bilinearly to each fusion stage inside the network (its processor never resizes it), and the
    head's output is mapped back to the prompt's [min, max]: the metres come from the prompt. Without a prompt the
    output is the head's in units of that range (0 = the nearest, 1 = the farthest); ``max_depth`` (default 20 m,
    the indoor range it was trained on) only states the range evaluation and file encodings expect."""

    model_type = "prompt_depth_anything"
    config_class, model_class = "PromptDepthAnythingConfig", "PromptDepthAnythingForDepthEstimation"
    output_kind = "metric"
    takes_prompt = True
    default_hub = "depth-anything/prompt-depth-anything-vits-hf"
    # The paper's ARKitScenes setting: 1440×1920 photos resized to 756×1008 (multiples of 14), bicubic, ImageNet.
    default_processor = dict(_DepthAnything.default_processor, size={"height": 756, "width": 1008})
    micro = DepthAnythingV2.micro

    def _set_max_depth(self, cfg, max_depth: float | None, source: str) -> None:
        if max_depth is not None and not max_depth > 0:
            raise ValueError(f"max_depth must be > 0 metres, not {max_depth!r}")
        self._range = float(max_depth if max_depth is not None else 20.0)

    def _metric_max(self) -> float:
        return self._range

    def _relu_output(self) -> nn.Conv2d | None:
        return self.net.head.conv3

    def forward(self, image: torch.Tensor, prompt: torch.Tensor | None = None) -> torch.Tensor:
        """image [N,3,H,W] in [0,1] (H, W multiples of 14), prompt [N,1,h,w] metres or None -> [N,1,H,W]."""
        if prompt is None:
            return self._decode(image)
        n = prompt.shape[0]
        lo = prompt.reshape(n, -1).amin(1).view(n, 1, 1, 1)
        hi = prompt.reshape(n, -1).amax(1).view(n, 1, 1, 1)
        # a constant prompt would divide by zero; transformers' processor nudges one pixel by 1e-6 instead
        span = (hi - lo).clamp(min=1e-6)
        return self._decode(image, prompt_depth=(prompt - lo) / span) * span + lo

    def spec_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return dict(super().spec_kwargs(kwargs), max_depth=self._range)


@MODELS.register("dpt", family="DPT / MiDaS v3 (ViT, hybrid ResNet+ViT or DINOv2 + DPT head), relative disparity",
                 weights="hub: Intel/dpt-hybrid-midas, Intel/dpt-large; size micro: random hybrid",
                 catalog={"config": {}}, test={"size": "micro"})
class DPT(HFDepth):
    """DPT (MiDaS v3): image [N,3,H,W] in [0,1] -> disparity [N,1,H,W] (affine-invariant inverse depth).

    ViT and hybrid checkpoints run at their square config.image_size (the processor's squash resize, bicubic) and
    the output is resized back, so any H×W works; DINOv2-backbone ones run at the input size (multiples of 14)."""

    model_type = "dpt"
    config_class, model_class = "DPTConfig", "DPTForDepthEstimation"
    output_kind = "disparity"
    default_hub = "Intel/dpt-hybrid-midas"
    # Intel/dpt-*: 384×384 squash, mean = std = 0.5.
    default_processor = dict(do_normalize=True, image_mean=list(HALF), image_std=list(HALF),
                             size={"height": 384, "width": 384}, keep_aspect_ratio=False, ensure_multiple_of=1,
                             resample=3)
    micro = dict(is_hybrid=True, hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                 image_size=64, patch_size=16, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[16, 32, 32, 32],
                 fusion_hidden_size=16, reassemble_factors=[1, 1, 1, 0.5], readout_type="project",
                 backbone_featmap_shape=[1, 64, 4, 4],
                 backbone_config=dict(model_type="bit", embedding_size=8, hidden_sizes=[16, 32, 64], depths=[1, 1, 1],
                                      num_groups=4, layer_type="bottleneck", global_padding="same",
                                      out_features=["stage1", "stage2", "stage3"], embedding_dynamic_padding=True))

    def _fixed(self) -> int | None:
        """The square side ViT/hybrid DPT runs at (None: DINOv2 backbone, any multiple of its patch)."""
        c = self.net.config
        if c.backbone_config is not None and not c.is_hybrid:
            return None
        return int(c.image_size if isinstance(c.image_size, int) else c.image_size[0])

    def _policy(self, p: dict[str, Any], size: tuple[int, int] | None, multiple: int) -> dict[str, Any]:
        policy = super()._policy(p, size, multiple)
        side = self._fixed()
        if side is not None and policy["resize"] == "none":  # no processor size (micro): the network's square
            policy.update(input_size=(side, side), resize="fixed")
        return policy

    def _multiple(self) -> int:
        if self._fixed() is not None:
            return 1
        return math.lcm(int(self.net.config.backbone_config.patch_size),
                        int(self.processor.get("ensure_multiple_of") or 1))

    def _run_size(self, h: int, w: int) -> tuple[int, int]:
        side = self._fixed()
        return (h, w) if side is None else (side, side)

    def _relu_output(self) -> nn.Conv2d | None:
        return self.net.head.head[-2]

    def encoder(self) -> nn.Module | None:
        return self.net.backbone if self.net.backbone is not None else self.net.dpt


@MODELS.register("zoedepth", family="ZoeDepth (BEiT/DINOv2 + DPT + metric bins)",
                 weights="hub: Intel/zoedepth-nyu, Intel/zoedepth-kitti, Intel/zoedepth-nyu-kitti; size micro: random",
                 catalog={"config": {}}, test={"size": "micro"})
class ZoeDepth(HFDepth):
    """ZoeDepth: image [N,3,H,W] in [0,1], H, W multiples of 32 -> depth [N,1,H,W] in metres (metric bins;
    max_depth = the largest bin range). Its processor's reflect padding is the contract's ``pad``."""

    model_type = "zoedepth"
    config_class, model_class = "ZoeDepthConfig", "ZoeDepthForDepthEstimation"
    output_kind = "metric"
    default_hub = "Intel/zoedepth-nyu-kitti"
    reflect_pad = True
    # Intel/zoedepth-*: 384×512 keeping the aspect ratio, multiples of 32, reflect padding, mean = std = 0.5.
    default_processor = dict(do_normalize=True, image_mean=list(HALF), image_std=list(HALF),
                             size={"height": 384, "width": 512}, keep_aspect_ratio=True, ensure_multiple_of=32,
                             do_pad=True, resample=2)
    micro = dict(backbone_config=dict(model_type="beit", image_size=64, patch_size=16, hidden_size=32,
                                      num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                                      use_relative_position_bias=True, reshape_hidden_states=False,
                                      out_features=["stage1", "stage2", "stage3", "stage4"]),
                 neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, num_relative_features=8,
                 bottleneck_features=16, num_attractors=[4, 2, 2, 1], bin_embedding_dim=8,
                 bin_configurations=[{"n_bins": 16, "min_depth": 1e-3, "max_depth": 10.0}])

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        stage = self.net.neck.reassemble_stage
        stage.forward = types.MethodType(_reassemble_any_batch, stage)

    def _set_max_depth(self, cfg, max_depth: float | None, source: str) -> None:
        if max_depth is not None:
            raise ValueError("ZoeDepth's depth range lives in its bin_configurations; max_depth cannot be set")

    def _metric_max(self) -> float:
        return max(float(b["max_depth"]) for b in self.net.config.bin_configurations)

    def _multiple(self) -> int:
        return math.lcm(32, int(self.processor.get("ensure_multiple_of") or 1))

    def _policy(self, p: dict[str, Any], size: tuple[int, int] | None, multiple: int) -> dict[str, Any]:
        # ZoeDepthImageProcessor: reflect padding at the photo's size, then torch's interpolation with
        # align_corners (bilinear by default) of the padded photo; post-processing resizes to the padded size
        # and crops the padding off
        return dict(super()._policy(p, size, multiple), resample=RESAMPLES[p.get("resample", 2)],
                    align_corners=True, pad="reflect" if p.get("do_pad") else "none")


def _reassemble_any_batch(stage, hidden_states: list[torch.Tensor], patch_height, patch_width) -> list[torch.Tensor]:
    """transformers' ZoeDepthReassembleStage.forward, the same numbers, but the stacked stages are taken apart by
    their count, not by ``split(batch_size)``: tracing bakes that Python int into the ONNX graph, so an export
    (traced at batch 2, its batch axis declared dynamic) failed at batch 1 or 3."""
    n = len(hidden_states)
    stacked = torch.cat(hidden_states, dim=0)
    cls_token, stacked = stacked[:, 0], stacked[:, 1:]
    channels = stacked.shape[-1]
    stacked = stacked.reshape(-1, patch_height, patch_width, channels).permute(0, 3, 1, 2).contiguous()
    if stage.readout_type == "project":
        stacked = stacked.flatten(2).permute((0, 2, 1))
        stacked = torch.cat((stacked, cls_token.unsqueeze(dim=1).expand_as(stacked)), -1)
    elif stage.readout_type == "add":
        stacked = stacked + cls_token.unsqueeze(-1)
    per_stage = stacked.reshape(n, -1, *stacked.shape[1:])
    out = []
    for i, layer in enumerate(stage.layers):
        hidden = per_stage[i]
        if stage.readout_type == "project":
            hidden = stage.readout_projects[i](hidden)
            hidden = hidden.permute(0, 2, 1).reshape(-1, hidden.shape[-1], patch_height, patch_width)
        out.append(layer(hidden))
    return out


@MODELS.register("glpn", family="GLPN (MiT encoder + global-local path decoder), metric",
                 weights="hub: vinvino02/glpn-nyu, vinvino02/glpn-kitti; size micro: random",
                 catalog={"config": {"hidden_sizes": [64, 128, 320, 512], "depths": [3, 8, 27, 3], "num_attention_heads": [1, 2, 5, 8]}},
                 test={"size": "micro"})
class GLPN(HFDepth):
    """GLPN: image [N,3,H,W] in [0,1], H, W multiples of 32 -> depth [N,1,H,W] in metres (sigmoid × max_depth;
    ``max_depth`` replaces the config's). Its processor does not normalise: mean 0, std 1."""

    model_type = "glpn"
    config_class, model_class = "GLPNConfig", "GLPNForDepthEstimation"
    output_kind = "metric"
    default_hub = "vinvino02/glpn-nyu"
    default_processor = dict(do_normalize=False, size_divisor=32, resample=2)
    micro = dict(num_encoder_blocks=4, depths=[1, 1, 1, 1], sr_ratios=[8, 4, 2, 1], hidden_sizes=[8, 16, 32, 32],
                 num_attention_heads=[1, 1, 2, 2], mlp_ratios=[2, 2, 2, 2], decoder_hidden_size=16, max_depth=10)

    def _multiple(self) -> int:
        return math.lcm(32, int(self.processor.get("size_divisor") or 1))

    def _policy(self, p: dict[str, Any], size: tuple[int, int] | None, multiple: int) -> dict[str, Any]:
        # GLPNImageProcessor: each side rounded down to size_divisor, PIL bilinear; bicubic back
        divisor = p.get("size_divisor") or 1
        if isinstance(divisor, bool) or not float(divisor).is_integer() or divisor < 1:
            raise DepthforgeError(f"processor: size_divisor {divisor!r} cannot be followed: it must be a whole "
                                  f"number >= 1")
        return dict(resize="floor" if p.get("do_resize", True) else "none", size_multiple=int(divisor),
                    resample=RESAMPLES[p.get("resample", 2)], output_resample="bicubic")

    def encoder(self) -> nn.Module | None:
        return self.net.glpn


def _micro_vit(**extra: Any) -> dict[str, Any]:
    return dict(model_type="dinov2", hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                patch_size=8, image_size=16, **extra)


@MODELS.register("depth-pro", family="Depth Pro (multi-scale DINOv2 ViT patches + image ViT, DPT-style decoder), "
                                     "metric depth and field of view",
                 weights="hub: apple/DepthPro-hf; size micro: random",
                 catalog={"config": {"use_fov_model": True, **{k: dict(model_type="dinov2", hidden_size=1024,
                                                                       num_hidden_layers=24, num_attention_heads=16,
                                                                       patch_size=16, image_size=384)
                                                               for k in ("image_model_config", "patch_model_config",
                                                                         "fov_model_config")}}},
                 test={"size": "micro"})
class DepthPro(HFDepth):
    """Depth Pro (Bochkovskii et al. 2025): image [N,3,H,W] in [0,1], any H×W -> depth [N,1,H,W] in metres, and
    with ``forward_camera`` the horizontal field of view [N] in degrees (its FoV head; a checkpoint without one
    gives relative depth: the focal length that makes it metric is then unknown).

    ``forward`` is transformers' whole pipeline, so any photo size goes in: its processor (normalise with
    mean = std = 0.5, then resize to 1536×1536 bilinear without antialiasing: the contract's input_size and
    resample) -> the network's canonical inverse depth -> ``post_process_depth_estimation`` (× width / focal
    length = 2·tan(FoV/2), resized bilinear to the photo, inverted, clamped to [1e-4, 1e4] m). The inverse depth
    is resized, not the depth, which is why the predictor does no resizing (``resize="none"``) around it."""

    model_type = "depth_pro"
    config_class, model_class = "DepthProConfig", "DepthProForDepthEstimation"
    default_hub = "apple/DepthPro-hf"
    # apple/DepthPro-hf: mean = std = 0.5, bilinear; its 1536×1536 is the size the network's patches tile
    # (patch_size / the smallest scale: 384 / 0.25), which is the size used where a folder has no processor
    default_processor = dict(do_normalize=True, image_mean=list(HALF), image_std=list(HALF), resample=2)
    micro = dict(fusion_hidden_size=16, patch_size=16, intermediate_hook_ids=[1, 0], intermediate_feature_dims=[8, 8],
                 scaled_images_ratios=[0.5, 1], scaled_images_overlap_ratios=[0.0, 0.5],
                 scaled_images_feature_dims=[16, 8], use_fov_model=True, num_fov_head_layers=1,
                 image_model_config=_micro_vit(), patch_model_config=_micro_vit(), fov_model_config=_micro_vit())
    CLAMP = (1e-4, 1e4)  # post_process_depth_estimation's bounds on inverse depth (so depth is within them too)
    # transformers' patch encoder splits and merges its patches by the batch size as a Python int (merge_patches),
    # which a trace bakes into the graph: an export runs at the batch it was traced at, one image
    export_batch = 1

    def _set_max_depth(self, cfg, max_depth: float | None, source: str) -> None:
        if max_depth is not None:
            raise ValueError("Depth Pro's depth is bounded by its post-processing (1e4 m); max_depth cannot be set")
        self.output_kind = "metric" if cfg.use_fov_model else "relative"

    def _metric_max(self) -> float:
        return self.CLAMP[1]

    def _camera(self) -> bool:
        return self.net.fov_model is not None

    def _policy(self, p: dict[str, Any], size: tuple[int, int] | None, multiple: int) -> dict[str, Any]:
        c = self.net.config  # without a processor size (micro): the size the network's patches tile
        self.net_size = size or (round(c.patch_size / min(c.scaled_images_ratios)),) * 2
        return dict(input_size=self.net_size, resize="none", resample=RESAMPLES[p.get("resample", 2)])

    def _relu_output(self) -> nn.Conv2d | None:
        return self.net.head.layers[-2]

    def _init_from_scratch(self) -> None:
        """As the other families, and the FoV head starts at 60°: its last convolution outputs degrees, and near
        0° (a default bias) the focal length is near infinite, every depth hits the 1e4 m clamp and no gradient
        flows."""
        super()._init_from_scratch()
        if self.net.fov_model is not None:
            nn.init.constant_(self.net.fov_model.head.layers[-1].bias, 60.0)

    def encoder(self) -> nn.Module | None:
        # the pretrained ViTs: the patch and image encoders, and the FoV head's own
        vits = [self.net.depth_pro.encoder]
        if self.net.fov_model is not None:
            vits.append(self.net.fov_model.fov_encoder.model)
        return nn.ModuleList(vits)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.forward_camera(image)[0]

    def forward_camera(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image [N,3,H,W] in [0,1] -> (depth [N,1,H,W] metres, horizontal FoV [N] degrees; NaN without a FoV
        head)."""
        h, w = image.shape[-2:]
        x = F.interpolate(self.normalize(image), size=self.net_size, mode="bilinear", align_corners=False)
        out = self.net(pixel_values=x)
        inverse = out.predicted_depth.unsqueeze(1)
        fov = out.field_of_view
        if fov is None:
            fov = torch.full((image.shape[0],), float("nan"), device=image.device)
        else:
            # width / focal length in pixels = 2·tan(FoV/2) at any width: the photo's size does not enter
            inverse = inverse * (2 * torch.tan(fov * (math.pi / 360))).view(-1, 1, 1, 1)  # no deg2rad in ONNX
        inverse = F.interpolate(inverse, size=(h, w), mode="bilinear", align_corners=False)
        return 1.0 / inverse.clamp(*self.CLAMP), fov


# model_type -> registered name (depth_anything splits on depth_estimation_type).
BY_TYPE = {"dpt": "dpt", "zoedepth": "zoedepth", "glpn": "glpn", "depth_pro": "depth-pro",
           "prompt_depth_anything": "prompt-depth-anything"}


def _build_config(cls_name: str, config: dict[str, Any]):
    """A transformers config from a dict; a bad field -> ValueError naming it (transformers validates strictly)."""
    from huggingface_hub.errors import StrictDataclassError

    try:
        return _hf(cls_name).from_dict(dict(config))
    except (StrictDataclassError, TypeError, ValueError) as e:
        raise ValueError(f"config: {error_line(e, whole=True)}") from None


def _read_processor(source: str) -> dict[str, Any]:
    """``preprocessor_config.json`` of a folder or hub id as a dict ({} when it has none)."""
    path = Path(source) / "preprocessor_config.json"
    if not Path(source).is_dir():
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(source, "preprocessor_config.json"))
        except Exception:  # the weights came, the processor did not: the family's defaults stand
            return {}
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DepthforgeError(f"{path}: not a readable processor config ({e})") from None


def model_name(config, source: str = "model") -> str:
    """The registered name for a transformers config (DepthAnything: relative or metric)."""
    if config.model_type == "depth_anything":
        return "depth-anything-v2-metric" if config.depth_estimation_type == "metric" else "depth-anything-v2"
    try:
        return BY_TYPE[config.model_type]
    except KeyError:
        raise DepthforgeError(f"{source}: a {config.model_type} model, not a depth model depthforge wraps (known: "
                              f"depth_anything, {', '.join(BY_TYPE)})") from None


def from_pretrained_path(source: str | os.PathLike, **kwargs: Any) -> DepthModel:
    """A wrapped model from a ``save_pretrained`` folder or hub id, chosen by its config.json ``model_type`` (a
    diffusers pipeline folder, with model_index.json: ``marigold``)."""
    source = str(source)
    folder = local_folder(source, "depth model")
    if (folder / "model_index.json").is_file() and not (folder / "config.json").is_file():
        return MODELS.build("marigold", pretrained=source, **kwargs)  # a diffusers pipeline: Marigold's is known
    # model_types: an architecture depthforge does not wrap is one line listing those it does
    cfg = read_config(folder, source, "depth model", ("depth_anything", *BY_TYPE))
    return MODELS.build(model_name(cfg, source), pretrained=source, **kwargs)


def is_hf_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding a transformers depth model depthforge wraps (by config.json)."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        model_type = json.loads(cfg.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return False
    return model_type == "depth_anything" or model_type in BY_TYPE
