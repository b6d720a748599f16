"""BinsFormer (Li et al., "BinsFormer: Revisiting Adaptive Bins for Monocular Depth Estimation", arXiv 2204.00987).

Follows the authors' code in the Monocular-Depth-Estimation-Toolbox (``configs/_base_/models/binsformer.py``,
``depth/models/decode_heads/binsformer_head.py``, ``PixelTransformerDecoder`` in ``depth/models/utils/transformer.py``):

1. Swin encoder -> [1/4, 1/8, 1/16, 1/32] maps (``backbones.build_backbone("swin", size)``).
2. Pixel decoder. The 3 coarsest maps -> 1×1 conv + BN + LeakyReLU to C channels -> a multi-scale deformable
   attention encoder over the three (Deformable DETR's encoder layers from ``transformers``: self-attention with
   8 points per level and head, dropout 0.1, ReLU FFN, post-norm; sine positions + a learned level embedding),
   then a top-down FPN to the per-pixel embedding E [N,C,H/4,W/4].
3. Transformer decoder. Queries = K depth bins (+ 1 scene query when ``scene_classes`` > 0), each with a learned
   feature and position embedding. Layer i: cross-attention to one enhanced level ([1/32, 1/16, 1/8], with sine
   position + a second learned level embedding) -> norm -> self-attention -> norm -> FFN -> norm.
4. Shared heads after every layer (LayerNorm first): bin queries -> Linear(C,1) -> softmax over bins -> widths ×
   (max − min) -> edges by cumsum from min_depth -> centres [N,K]; bin queries -> 3-layer MLP -> mask embeddings
   [N,K,C] -> einsum with E -> logits [N,K,H/4,W/4] -> softmax over bins -> depth = Σ_k p_k·c_k at 1/4; the scene
   query -> 3-layer MLP -> scene logits. The depth is upsampled bilinearly (align_corners, as the toolbox) to the
   input size.

Training (``forward_train``): the final depth, the depths of decoder layers 2 and 5 (0-based, of 9) with weights
¼ and ½ — for another number of layers L, layers L/3 − 1 and 2L/3 − 1 — the final bin centres for an optional
chamfer loss, and scene logits. ``extra_loss`` is the scene cross-entropy × 1e-2 on the final and both auxiliary
layers (as the toolbox, whose auxiliary scene terms are not scaled by the auxiliary depth weights).

Where this follows the code rather than the paper's text, or deviates:
- FPN, exactly as the toolbox: lateral 1×1 conv + BN + ReLU (mmcv ``ConvModule``'s default activation) on the raw
  Swin maps at 1/16, 1/8 and 1/4, each summed with the previous FPN output resized to it (the first step takes
  the enhanced 1/8 map *down* to 1/16), then 3×3 conv + BN + LeakyReLU.
- Decoder levels: ``level_schedule="mod"`` (layer i -> level i mod 3, the base config and the Swin-L NYU config)
  or ``"div"`` (level i·3 // L; the toolbox's ``operation='//'`` of its Swin-T NYU and Swin-L KITTI configs).
- Sine positions: mmcv's ``SinePositionalEncoding(normalize=True)`` (offset 0); ``transformers``' own embedding
  uses offset −0.5 and caches by shape, which would freeze the sizes of an ONNX export, so it is written here.
- The Swin encoder keeps its ``transformers`` config's drop-path rate (0.1) rather than the toolbox's 0.3, and
  weight decay on norms/position tables is the recipe's business, not the model's.
- The heads run in float32 even under bf16 autocast: softmax + cumsum of 64 widths in bf16 would misplace edges.
- The final depth is clamped to [min_depth, max_depth] (it is a convex combination of centres inside that range;
  the clamp only removes float rounding).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..losses.bins import bins_chamfer
from .backbones import build_backbone
from .base import MODELS, Contract, DepthModel
from .layers import conv_bn, sine_positions
from .msda import fuse_sampling

Tensor = torch.Tensor

# Per Swin size: C, deformable-encoder layers, decoder layers, bins, heads, points, encoder / decoder FFN width.
# tiny / large are the toolbox's Swin-T (C 256) and Swin-L (C 512) settings; micro is a test-sized network.
HEADS = {
    "micro": dict(hidden=32, enc_layers=2, dec_layers=3, n_bins=16, heads=4, points=4, enc_ffn=64, dec_ffn=64),
    "tiny": dict(hidden=256, enc_layers=6, dec_layers=9, n_bins=64, heads=8, points=8, enc_ffn=1024, dec_ffn=2048),
    "base": dict(hidden=256, enc_layers=6, dec_layers=9, n_bins=64, heads=8, points=8, enc_ffn=1024, dec_ffn=2048),
    "large": dict(hidden=512, enc_layers=6, dec_layers=9, n_bins=64, heads=8, points=8, enc_ffn=1024, dec_ffn=2048),
}
LEVELS = 3  # the enhanced maps the decoder attends to: 1/32, 1/16, 1/8
SCENE_WEIGHT = 1e-2  # the toolbox's CrossEntropyLoss(loss_weight=1e-2)


def reference_points(shapes: list[tuple[Any, Any]], device: torch.device) -> Tensor:
    """Deformable DETR's encoder reference points without padding: every pixel centre of every level, normalised to
    [0,1], (x, y) order -> [1, Σ h·w, levels, 2] (the same point on every level)."""
    refs = []
    for h, w in shapes:
        ry = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        rx = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        ry, rx = torch.meshgrid(ry, rx, indexing="ij")
        refs.append(torch.stack((rx.reshape(-1), ry.reshape(-1)), -1))
    return torch.cat(refs, 0)[None, :, None, :].expand(-1, -1, len(shapes), -1)


def shapes_tensor(maps: list[Tensor]) -> Tensor:
    """[levels, 2] (h, w) as a tensor. While tracing for ONNX it is read from the maps' shapes, so it stays dynamic
    instead of being frozen to the example's sizes."""
    if torch.jit.is_tracing():
        return torch.stack([torch._shape_as_tensor(m)[-2:] for m in maps])
    return torch.tensor([tuple(m.shape[-2:]) for m in maps], dtype=torch.long, device=maps[0].device)


class MLP(nn.Sequential):
    """Linear layers with ReLU between them (the DETR / toolbox MLP)."""

    def __init__(self, cin: int, hidden: int, cout: int, layers: int = 3):
        dims = [cin] + [hidden] * (layers - 1) + [cout]
        mods: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            mods += [nn.Linear(a, b)] + ([nn.ReLU()] if i < layers - 1 else [])
        super().__init__(*mods)


class DecoderLayer(nn.Module):
    """cross-attn -> norm -> self-attn -> norm -> FFN -> norm (post-norm, residual around each; no dropout).

    Positions are added to queries and keys, never to values (mmcv ``MultiheadAttention``)."""

    def __init__(self, c: int, heads: int, ffn: int):
        super().__init__()
        self.cross = nn.MultiheadAttention(c, heads, batch_first=True)
        self.attn = nn.MultiheadAttention(c, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(c, ffn), nn.ReLU(), nn.Linear(ffn, c))
        self.norms = nn.ModuleList(nn.LayerNorm(c) for _ in range(3))

    def forward(self, q: Tensor, q_pos: Tensor, src: Tensor, src_pos: Tensor) -> Tensor:
        """q, q_pos [N,Q,C]; src, src_pos [N,S,C] -> [N,Q,C]."""
        q = self.norms[0](q + self.cross(q + q_pos, src + src_pos, src, need_weights=False)[0])
        k = q + q_pos
        q = self.norms[1](q + self.attn(k, k, q, need_weights=False)[0])
        return self.norms[2](q + self.ffn(q))


@MODELS.register("binsformer", family="Transformer (Swin + adaptive-bins decoder)",
                 weights="Swin ImageNet weights with pretrained=True; decoder trained from scratch",
                 test={"size": "micro"})
class BinsFormer(DepthModel):
    """BinsFormer: image [N,3,H,W] in [0,1] (H, W multiples of 32) -> metric depth [N,1,H,W] in
    [min_depth, max_depth] metres (see the module docstring for the architecture and its sources).

    size: the Swin size ("micro" for tests, "tiny", "base", "large"); it also sets the decoder's defaults
    (``HEADS``) for the keywords left at None. pretrained: the Swin weights (True: the size's hub id, or a hub id /
    local folder). scene_classes: 0 = no scene query (the toolbox's KITTI setting), NYU uses 25.
    backbone_config: the Swin config dict, to rebuild offline (``spec_kwargs`` fills it in). partial_weights:
    accept pretrained weights that lack some of the encoder's tensors.
    """

    def __init__(self, size: str = "tiny", pretrained: bool | str | None = False, min_depth: float = 1e-3,
                 max_depth: float = 10.0, n_bins: int | None = None, hidden: int | None = None,
                 dec_layers: int | None = None, enc_layers: int | None = None, scene_classes: int = 0,
                 level_schedule: str = "mod", bins_weight: float = 0.0,
                 backbone_config: dict[str, Any] | None = None, partial_weights: bool = False):
        super().__init__()
        if size not in HEADS:
            raise ValueError(f"size must be one of {', '.join(HEADS)}, not {size!r}")
        d = HEADS[size]
        n_bins, hidden = int(n_bins or d["n_bins"]), int(hidden or d["hidden"])
        dec_layers, enc_layers = int(dec_layers or d["dec_layers"]), int(enc_layers or d["enc_layers"])
        heads = d["heads"]
        if not 0 < min_depth < max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth metres, got {min_depth!r} and {max_depth!r}")
        if n_bins < 2 or dec_layers < 1 or enc_layers < 0 or int(scene_classes) < 0:
            raise ValueError(f"need n_bins >= 2, dec_layers >= 1, enc_layers >= 0, scene_classes >= 0 (got "
                             f"{n_bins}, {dec_layers}, {enc_layers}, {scene_classes})")
        if hidden % (2 * heads) or hidden % 4:
            raise ValueError(f"hidden must be a multiple of 4 and of 2×{heads} heads, not {hidden}")
        if level_schedule not in ("mod", "div"):
            raise ValueError(f"level_schedule must be 'mod' or 'div', not {level_schedule!r}")
        self.size, self.min_depth, self.max_depth_m = size, float(min_depth), float(max_depth)
        self.n_bins, self.hidden, self.dec_layers, self.enc_layers = n_bins, hidden, dec_layers, enc_layers
        self.scene_classes, self.level_schedule = int(scene_classes), level_schedule
        if not bins_weight >= 0:
            raise ValueError(f"bins_weight must be >= 0, not {bins_weight!r}")
        self.bins_weight = float(bins_weight)
        self.backbone = build_backbone("swin", size, pretrained, backbone_config, partial_weights)
        self.set_contract(Contract("metric", self.max_depth_m, multiple=self.backbone.multiple))
        ch = self.backbone.channels

        # Pixel decoder.
        self.proj = nn.ModuleList(conv_bn(ch[i], hidden, 1, nn.LeakyReLU()) for i in (1, 2, 3))
        self.enc_level = nn.Parameter(torch.empty(LEVELS, hidden))
        self.msda = self._deformable_encoder(hidden, heads, d["points"], d["enc_ffn"], enc_layers)
        self.lateral = nn.ModuleList(conv_bn(ch[i], hidden, 1, nn.ReLU()) for i in (2, 1, 0))
        self.fpn_out = nn.ModuleList(conv_bn(hidden, hidden, 3, nn.LeakyReLU()) for _ in range(3))

        # Transformer decoder and heads.
        queries = n_bins + (1 if self.scene_classes else 0)
        self.query_feat = nn.Embedding(queries, hidden)
        self.query_pos = nn.Embedding(queries, hidden)
        self.dec_level = nn.Embedding(LEVELS, hidden)
        self.layers = nn.ModuleList(DecoderLayer(hidden, heads, d["dec_ffn"]) for _ in range(dec_layers))
        self.norm = nn.LayerNorm(hidden)
        self.bin_head = nn.Linear(hidden, 1)
        self.mask_head = MLP(hidden, hidden, hidden, 3)
        self.scene_head = MLP(hidden, hidden, self.scene_classes, 3) if self.scene_classes else None
        self._init_weights()
        # (weight, layer index) of the auxiliary depths: 2 and 5 of 9 in the paper, L/3 − 1 and 2L/3 − 1 of L.
        aux = {}
        for w, i in ((0.25, dec_layers // 3 - 1), (0.5, 2 * dec_layers // 3 - 1)):
            if 0 <= i < dec_layers - 1:
                aux[i] = w
        self.aux = [(w, i) for i, w in sorted(aux.items())]

    @staticmethod
    def _deformable_encoder(c: int, heads: int, points: int, ffn: int, layers: int) -> nn.Module:
        """``transformers``' Deformable DETR encoder (its layers and their published initialisation; the layers are
        run by ``_encode``, which supplies reference points and positions)."""
        from transformers import DeformableDetrConfig
        from transformers.models.deformable_detr.modeling_deformable_detr import DeformableDetrEncoder

        cfg = DeformableDetrConfig(d_model=c, encoder_layers=layers, encoder_attention_heads=heads,
                                   encoder_n_points=points, encoder_ffn_dim=ffn, num_feature_levels=LEVELS,
                                   dropout=0.1, activation_dropout=0.1, activation_function="relu",
                                   use_timm_backbone=False, use_pretrained_backbone=False)
        return fuse_sampling(DeformableDetrEncoder(cfg))  # levels summed one by one (msda.py)

    def _init_weights(self) -> None:
        """The toolbox's head init: Xavier-uniform on every matrix outside the encoders (the deformable encoder
        keeps Deformable DETR's own init), normal level embeddings of the deformable encoder."""
        skip = {id(p) for p in self.backbone.parameters()} | {id(p) for p in self.msda.parameters()}
        for p in self.parameters():
            if p.dim() > 1 and id(p) not in skip:
                nn.init.xavier_uniform_(p)
        nn.init.normal_(self.enc_level)

    def encoder(self) -> nn.Module:
        return self.backbone

    def spec_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Every architecture keyword resolved, and the Swin config instead of the hub id (loads offline)."""
        return dict(size=self.size, pretrained=False, min_depth=self.min_depth, max_depth=self.max_depth_m,
                    n_bins=self.n_bins, hidden=self.hidden, dec_layers=self.dec_layers, enc_layers=self.enc_layers,
                    scene_classes=self.scene_classes, level_schedule=self.level_schedule,
                    bins_weight=self.bins_weight, backbone_config=self.backbone.config())

    # ---------------------------------------------------------------------------------------------- network

    def _encode(self, maps: list[Tensor], pos: list[Tensor]) -> list[Tensor]:
        """Deformable self-attention across the levels: maps [N,C,h_l,w_l] -> the same shapes, enhanced."""
        if not self.enc_layers:
            return maps
        n = maps[0].shape[0]
        shapes = [(m.shape[2], m.shape[3]) for m in maps]
        tokens = torch.cat([m.flatten(2).transpose(1, 2) for m in maps], 1)
        level_pos = torch.cat([(p.flatten(2).transpose(1, 2) + self.enc_level[i]).expand(n, -1, -1)
                               for i, p in enumerate(pos)], 1)
        spatial = shapes_tensor(maps)
        start = torch.cat((spatial.new_zeros(1), (spatial[:, 0] * spatial[:, 1]).cumsum(0)[:-1]))
        ref = reference_points(shapes, tokens.device).expand(n, -1, -1, -1).to(tokens.dtype)
        for layer in self.msda.layers:
            tokens = layer(tokens, None, spatial_position_embeddings=level_pos, reference_points=ref,
                           spatial_shapes=spatial, spatial_shapes_list=shapes, level_start_index=start)
        out = torch.split(tokens, [h * w for h, w in shapes], dim=1)
        return [t.transpose(1, 2).reshape(m.shape) for t, m in zip(out, maps)]

    def _pixel_decoder(self, image: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """-> (enhanced maps [1/32, 1/16, 1/8] each [N,C,h,w], their sine positions [1,C,h,w], E [N,C,H/4,W/4])."""
        feats = self.backbone(self.normalize(image))
        maps = [p(feats[i + 1]) for i, p in enumerate(self.proj)]  # 1/8, 1/16, 1/32
        # normalised, in float32, one map for the batch: mmcv's SinePositionalEncoding(normalize=True)
        pos = [sine_positions(m[:1], m.shape[1], True, dtype=torch.float32).permute(0, 3, 1, 2).to(m.dtype)
               for m in maps]
        out = self._encode(maps, pos)[::-1]
        y = out[-1]
        for lateral, conv, f in zip(self.lateral, self.fpn_out, (feats[2], feats[1], feats[0])):
            x = lateral(f)
            y = conv(x + F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=True))
        return out, pos[::-1], y

    def _heads(self, q: Tensor, pixel: Tensor) -> dict[str, Tensor]:
        """Decoder queries [N,Q,C] and E -> {"depth" [N,1,H/4,W/4], "prob" [N,K,H/4,W/4], "edges" [N,K+1],
        "centres" [N,K] (metres), "scene" [N,S] logits or None}. In float32 (see the module docstring)."""
        with torch.autocast(q.device.type, enabled=False):
            h = self.norm(q.float())
            scene = self.scene_head(h[:, 0]) if self.scene_head is not None else None
            b = h[:, 1:] if self.scene_head is not None else h
            widths = self.bin_head(b).squeeze(-1).softmax(1) * (self.max_depth_m - self.min_depth)
            edges = torch.cumsum(F.pad(widths, (1, 0), value=self.min_depth), 1)
            centres = 0.5 * (edges[:, :-1] + edges[:, 1:])
            prob = torch.einsum("bkc,bchw->bkhw", self.mask_head(b), pixel.float()).softmax(1)
            depth = (prob * centres[:, :, None, None]).sum(1, keepdim=True)
        return {"depth": depth, "prob": prob, "edges": edges, "centres": centres, "scene": scene}

    def decode(self, image: Tensor, layers: list[int] | None = None) -> dict[int, dict[str, Tensor]]:
        """Run the network; the heads' outputs (see ``_heads``) after each decoder layer in ``layers`` (0-based;
        default: all), keyed by layer index. Depths stay at 1/4 resolution."""
        want = set(range(self.dec_layers) if layers is None else layers)
        maps, pos, pixel = self._pixel_decoder(image)
        n = pixel.shape[0]
        src = [m.flatten(2).transpose(1, 2) for m in maps]
        src_pos = [(p.flatten(2).transpose(1, 2) + self.dec_level.weight[i]).expand(n, -1, -1)
                   for i, p in enumerate(pos)]
        q = self.query_feat.weight[None].expand(n, -1, -1)
        q_pos = self.query_pos.weight[None].expand(n, -1, -1)
        out = {}
        for i, layer in enumerate(self.layers[: max(want) + 1]):
            lvl = i % LEVELS if self.level_schedule == "mod" else i * LEVELS // self.dec_layers
            q = layer(q, q_pos, src[lvl], src_pos[lvl])
            if i in want:
                out[i] = self._heads(q, pixel)
        return out

    def _full(self, depth: Tensor, size: tuple[int, int]) -> Tensor:
        d = F.interpolate(depth, size=size, mode="bilinear", align_corners=True)
        return d.clamp(self.min_depth, self.max_depth_m)

    def forward(self, image: Tensor) -> Tensor:
        """image [N,3,H,W] in [0,1] -> depth [N,1,H,W], metres."""
        last = self.dec_layers - 1
        return self._full(self.decode(image, [last])[last]["depth"], image.shape[-2:])

    def forward_train(self, image: Tensor) -> dict[str, Any]:
        """{"depth" [N,1,H,W], "aux": [(weight, depth [N,1,H,W])], "bins": final centres [N,K] (metres), and
        with a scene query "scene_logits" [N,S] and "aux_scene_logits" (one per aux depth)}."""
        last = self.dec_layers - 1
        res = self.decode(image, [i for _, i in self.aux] + [last])
        size = image.shape[-2:]
        out: dict[str, Any] = {"depth": self._full(res[last]["depth"], size),
                               "aux": [(w, self._full(res[i]["depth"], size)) for w, i in self.aux],
                               "bins": res[last]["centres"]}
        if self.scene_classes:
            out["scene_logits"] = res[last]["scene"]
            out["aux_scene_logits"] = [res[i]["scene"] for _, i in self.aux]
        return out

    def extra_loss(self, outputs: dict[str, Any], batch: dict[str, Any]) -> Tensor | None:
        """``bins_weight`` × AdaBins' chamfer loss between the final bin centres and the ground truth (0 in
        BinsFormer's own configs), plus the scene term (``scene_loss``); None when neither applies."""
        terms = []
        if self.bins_weight and "bins" in outputs:
            terms.append(self.bins_weight * bins_chamfer(outputs["bins"].float(), batch["depth"], batch["valid"]))
        scene = self.scene_loss(outputs, batch)
        if scene is not None:
            terms.append(scene)
        return sum(terms) if terms else None

    def scene_loss(self, outputs: dict[str, Any], batch: dict[str, Any]) -> Tensor | None:
        """Scene cross-entropy × 1e-2 on the final and auxiliary layers' scene logits, when the model has a scene
        query and ``batch["scene"]`` holds integer labels [N] (negative = unknown, ignored); else None."""
        label = batch.get("scene")
        if not self.scene_classes or "scene_logits" not in outputs or label is None:
            return None
        label = torch.as_tensor(label)
        if label.dtype.is_floating_point or label.dtype == torch.bool:
            return None
        logits = outputs["scene_logits"]
        label = label.to(logits.device).long().reshape(-1)
        if label.numel() != logits.shape[0]:
            raise ValueError(f"scene labels: {label.numel()} for a batch of {logits.shape[0]}")
        if int(label.max()) >= self.scene_classes:
            raise ValueError(f"scene label {int(label.max())} out of range for {self.scene_classes} scene classes")
        known = label >= 0
        total = logits.sum() * 0.0
        if not known.any():
            return total
        for lg in [logits] + list(outputs.get("aux_scene_logits", [])):
            total = total + SCENE_WEIGHT * F.cross_entropy(lg[known], label[known])
        return total
