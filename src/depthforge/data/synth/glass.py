"""The ``glass`` suite: rooms with glass panes, glass tables, glass bottles and balls, and mirrors, rendered with
Mitsuba 3 (path tracing, so glass refracts and reflects), with exact depth from the same primitives.

The image comes from Mitsuba (``scalar_rgb``; its llvm variants crash here); depth, the glass mask and the depth
seen through glass come from this package's ray caster on the very primitives handed to Mitsuba, at the pixel
centres (a test checks Mitsuba's own ray intersections against them). Ground truth follows two conventions:
``depth`` is the first surface, glass included (ClearGrasp, Sajjan et al. 2020); ``depth_through`` is what an
active sensor such as a Kinect reads: straight through glass (panes bend the ray by millimetres; solid bottles
and balls would bend it more, which this ignores) and, at a mirror, the distance along the reflected ray (the
mirror image behind the glass). ``glass`` marks the pixels whose first hit is glass or a mirror.

Paired twin: every scene is rendered a second time with the same renderer, camera, lights and sampler seed but
without its glass and mirrors (``twin_image``, ``twin_depth``): a model's error inside the glass mask minus its
error there on the twin is what the glass costs, with the path tracer's look (its noise, its light) cancelled —
the rooms the models train on are ray cast, and off the glass the rendered scenes alone raised AbsRel ~1.6×.
Both images are denoised (OpenCV's non-local means, strength scaled with 1/√spp) so that Monte Carlo noise does
not dominate either.

Deviations: one mean colour per piece of furniture (walls and floors keep their textures); the ambient light of
the ray-cast rooms becomes a light at the camera; the pixel filter is a box, so edges are anti-aliased in the image
while depth and masks are sampled at pixel centres.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ...errors import DepthforgeError
from .furniture import rot_xz
from .raycast import first_hits, primary_hits
from .scenes import random_scene
from .shapes import Box, Cylinder, Room, Sphere
from .textures import Texture, random_texture

MIX = {"table": 0.15, "chair": 0.1, "cabinet": 0.15, "crate": 0.15, "round": 0.1, "ball": 0.1, "picture": 0.1,
       "sofa": 0.1, "lamp": 0.05}  # ordinary furniture around the glass
GLASS_KINDS = {"pane": 0.25, "table": 0.15, "bottle": 0.25, "ball": 0.1, "mirror": 0.25}
IOR = 1.5  # crown glass
MAX_BOUNCES = 4  # mirror-to-mirror reflections followed for depth_through
TEXTURE_RES = 256  # texels along a wall's longer side
LIGHT_DROP = 0.6  # metres; see mitsuba_scene
# OpenCV non-local means strength at 32 spp (grey levels): the noise's std, ~10 grey levels at 32 spp, falls to
# ~3.5 (measured on a 120×160 glass scene); the noise and the strength go as 1/sqrt(spp)
DENOISE_H_32SPP = 10.0


def _glass_pieces(rng, lay, room: tuple, materials: dict) -> list:
    """3-6 glass or mirror pieces; ``materials`` gets id(shape) -> "glass" / "mirror" for each of them."""
    u = rng.uniform
    pieces = []
    kinds = list(GLASS_KINDS)
    p = np.array(list(GLASS_KINDS.values()))
    glass_tex = Texture("plain", (0.9, 0.95, 0.95))  # the ray caster's look of glass (Mitsuba ignores it)
    for kind in rng.choice(kinds, size=rng.integers(3, 7), p=p / p.sum()):
        yaw = u(0, math.pi)
        piece, mat = [], "glass"
        if kind == "pane":  # a standing sheet: a partition, a window leaning on nothing
            wd, ht, th = u(0.6, 1.5), u(0.8, 2.0), u(0.008, 0.012)
            at = lay.spot(wd / 2)
            if at is not None:
                piece = [Box((at[0], ht / 2, at[1]), (wd / 2, ht / 2, th / 2), yaw, glass_tex)]
        elif kind == "table":  # a glass top on four metal legs
            wd, dp, ht, th = u(0.6, 1.4), u(0.5, 0.9), u(0.45, 0.78), u(0.01, 0.02)
            at = lay.spot(math.hypot(wd, dp) / 2)
            if at is not None:
                x, z = at
                legs = random_texture(rng, "neutral", ("plain",))
                piece = [Box((x, ht - th / 2, z), (wd / 2, th / 2, dp / 2), yaw, glass_tex)]
                for sx in (-1, 1):
                    for sz in (-1, 1):
                        ox, oz = rot_xz(yaw, sx * (wd / 2 - 0.05), sz * (dp / 2 - 0.05))
                        piece.append(Cylinder((x + ox, 0.0, z + oz), ht - th, 0.015, legs))
                lay.add_top(ht, (x, z), wd / 2, dp / 2, yaw)
        elif kind in ("bottle", "ball"):  # solid glass on a top if there is one, else on the floor
            r = u(0.03, 0.07) if kind == "bottle" else u(0.05, 0.15)
            at = lay.top_spot(r)
            if at is None:
                spot = lay.spot(r)
                at = None if spot is None else (spot[0], 0.0, spot[1])
            if at is not None:
                x, y, z = at
                piece = [Cylinder((x, y, z), u(0.12, 0.35), r, glass_tex) if kind == "bottle"
                         else Sphere((x, y + r, z), r, glass_tex)]
        else:  # a mirror on a wall
            mat = "mirror"
            wd, ht = u(0.4, 1.2), u(0.5, 1.6)
            at = lay.wall_spot(wd, 0.01, hangs=True)
            if at is not None:
                x, z, wyaw, _ = at
                y = min(u(0.3, 1.0) + ht / 2, room[1] - 0.05 - ht / 2)
                piece = [Box((x, y, z), (wd / 2, ht / 2, 0.005), wyaw, glass_tex)]
        if piece:
            materials[id(piece[0])] = mat
            pieces.append(piece)
    return pieces


def glass_scene(rng: np.random.Generator, k: np.ndarray, size: tuple[int, int]):
    """A random room with furniture and glass -> (Scene, materials: per shape "diffuse", "glass" or "mirror")."""
    by_id: dict = {}
    scene = random_scene(rng, k, size, mix=MIX, count=(2, 7),
                         extras=lambda r, lay, room: _glass_pieces(r, lay, room, by_id))
    return scene, [by_id.get(id(s), "diffuse") for s in scene.shapes]


def glass_geometry(scene, materials: list) -> dict:
    """Exact ground truth at the pixel centres: {"depth" (H,W) float32 first surface, glass included;
    "depth_through" (H,W) float32 straight through glass and along mirror reflections (0 where a ray is still
    bouncing after MAX_BOUNCES); "glass" (H,W) bool first hit is glass or a mirror; "shape" (H,W) int16}."""
    cam = scene.camera
    d, t, ids = primary_hits(scene.shapes, cam)
    glass = {i for i, m in enumerate(materials) if m == "glass"}
    mirror = np.array([m == "mirror" for m in materials] + [False])  # index -1: nothing
    special = np.array([m != "diffuse" for m in materials] + [False])
    mask = special[ids]
    through = t.copy()
    sel = np.flatnonzero(mask.ravel())
    o = np.broadcast_to(np.asarray(cam.position, np.float32)[:, None], (3, sel.size)).copy()
    dirs = d.reshape(3, -1)[:, sel].copy()
    path = np.zeros(sel.size, np.float32)
    flat = through.reshape(-1)
    flat[sel] = 0
    live = np.arange(sel.size)
    for _ in range(MAX_BOUNCES + 1):
        tt, hit = first_hits(scene.shapes, o[:, live], dirs[:, live], skip=glass)
        ends = ~mirror[hit]
        flat[sel[live[ends]]] = np.where(np.isfinite(tt[ends]), path[live[ends]] + tt[ends], 0)
        bounce = live[~ends]
        if not bounce.size:
            break
        tb, hb = tt[~ends], hit[~ends]
        p = o[:, bounce] + tb * dirs[:, bounce]
        for j in np.unique(hb):
            m = hb == j
            n = scene.shapes[j].normal_at(p[:, m])
            dm = dirs[:, bounce[m]]
            dirs[:, bounce[m]] = dm - 2 * (dm * n).sum(0) * n  # same length: t keeps counting depth units
        o[:, bounce] = p
        path[bounce] += tb
        live = bounce
    depth = np.where(np.isfinite(t), t, 0).astype(np.float32)
    return {"depth": depth, "depth_through": through.astype(np.float32), "glass": mask, "shape": ids}


# ---------------------------------------------------------------------------------------------- Mitsuba

def _mitsuba():
    try:
        import mitsuba as mi
    except ImportError:
        raise DepthforgeError("synth: the glass suite renders with Mitsuba 3: pip install mitsuba") from None
    if mi.variant() is None:
        mi.set_variant("scalar_rgb")  # the llvm variants crash on this machine; scalar is enough at this size
    return mi


def _matrix(x_axis, y_axis, z_axis, origin):
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x_axis, y_axis, z_axis, origin
    return m


def _mean_color(tex: Texture) -> list:
    c0 = np.asarray(tex.color)
    return (c0 if tex.kind == "plain" else (c0 + np.asarray(tex.color2)) / 2).tolist()


def _diffuse(mi, reflectance) -> dict:
    return {"type": "twosided", "material": {"type": "diffuse", "reflectance": reflectance}}


def _room_faces(mi, room: Room) -> dict:
    """The six inside faces as rectangles with their textures baked into bitmaps (world-fixed, as ray cast)."""
    w, h, d = room.size
    # (texture, centre, half-extent axes u and v, normal)
    faces = [(room.walls[0], (0, h / 2, d / 2), (0, 0, d / 2), (0, h / 2, 0), (1, 0, 0)),
             (room.walls[1], (w, h / 2, d / 2), (0, 0, d / 2), (0, h / 2, 0), (-1, 0, 0)),
             (room.floor, (w / 2, 0, d / 2), (w / 2, 0, 0), (0, 0, d / 2), (0, 1, 0)),
             (room.ceiling, (w / 2, h, d / 2), (w / 2, 0, 0), (0, 0, d / 2), (0, -1, 0)),
             (room.walls[2], (w / 2, h / 2, 0), (w / 2, 0, 0), (0, h / 2, 0), (0, 0, 1)),
             (room.walls[3], (w / 2, h / 2, d), (w / 2, 0, 0), (0, h / 2, 0), (0, 0, -1))]
    out = {}
    for n, (tex, c, a, b, normal) in enumerate(faces):
        a, b, c = np.asarray(a, float), np.asarray(b, float), np.asarray(c, float)
        la, lb = np.linalg.norm(a), np.linalg.norm(b)
        nu = max(2, int(TEXTURE_RES * la / max(la, lb)))
        nv = max(2, int(TEXTURE_RES * lb / max(la, lb)))
        # Mitsuba's rectangle: local [-1,1]^2, uv = (local + 1) / 2, bitmap row = v, column = u.
        s = (np.arange(nu) + 0.5) / nu * 2 - 1
        t = (np.arange(nv) + 0.5) / nv * 2 - 1
        pts = c[:, None, None] + a[:, None, None] * s[None, None, :] + b[:, None, None] * t[None, :, None]
        albedo = tex(pts.reshape(3, -1).astype(np.float32)).reshape(3, nv, nu).transpose(1, 2, 0)
        bitmap = {"type": "bitmap", "bitmap": mi.Bitmap(np.ascontiguousarray(albedo, np.float32)), "raw": True}
        shape = {"type": "rectangle", "to_world": mi.ScalarTransform4f(_matrix(a, b, normal, c).tolist()),
                 "bsdf": _diffuse(mi, bitmap)}
        out[f"room{n}"] = shape
    return out


def _shape_dicts(mi, i: int, shape, material: str) -> dict:
    """Mitsuba shapes (exact, not tessellated where Mitsuba has the primitive) for shape ``i``."""
    if material == "glass":
        bsdf = {"type": "dielectric", "int_ior": IOR, "ext_ior": 1.0}
    elif material == "mirror":
        bsdf = {"type": "conductor", "material": "Ag"}
    else:
        bsdf = _diffuse(mi, {"type": "rgb", "value": _mean_color(shape.texture)})
    if isinstance(shape, Box):
        c, s = math.cos(shape.yaw), math.sin(shape.yaw)
        hx, hy, hz = shape.half
        m = _matrix((c * hx, 0, -s * hx), (0, hy, 0), (s * hz, 0, c * hz), shape.center)  # local -> world
        return {f"s{i}": {"type": "cube", "to_world": mi.ScalarTransform4f(m.tolist()), "bsdf": bsdf}}
    if isinstance(shape, Sphere):
        return {f"s{i}": {"type": "sphere", "center": list(shape.center), "radius": shape.radius, "bsdf": bsdf}}
    if isinstance(shape, Cylinder):  # Mitsuba's cylinder is open: cap it with two disks facing out
        bx, y0, bz = shape.base
        r, y1 = shape.radius, y0 + shape.height
        top = _matrix((r, 0, 0), (0, 0, -r), (0, 1, 0), (bx, y1, bz))
        bottom = _matrix((r, 0, 0), (0, 0, r), (0, -1, 0), (bx, y0, bz))
        return {f"s{i}": {"type": "cylinder", "p0": [bx, y0, bz], "p1": [bx, y1, bz], "radius": r, "bsdf": bsdf},
                f"s{i}_top": {"type": "disk", "to_world": mi.ScalarTransform4f(top.tolist()), "bsdf": bsdf},
                f"s{i}_bottom": {"type": "disk", "to_world": mi.ScalarTransform4f(bottom.tolist()), "bsdf": bsdf}}
    raise DepthforgeError(f"synth: no Mitsuba shape for {type(shape).__name__}")


def mitsuba_scene(scene, materials: list, spp: int = 32, seed: int = 0, max_depth: int = 5):
    """The Mitsuba 3 scene of a ray-cast ``Scene``: same camera (square pixels, fx), shapes and lights.

    Point lights keep their irradiance (Mitsuba intensity = pi * ours, so a white wall reflects what the ray
    caster shades) but hang at least LIGHT_DROP below the ceiling (the ray caster clamps the distance of a
    light to 0.5 m; a path tracer would bounce a hot spot above it around as fireflies). ``max_depth``: the
    path length (5: through a pane and back from a mirror, with one diffuse bounce of indirect light)."""
    mi = _mitsuba()
    cam = scene.camera
    h, w = cam.size
    k = np.asarray(cam.k, float)
    rot = np.asarray(cam.rotation, float) @ np.diag([-1.0, -1.0, 1.0])  # Mitsuba's camera: x left, y up
    sensor = {"type": "perspective", "fov_axis": "x", "fov": math.degrees(2 * math.atan(w / 2 / k[0, 0])),
              "principal_point_offset_x": (w / 2 - 0.5 - k[0, 2]) / w,
              "principal_point_offset_y": (h / 2 - 0.5 - k[1, 2]) / h,
              "near_clip": 1e-3, "far_clip": 1e3,
              "to_world": mi.ScalarTransform4f(_matrix(*rot.T, cam.position).tolist()),
              "sampler": {"type": "independent", "sample_count": int(spp), "seed": int(seed)},
              "film": {"type": "hdrfilm", "width": w, "height": h, "rfilter": {"type": "box"},
                       "pixel_format": "rgb"}}
    d = {"type": "scene", "integrator": {"type": "path", "max_depth": max_depth, "rr_depth": 4}, "sensor": sensor}
    for i, (shape, material) in enumerate(zip(scene.shapes, materials)):
        if isinstance(shape, Room):
            d.update(_room_faces(mi, shape))
        else:
            d.update(_shape_dicts(mi, i, shape, material))
    for j, light in enumerate(scene.lights):
        x, y, z = light.position  # kept LIGHT_DROP below the ceiling: a light right under it makes a hot spot
        y = min(y, scene.shapes[0].size[1] - LIGHT_DROP) if isinstance(scene.shapes[0], Room) else y
        d[f"light{j}"] = {"type": "point", "position": [x, y, z],
                          "intensity": {"type": "rgb", "value": [math.pi * v for v in light.intensity]}}
    # The ambient term: a light at the camera (a flash) giving ``ambient`` at 3 m. A glowing ceiling would be
    # closer to the ray caster's look but costs a third more noise at the same samples per pixel.
    d["flash"] = {"type": "point", "position": list(cam.position),
                  "intensity": {"type": "rgb", "value": [math.pi * 9 * scene.ambient] * 3}}
    return mi.load_dict(d)


def _render(mi, scene, materials: list, spp: int, seed: int, denoise: bool) -> np.ndarray:
    """Mitsuba's image of ``scene`` in the ray caster's look (soft exposure, display gamma), float32 [0,1]."""
    linear = np.asarray(mi.render(mitsuba_scene(scene, materials, spp, seed)), np.float32)[..., :3]
    image = (1 - np.exp(-1.5 * np.maximum(linear, 0))) ** np.float32(1 / 2.2)
    if not denoise:
        return image.astype(np.float32)
    import cv2

    h = DENOISE_H_32SPP * math.sqrt(32 / spp)
    u8 = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return cv2.fastNlMeansDenoisingColored(u8, None, h, h, 7, 21).astype(np.float32) / 255


def render_glass(rng: np.random.Generator, k: np.ndarray, size: tuple[int, int], spp: int = 32,
                 denoise: bool = True) -> dict:
    """One glass-suite sample: {"image" (H,W,3) float32 in [0,1], "depth", "depth_through" (H,W) float32 metres,
    "glass" (H,W) bool, "intrinsics" (3,3) float32 (square pixels: fy = fx), and its twin without glass and
    mirrors: "twin_image", "twin_depth"}. ``spp``: Mitsuba samples per pixel; ``denoise``: see the module."""
    mi = _mitsuba()
    k = np.array(k, np.float32)
    k[1, 1] = k[0, 0]  # Mitsuba's pinhole has square pixels (NYU's fy differs from fx by 0.1 %)
    scene, materials = glass_scene(rng, k, size)
    seed = int(rng.integers(2 ** 31))
    keep = [i for i, m in enumerate(materials) if m == "diffuse"]
    twin = replace(scene, shapes=[scene.shapes[i] for i in keep],
                   objects=[scene.objects[i] for i in keep] if scene.objects else [])
    plain = ["diffuse"] * len(keep)
    gt = glass_geometry(scene, materials)
    return {"image": _render(mi, scene, materials, spp, seed, denoise), "depth": gt["depth"],
            "depth_through": gt["depth_through"], "glass": gt["glass"], "intrinsics": k,
            "twin_image": _render(mi, twin, plain, spp, seed, denoise),
            "twin_depth": glass_geometry(twin, plain)["depth"]}
