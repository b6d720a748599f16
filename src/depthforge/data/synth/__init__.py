"""Built-in synthetic indoor scenes: a small numpy ray caster with exact ground-truth depth, and benchmark suites.

Modules, by job: ``shapes`` (primitives), ``textures`` (albedo patterns and palettes), ``raycast`` (camera,
first hits, lights, shading), ``layout`` (where things go), ``furniture`` (a builder per kind), ``scenes``
(random rooms per split and index), ``sensor`` (Kinect-like holes), ``writer`` (folders on disk), ``dataset``
(the registered ``synth`` dataset), ``video`` (the registered ``synth-video`` clips with poses).
"""
from __future__ import annotations

from .dataset import SynthDataset
from .furniture import BUILDERS, FURNITURE
from .params import EPS
from .raycast import (BACKGROUND, SHADOW_BIAS, Camera, Light, Scene, camera_rays, camera_rotation, first_hits,
                      primary_hits, render, world_rays)
from .scenes import SEED_TAG, SPLITS, random_scene, render_scene, scene_rng, synth_intrinsics
from .sensor import kinect_holes
from .shapes import Box, Cylinder, Plane, Room, Shape, Sphere
from .textures import Texture, value_noise
from .video import SynthVideo, check_clip
from .writer import render_rate, write_clip, write_dataset

__all__ = ["BUILDERS", "FURNITURE", "EPS", "BACKGROUND", "SHADOW_BIAS", "SEED_TAG", "SPLITS", "Box", "Camera",
           "Cylinder", "Light", "Plane", "Room", "Scene", "Shape", "Sphere", "SynthDataset", "SynthVideo", "Texture",
           "camera_rays", "camera_rotation", "check_clip", "first_hits", "kinect_holes", "primary_hits",
           "random_scene", "render", "render_rate", "render_scene", "scene_rng", "synth_intrinsics", "value_noise",
           "world_rays", "write_clip", "write_dataset"]
