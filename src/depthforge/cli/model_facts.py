"""The facts ``depthforge models`` lists, recorded from ``models.catalog.catalog(SIZE)`` (every registered model
built at its default size, random weights) so that listing them builds nothing. ``depthforge models --measure``
counts them anew; tests/test_first_hour.py checks these against the registry and a build of the smallest.
Recorded 2026-12-07; re-record after adding a model or changing a default size."""
from __future__ import annotations

SIZE = (240, 320)  # (H, W) the GFLOPs are counted at

FACTS: dict[str, dict] = {
    "binsformer": {
        "family": "Transformer (Swin + adaptive-bins decoder)",
        "parameters": 49090875,
        "gflops": 44.916,
        "output": "metric",
        "max_depth": 10.0,
        "multiple": 32,
        "weights": "Swin ImageNet weights with pretrained=True; decoder trained from scratch",
    },
    "convnext-unet": {
        "family": "CNN U-Net (smp)",
        "parameters": 31931633,
        "gflops": 22.308,
        "output": "metric",
        "max_depth": 10.0,
        "multiple": 32,
        "weights": "ImageNet ConvNeXt encoder (facebook/convnext-tiny-224)",
    },
    "depth-anything-v2": {
        "family": "Depth Anything V2 (DINOv2 ViT + DPT head), relative disparity",
        "parameters": 24785089,
        "gflops": 24.422,
        "output": "disparity",
        "max_depth": 10.0,
        "multiple": 14,
        "weights": "hub: depth-anything/Depth-Anything-V2-{Small,Base,Large}-hf; size micro: random",
    },
    "depth-anything-v2-metric": {
        "family": "Depth Anything V2 metric (DINOv2 ViT + DPT head)",
        "parameters": 24785089,
        "gflops": 24.422,
        "output": "metric",
        "max_depth": 20.0,
        "multiple": 14,
        "weights": "hub: depth-anything/Depth-Anything-V2-Metric-{Indoor,Outdoor}-{Small,Base,Large}-hf; size micro: random",
    },
    "depthformer": {
        "family": "Swin + conv stem, HAHI neck, DenseDepth decoder",
        "parameters": 47613565,
        "gflops": 65.937,
        "output": "metric",
        "max_depth": 10.0,
        "multiple": 32,
        "weights": "ImageNet Swin encoder (microsoft/swin-*)",
    },
    "dpt": {
        "family": "DPT / MiDaS v3 (ViT, hybrid ResNet+ViT or DINOv2 + DPT head), relative disparity",
        "parameters": 110878081,
        "gflops": 211.374,
        "output": "disparity",
        "max_depth": 10.0,
        "multiple": 1,
        "weights": "hub: Intel/dpt-hybrid-midas, Intel/dpt-large; size micro: random hybrid",
    },
    "glpn": {
        "family": "GLPN (MiT encoder + global-local path decoder), metric",
        "parameters": 61220903,
        "gflops": 37.188,
        "output": "metric",
        "max_depth": 10.0,
        "multiple": 32,
        "weights": "hub: vinvino02/glpn-nyu, vinvino02/glpn-kitti; size micro: random",
    },
    "resnet-unet": {
        "family": "CNN U-Net (smp)",
        "parameters": 24417937,
        "gflops": 18.78,
        "output": "metric",
        "max_depth": 10.0,
        "multiple": 32,
        "weights": "ImageNet ResNet encoder (microsoft/resnet-34)",
    },
    "seed-unet": {
        "family": "CNN U-Net (the seed's)",
        "parameters": 8634593,
        "gflops": 38.398,
        "output": "metric",
        "max_depth": 10.0,
        "multiple": 16,
        "weights": "none: trained from scratch",
    },
    "zoedepth": {
        "family": "ZoeDepth (BEiT/DINOv2 + DPT + metric bins)",
        "parameters": 333277250,
        "gflops": 275.469,
        "output": "metric",
        "max_depth": 10.0,
        "multiple": 32,
        "weights": "hub: Intel/zoedepth-nyu, Intel/zoedepth-kitti, Intel/zoedepth-nyu-kitti; size micro: random",
    },
}
