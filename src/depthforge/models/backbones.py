"""Encoders through Hugging Face ``transformers``' ``AutoBackbone``: ResNet, ConvNeXt, Swin, DINOv2 and DINOv3
(its ViT, ``dinov3_vit``, and its ConvNeXt, ``dinov3_convnext``; Siméoni et al. 2025).

``build_backbone(family, size, pretrained)`` returns a ``Backbone``: normalised images [N,3,H,W] -> a list of
feature maps, fine to coarse, with their ``channels`` and ``strides``. Each builds from a named size with random
weights (training from scratch, tests) or loads pretrained weights from a hub id or a local folder
(``pretrained=True`` takes the size's usual hub id; ``hub.py`` says how, safely and offline). ``config()`` gives
the architecture as a dict, so a checkpoint rebuilds it offline. No timm, no torchvision.

DINOv3's hub checkpoints (facebook/dinov3-*-pretrain-lvd1689m) are gated: accept the licence on the hub, download
them where there is network (``hf download ID --local-dir DIR``) and pass the folder. The ViT gives each chosen
layer's patch tokens, layer-normed (DINOv3's ``get_intermediate_layers(norm=True)``, as its depth head takes them),
without the class and register tokens, as a map at stride 16.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import DepthforgeError
from .hub import load_weights, local_folder, read_config

# family -> size -> (hub id, config keywords). "micro" sizes are tiny random networks for tests and demos.
SIZES: dict[str, dict[str, tuple[str | None, dict[str, Any]]]] = {
    "resnet": {
        "micro": (None, dict(embedding_size=16, hidden_sizes=[16, 24, 32, 48], depths=[1, 1, 1, 1],
                             layer_type="basic")),
        "18": ("microsoft/resnet-18", dict(embedding_size=64, hidden_sizes=[64, 128, 256, 512],
                                           depths=[2, 2, 2, 2], layer_type="basic")),
        "34": ("microsoft/resnet-34", dict(embedding_size=64, hidden_sizes=[64, 128, 256, 512],
                                           depths=[3, 4, 6, 3], layer_type="basic")),
        "50": ("microsoft/resnet-50", dict(embedding_size=64, hidden_sizes=[256, 512, 1024, 2048],
                                           depths=[3, 4, 6, 3], layer_type="bottleneck")),
    },
    "convnext": {
        "micro": (None, dict(hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1])),
        "tiny": ("facebook/convnext-tiny-224", dict(hidden_sizes=[96, 192, 384, 768], depths=[3, 3, 9, 3])),
        "small": ("facebook/convnext-small-224", dict(hidden_sizes=[96, 192, 384, 768], depths=[3, 3, 27, 3])),
        "base": ("facebook/convnext-base-224", dict(hidden_sizes=[128, 256, 512, 1024], depths=[3, 3, 27, 3])),
    },
    "swin": {
        "micro": (None, dict(embed_dim=24, depths=[1, 1, 1, 1], num_heads=[1, 2, 3, 4], window_size=7)),
        "tiny": ("microsoft/swin-tiny-patch4-window7-224", dict(embed_dim=96, depths=[2, 2, 6, 2],
                                                                 num_heads=[3, 6, 12, 24], window_size=7)),
        "base": ("microsoft/swin-base-patch4-window12-384", dict(embed_dim=128, depths=[2, 2, 18, 2],
                                                                  num_heads=[4, 8, 16, 32], window_size=12)),
        "large": ("microsoft/swin-large-patch4-window12-384", dict(embed_dim=192, depths=[2, 2, 18, 2],
                                                                   num_heads=[6, 12, 24, 48], window_size=12)),
    },
    "dinov2": {
        "micro": (None, dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64)),
        "small": ("facebook/dinov2-small", dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                                intermediate_size=1536)),
        "base": ("facebook/dinov2-base", dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                              intermediate_size=3072)),
        "large": ("facebook/dinov2-large", dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                                intermediate_size=4096)),
    },
    # The lvd1689m web-image checkpoints (the sat493m satellite ones normalise with other statistics).
    "dinov3_vit": {
        "micro": (None, dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                             num_register_tokens=4)),
        "small": ("facebook/dinov3-vits16-pretrain-lvd1689m", dict(hidden_size=384, num_hidden_layers=12,
                                                                   num_attention_heads=6, intermediate_size=1536,
                                                                   num_register_tokens=4)),
        "base": ("facebook/dinov3-vitb16-pretrain-lvd1689m", dict(hidden_size=768, num_hidden_layers=12,
                                                                  num_attention_heads=12, intermediate_size=3072,
                                                                  num_register_tokens=4)),
        "large": ("facebook/dinov3-vitl16-pretrain-lvd1689m", dict(hidden_size=1024, num_hidden_layers=24,
                                                                   num_attention_heads=16, intermediate_size=4096,
                                                                   num_register_tokens=4)),
    },
    "dinov3_convnext": {
        "micro": (None, dict(hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1])),
        "tiny": ("facebook/dinov3-convnext-tiny-pretrain-lvd1689m", dict(hidden_sizes=[96, 192, 384, 768],
                                                                         depths=[3, 3, 9, 3])),
        "small": ("facebook/dinov3-convnext-small-pretrain-lvd1689m", dict(hidden_sizes=[96, 192, 384, 768],
                                                                           depths=[3, 3, 27, 3])),
        "base": ("facebook/dinov3-convnext-base-pretrain-lvd1689m", dict(hidden_sizes=[128, 256, 512, 1024],
                                                                         depths=[3, 3, 27, 3])),
    },
}
FAMILIES = tuple(SIZES)
VITS = ("dinov2", "dinov3_vit")  # one map per chosen layer, all at the patch's stride


def _config_class(family: str):
    import transformers

    names = {"resnet": "ResNetConfig", "convnext": "ConvNextConfig", "swin": "SwinConfig", "dinov2": "Dinov2Config",
             "dinov3_vit": "DINOv3ViTConfig", "dinov3_convnext": "DINOv3ConvNextConfig"}
    return getattr(transformers, names[family])


def _backbone_class(family: str):
    import transformers

    return getattr(transformers, _config_class(family).__name__.replace("Config", "Backbone"))


def _out_features(family: str, config) -> list[str]:
    if family in VITS:  # four evenly spaced layers, as DPT / Depth Anything take them
        n = config.num_hidden_layers
        return [f"stage{n * k // 4}" for k in range(1, 5)]
    return ["stage1", "stage2", "stage3", "stage4"]


class Backbone(nn.Module):
    """A ``transformers`` backbone: normalised image [N,3,H,W] -> [features fine to coarse], each [N,C_i,h_i,w_i].

    ``channels[i]`` and ``strides[i]`` describe level i; ``multiple`` is what H and W must be multiples of.
    """

    def __init__(self, family: str, model: nn.Module):
        super().__init__()
        self.family, self.model = family, model
        self.channels: list[int] = list(model.channels)
        if family in VITS:
            patch = int(model.config.patch_size)
            self.strides, self.multiple = [patch] * len(self.channels), patch
        else:
            self.strides = [4, 8, 16, 32]
            # Swin's patch merging and window partition pad internally; 32 keeps every level an exact halving.
            self.multiple = 32

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.model(x).feature_maps)

    def config(self) -> dict[str, Any]:
        """The architecture as a JSON-able dict (``build_backbone(family, config=...)`` rebuilds it)."""
        return self.model.config.to_dict()


def build_backbone(family: str = "swin", size: str = "tiny", pretrained: bool | str | None = None,
                   config: dict[str, Any] | None = None, partial_weights: bool = False) -> Backbone:
    """A backbone by family and named size, with random weights, or pretrained weights from ``pretrained`` (a hub
    id or local folder, whose architecture it takes; True: the size's usual hub id), or rebuilt from a ``config``
    dict (random weights). ``partial_weights``: accept a folder that lacks some of the backbone's tensors."""
    from transformers import AutoBackbone

    size = str(size)  # a recipe's `size: 34` reads as an int
    if family not in SIZES:
        raise DepthforgeError(f"backbone {family!r}: unknown family (known: {', '.join(FAMILIES)})")
    cls = _config_class(family)
    if config is not None:
        cfg = cls.from_dict(dict(config))
        return Backbone(family, AutoBackbone.from_config(cfg))
    if isinstance(pretrained, str):
        return _load_backbone(family, pretrained, partial_weights)
    if size not in SIZES[family]:
        raise DepthforgeError(f"backbone {family}: unknown size {size!r} (known: {', '.join(SIZES[family])})")
    hub_id, kwargs = SIZES[family][size]
    if pretrained:
        if hub_id is None:
            raise DepthforgeError(f"backbone {family}-{size}: has no pretrained weights (a test size)")
        return _load_backbone(family, hub_id, partial_weights)
    cfg = cls(**kwargs)
    _set_outputs(family, cfg)
    return Backbone(family, AutoBackbone.from_config(cfg))


def _set_outputs(family: str, cfg) -> None:
    cfg.out_features = _out_features(family, cfg)
    if family in VITS:
        cfg.reshape_hidden_states = True


def _load_backbone(family: str, source: str, partial: bool) -> Backbone:
    what = f"{family} backbone"
    folder = local_folder(source, what)
    cfg = read_config(folder, source, what, (family,))  # the families are named by transformers' model_type
    _set_outputs(family, cfg)
    # ConvNeXt and Swin backbones add a LayerNorm per output stage that their image models do not have
    model = load_weights(_backbone_class(family), folder, source, what, cfg, partial,
                         expected_missing=("hidden_states_norms.",))
    return Backbone(family, model)
