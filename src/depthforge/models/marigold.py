"""Marigold (Ke et al., CVPR 2024): Stable Diffusion 2 fine-tuned to denoise a depth latent conditioned on the
image's latent; affine-invariant depth in [0, 1], an ensemble over noise samples. Built from ``diffusers``' own
modules and run as ``diffusers.MarigoldDepthPipeline.__call__`` runs them (tests compare the two at 1e-5):

image [N,3,H,W] in [0,1] -> ×2−1 -> longer side resized to ``resolution`` (bilinear, antialiased; 0: as is) ->
replicate-padded to the VAE's multiple -> VAE latent (the distribution's mode × scaling_factor), repeated
``ensemble`` times -> Gaussian noise from ``seed`` -> ``steps`` denoising steps of the U-Net on [image latent,
depth latent] with the empty prompt's CLIP embedding, the checkpoint's scheduler (DDIM or LCM) -> VAE decode, mean
of the 3 channels, clipped to [-1, 1], mapped to [0, 1] -> padding cut off -> ensemble members aligned (scale and
shift, diffusers' ``ensemble_depth``: BFGS on pairwise RMSE, median) -> bilinear back to H×W.

The output is ``relative`` depth with an unknown shift (``Contract.shift``): evaluation fits scale and shift by
least squares in depth, as the Marigold paper evaluates. ``forward`` takes any H×W (it resizes itself, like DPT's
squash), so the contract's resize is "none".

Fine-tuning (``depthforge train``): the end-to-end recipe of Garcia et al. ("Fine-tuning image-conditional
diffusion models is easier than you think", WACV 2025): one deterministic step at the last training timestep
with the depth latent at the noise's mean (zeros), the VAE frozen, the U-Net trained through the decoder with an
affine-invariant loss (``ssi-gradient`` in depth space). A model that has run ``forward_train`` predicts the same
way afterwards (``noise="zeros"``, one step), since that is what it was trained to do; checkpoints record it.

Sources: ``pretrained`` = a ``MarigoldDepthPipeline`` folder (``save_pretrained``) or hub id
(prs-eth/marigold-depth-v1-1). Only ``diffusers``' and ``transformers``' own classes named in the folder's
``model_index.json`` are built (UNet2DConditionModel, AutoencoderKL, DDIMScheduler/LCMScheduler, CLIPTextModel,
CLIPTokenizer); anything else, a custom pipeline or component, is refused, and weights load from safetensors only.
The text encoder runs once at load, for the empty prompt, and is not kept. ``size``: "micro" (tiny random, tests)
or "v1-1" (the real architecture, random weights: the catalog). ``unet``/``vae``/``scheduler``/``text`` = the
config dicts and embedding shape ``spec_kwargs`` records, to rebuild a checkpoint offline.

ONNX: not exported as one graph: the denoising loop's scheduler arithmetic and its timesteps are Python state, the
ensemble alignment is a SciPy BFGS minimisation, and the noise comes from a generator; export the U-Net and the
VAE separately with ``diffusers``' tooling if needed.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from ..errors import DepthforgeError, error_line
from .base import MODELS, Contract, DepthModel
from .hub import load_weights, local_folder, read_config, require_safetensors

HALF = (0.5, 0.5, 0.5)  # ×2−1, the pipeline's normalisation
# model_index.json component -> the classes depthforge builds for it (library, class names)
COMPONENTS = {"unet": ("diffusers", ("UNet2DConditionModel",)), "vae": ("diffusers", ("AutoencoderKL",)),
              "scheduler": ("diffusers", ("DDIMScheduler", "LCMScheduler")),
              "text_encoder": ("transformers", ("CLIPTextModel",)), "tokenizer": ("transformers", ("CLIPTokenizer",))}
# What a hub snapshot of a pipeline needs: configs, tokenizer files, full-precision safetensors; no code, no pickle.
HUB_FILES = ["model_index.json", "*/config.json", "scheduler/scheduler_config.json", "tokenizer/*.json",
             "tokenizer/*.txt", "*/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"]
NOISES = ("gaussian", "zeros")

# prs-eth/marigold-depth-v1-1: Stable Diffusion 2's U-Net (8 input channels) and VAE, DDIM trailing v-prediction.
SCHEDULER_V11 = dict(_class_name="DDIMScheduler", beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                     clip_sample=False, num_train_timesteps=1000, prediction_type="v_prediction",
                     set_alpha_to_one=False, steps_offset=1, timestep_spacing="trailing")
SIZES: dict[str, dict[str, Any]] = {
    "v1-1": dict(
        unet=dict(in_channels=8, out_channels=4, sample_size=96, block_out_channels=[320, 640, 1280, 1280],
                  cross_attention_dim=1024, attention_head_dim=[5, 10, 20, 20], use_linear_projection=True),
        vae=dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[128, 256, 512, 512],
                 layers_per_block=2, sample_size=768, scaling_factor=0.18215,
                 down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4),
        scheduler=SCHEDULER_V11, text=[2, 1024], steps=4, resolution=768),
    "micro": dict(
        unet=dict(in_channels=8, out_channels=4, sample_size=8, block_out_channels=[8, 16], layers_per_block=1,
                  norm_num_groups=4, cross_attention_dim=8, attention_head_dim=2,
                  down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
                  up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"]),
        vae=dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[8, 8], layers_per_block=1,
                 norm_num_groups=4, sample_size=32, down_block_types=["DownEncoderBlock2D"] * 2,
                 up_block_types=["UpDecoderBlock2D"] * 2),
        scheduler=SCHEDULER_V11, text=[2, 8], steps=2, resolution=0),
}


@MODELS.register("marigold", family="Marigold (Stable Diffusion 2 U-Net + VAE, diffusion), affine-invariant depth",
                 weights="hub: prs-eth/marigold-depth-v1-1, prs-eth/marigold-depth-lcm-v1-0; size micro: random",
                 catalog={"size": "v1-1", "steps": 1, "resolution": 0}, test={"size": "micro"})
class Marigold(DepthModel):
    """Marigold: image [N,3,H,W] in [0,1], any H×W -> relative depth [N,1,H,W] in [0, 1], affine-invariant.

    ``steps``: denoising steps (None: the checkpoint's default); ``ensemble``: predictions per image, aligned and
    reduced by their median (≥ 1);
    ``resolution``: the longer side the network runs at (None: the checkpoint's, 768 for v1-1; 0: the input's);
    ``seed``: of the noise, drawn anew from it on every call (the same image gives the same depth);
    ``noise``: "gaussian" (the pipeline) or "zeros" (the one-step fine-tuned model, see the module docstring);
    ``train_vae``: whether fine-tuning trains the VAE too (None: only a random one, never a pretrained one)."""

    def __init__(self, pretrained: str | None = None, size: str | None = None, unet: dict[str, Any] | None = None,
                 vae: dict[str, Any] | None = None, scheduler: dict[str, Any] | None = None,
                 text: list[int] | None = None, steps: int | None = None, ensemble: int = 1,
                 resolution: int | None = None, seed: int = 0, noise: str = "gaussian", max_depth: float = 10.0,
                 train_vae: bool | None = None):
        super().__init__()
        from diffusers import AutoencoderKL, UNet2DConditionModel

        if sum(x is not None for x in (pretrained, size, unet)) != 1:
            raise ValueError("give one of pretrained (a Marigold pipeline folder or hub id), size or unet/vae/"
                             "scheduler/text configs")
        if pretrained is not None:
            parts = _load(str(pretrained))
            self.unet, self.vae, sched_cfg, embedding, defaults = parts
        else:
            if size is not None:
                if size not in SIZES:
                    raise ValueError(f"size must be one of {', '.join(SIZES)}, not {size!r}")
                spec = SIZES[size]
                unet, vae, scheduler, text = spec["unet"], spec["vae"], spec["scheduler"], spec["text"]
                defaults = {"steps": spec["steps"], "resolution": spec["resolution"]}
            else:
                if vae is None or scheduler is None or text is None:
                    raise ValueError("unet needs vae, scheduler and text too")
                defaults = {}
            self.unet = UNet2DConditionModel.from_config(dict(unet))
            self.vae = AutoencoderKL.from_config(dict(vae))
            sched_cfg = dict(scheduler)
            # a random stand-in for the empty prompt's embedding; a checkpoint's state_dict replaces it
            embedding = torch.randn(1, *(int(n) for n in text))
            # A random decoder's output spreads past the [-1, 1] the output is clipped to, and a clipped pixel gets
            # no gradient: scaled down, every pixel starts inside (a real VAE decodes depth latents well inside).
            with torch.no_grad():
                self.vae.decoder.conv_out.weight.mul_(0.1)
                self.vae.decoder.conv_out.bias.zero_()
        # Fine-tuning keeps a pretrained VAE frozen (Marigold's training, Garcia et al.'s), and trains the U-Net
        # alone through its decoder. A random VAE (micro, the catalog's) has nothing to keep and is trained too:
        # frozen, its random decoder barely lets a depth map through.
        self.train_vae = (pretrained is None and size is not None) if train_vae is None else bool(train_vae)
        self.vae.requires_grad_(self.train_vae)
        self.register_buffer("text", embedding.float())
        self.scheduler = _scheduler(sched_cfg)
        self.steps = _positive("steps", steps if steps is not None else defaults.get("steps") or 1)
        self.ensemble = _positive("ensemble", ensemble)
        res = resolution if resolution is not None else defaults.get("resolution") or 0
        if isinstance(res, bool) or not isinstance(res, int) or res < 0:
            raise DepthforgeError(f"marigold: resolution must be a whole number of pixels >= 0 (0: the input's), "
                                  f"not {res!r}")
        self.resolution, self.seed = res, int(seed)
        if noise not in NOISES:
            raise DepthforgeError(f"marigold: noise must be one of {', '.join(NOISES)}, not {noise!r}")
        self.noise = noise
        self.scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.set_contract(Contract("relative", float(max_depth), mean=HALF, std=HALF, resize="none", shift=True))

    # -- inference, as MarigoldDepthPipeline.__call__ ------------------------------------------------------------
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        from diffusers import MarigoldDepthPipeline
        from diffusers.pipelines.marigold.marigold_image_processing import MarigoldImageProcessor as proc

        if torch.jit.is_tracing():
            raise DepthforgeError("marigold cannot be exported as one ONNX graph: its denoising loop, noise and "
                                  "ensemble alignment are Python and SciPy state that a trace would freeze")
        h, w = image.shape[-2:]
        x = self.normalize(image)
        if self.resolution > 0:
            x = proc.resize_to_max_edge(x, self.resolution, "bilinear")
        x, padding = proc.pad_image(x, self.scale)
        if self.noise == "zeros":
            depth = self._one_step(x)
        else:
            depth = self._denoise(x)
        depth = proc.unpad_image(depth, padding)
        if self.ensemble > 1:
            members = depth.reshape(-1, self.ensemble, *depth.shape[1:])
            depth = torch.cat([MarigoldDepthPipeline.ensemble_depth(m)[0] for m in members])
        return F.interpolate(depth, (h, w), mode="bilinear", antialias=False)

    def _latent(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x).latent_dist.mode() * self.vae.config.scaling_factor

    def _decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Depth latent -> [N,1,h,w] in [0, 1]: the decoded image's channel mean, clipped, from [-1, 1]."""
        image = self.vae.decode(latent / self.vae.config.scaling_factor).sample
        return (image.mean(dim=1, keepdim=True).clamp(-1.0, 1.0) + 1.0) / 2.0

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        from diffusers.utils.torch_utils import randn_tensor

        image_latent = self._latent(x).repeat_interleave(self.ensemble, dim=0)
        # a CPU generator: the same seed gives the same noise on every device, as the pipeline's examples do
        generator = torch.Generator().manual_seed(self.seed)
        latent = randn_tensor(image_latent.shape, generator=generator, device=x.device, dtype=x.dtype)
        text = self.text.repeat(len(latent), 1, 1)
        self.scheduler.set_timesteps(self.steps, device=x.device)
        for t in self.scheduler.timesteps:
            noise = self.unet(torch.cat([image_latent, latent], dim=1), t, encoder_hidden_states=text).sample
            latent = self.scheduler.step(noise, t, latent, generator=generator).prev_sample
        return self._decode(latent)

    def _one_step(self, x: torch.Tensor) -> torch.Tensor:
        """Garcia et al.'s deterministic single step: the depth latent at zeros, t = the last training timestep,
        the clean latent from the U-Net's prediction by the scheduler's own parameterisation."""
        image_latent = self._latent(x).repeat_interleave(self.ensemble, dim=0)
        latent = torch.zeros_like(image_latent)
        cfg = self.scheduler.config
        t = int(cfg.num_train_timesteps) - 1
        out = self.unet(torch.cat([image_latent, latent], dim=1), t,
                        encoder_hidden_states=self.text.repeat(len(latent), 1, 1)).sample
        alpha = self.scheduler.alphas_cumprod[t].to(x)
        if cfg.prediction_type == "v_prediction":  # x0 = √ᾱ·x_t − √(1−ᾱ)·v, x_t = 0
            clean = -(1 - alpha).sqrt() * out
        elif cfg.prediction_type == "epsilon":  # x0 = (x_t − √(1−ᾱ)·ε) / √ᾱ
            clean = -(1 - alpha).sqrt() * out / alpha.sqrt()
        else:  # "sample"
            clean = out
        return self._decode(clean)

    # -- training -----------------------------------------------------------------------------------------------
    def forward_train(self, image: torch.Tensor) -> dict[str, Any]:
        # what is trained is the one-step deterministic predictor; it is also what this model predicts from now on
        self.noise, self.steps, self.ensemble = "zeros", 1, 1
        return {"depth": self(image)}

    def encoder(self):
        return None  # the U-Net is trained whole, at the recipe's learning rate

    def spec_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The architecture as configs (rebuilds offline; the text embedding travels in the state_dict)."""
        return {"unet": _plain(self.unet.config), "vae": _plain(self.vae.config),
                "scheduler": {"_class_name": type(self.scheduler).__name__, **_plain(self.scheduler.config)},
                "text": list(self.text.shape[1:]), "steps": self.steps, "ensemble": self.ensemble,
                "resolution": self.resolution, "seed": self.seed, "noise": self.noise,
                "max_depth": self.max_depth, "train_vae": self.train_vae}


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DepthforgeError(f"marigold: {name} must be a whole number >= 1, not {value!r}")
    return value


def _plain(config) -> dict[str, Any]:
    """A diffusers config as plain JSON-able types (its FrozenDict holds tuples)."""
    return json.loads(json.dumps({k: v for k, v in dict(config).items() if not k.startswith("_")}))


def _scheduler(config: dict[str, Any]):
    from diffusers import DDIMScheduler, LCMScheduler

    classes = {"DDIMScheduler": DDIMScheduler, "LCMScheduler": LCMScheduler}
    config = dict(config)
    name = config.pop("_class_name", "DDIMScheduler")
    if name not in classes:
        raise DepthforgeError(f"marigold: scheduler {name!r} is not one Marigold runs with (DDIMScheduler, "
                              f"LCMScheduler)")
    return classes[name].from_config(config)


def _load(source: str):
    """A MarigoldDepthPipeline folder or hub id -> (unet, vae, scheduler config, empty-prompt embedding
    [1,L,D], {"steps", "resolution"}: the pipeline's defaults)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    what = "Marigold depth pipeline"
    folder = local_folder(source, what, HUB_FILES, nested=True)
    index_path = folder / "model_index.json"
    try:
        index = json.loads(index_path.read_text())
        if not isinstance(index, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise DepthforgeError(f"{source}: no readable model_index.json; not a saved diffusers pipeline "
                              f"({error_line(e, 120)})") from None
    if index.get("_class_name") != "MarigoldDepthPipeline":
        raise DepthforgeError(f"{source}: a {index.get('_class_name')} pipeline, not a MarigoldDepthPipeline")
    for key, (library, names) in COMPONENTS.items():
        entry = index.get(key)
        if not (isinstance(entry, list) and len(entry) == 2 and entry[0] == library and entry[1] in names):
            raise DepthforgeError(f"{index_path}: {key} is {entry!r}; depthforge builds only {library}'s "
                                  f"{' or '.join(names)} for it and never runs a folder's own code")
    for part in ("unet", "vae"):
        require_safetensors(folder / part, f"{source}/{part}", f"Marigold {part}")
    modules = {}
    for part, cls in (("unet", UNet2DConditionModel), ("vae", AutoencoderKL)):
        try:
            modules[part] = cls.from_pretrained(folder, subfolder=part, use_safetensors=True, local_files_only=True,
                                                torch_dtype=torch.float32)
        except Exception as e:  # diffusers raises OSError, ValueError, EnvironmentError, safetensors errors
            raise DepthforgeError(f"{source}/{part}: the Marigold {part} cannot be loaded "
                                  f"({error_line(e, whole=True)})") from None
    sched_path = folder / "scheduler" / "scheduler_config.json"
    try:
        sched_cfg = json.loads(sched_path.read_text())
    except (OSError, ValueError) as e:
        raise DepthforgeError(f"{sched_path}: not a readable scheduler config ({error_line(e, 120)})") from None
    sched_cfg["_class_name"] = index["scheduler"][1]
    embedding = _empty_prompt(folder, source, CLIPTextModel, CLIPTokenizer)
    defaults = {"steps": index.get("default_denoising_steps"), "resolution": index.get("default_processing_resolution")}
    return modules["unet"].train(), modules["vae"].eval(), sched_cfg, embedding, defaults


def _empty_prompt(folder: Path, source: str, encoder_class, tokenizer_class) -> torch.Tensor:
    """The text encoder's output for the empty prompt, [1,L,D], as the pipeline computes it once."""
    what = "Marigold text encoder"
    cfg = read_config(folder / "text_encoder", f"{source}/text_encoder", what, ("clip_text_model",))
    encoder = load_weights(encoder_class, folder / "text_encoder", f"{source}/text_encoder", what, cfg).eval()
    try:
        tokenizer = tokenizer_class.from_pretrained(folder / "tokenizer", local_files_only=True)
    except Exception as e:
        raise DepthforgeError(f"{source}/tokenizer: the Marigold tokenizer cannot be loaded "
                              f"({error_line(e, whole=True)})") from None
    ids = tokenizer("", padding="do_not_pad", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    with torch.no_grad():
        return encoder(ids)[0]
