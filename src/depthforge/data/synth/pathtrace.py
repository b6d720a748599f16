"""Path tracing with Mitsuba 3 (``scalar_rgb``; its llvm variants crash here): the image of a ray-cast scene, for
the glass suite (refraction, reflection) and for any synthetic room when a recipe asks for that look
(``synth`` option ``renderer: mitsuba``), so that a model can be trained on what the glass suite tests it on.

Deviations from the ray caster: one mean colour per piece of furniture (walls and floors keep their textures); the
ambient light becomes a light at the camera; the pixel filter is a box, so edges are anti-aliased in the image
while depth and masks are sampled at pixel centres.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import DepthforgeError
from .shapes import Box, Cylinder, Room, Sphere
from .textures import Texture

IOR = 1.5  # crown glass
TEXTURE_RES = 256  # texels along a wall's longer side
LIGHT_DROP = 0.6  # metres; see mitsuba_scene
# OpenCV non-local means strength at 32 spp (grey levels): the noise's std, ~10 grey levels at 32 spp, falls to
# ~3.5 (measured on a 120×160 glass scene); the noise and the strength go as 1/sqrt(spp)
DENOISE_H_32SPP = 10.0


def square_pixels(k: np.ndarray) -> np.ndarray:
    """Intrinsics with fy = fx: Mitsuba's pinhole has square pixels (NYU's fy differs from fx by 0.1 %)."""
    k = np.array(k, np.float32)
    k[1, 1] = k[0, 0]
    return k


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


def render_image(scene, materials: list | None = None, spp: int = 32, seed: int = 0, denoise: bool = True
                 ) -> np.ndarray:
    """Mitsuba's image of a ray-cast ``Scene`` (its camera must have square pixels: ``square_pixels``) in the ray
    caster's look (soft exposure, display gamma): (H,W,3) float32 in [0,1]. ``materials``: per shape "diffuse"
    (default), "glass" or "mirror"; ``denoise``: OpenCV's non-local means, its strength scaled with 1/√spp."""
    mi = _mitsuba()
    materials = materials if materials is not None else ["diffuse"] * len(scene.shapes)
    linear = np.asarray(mi.render(mitsuba_scene(scene, materials, spp, seed)), np.float32)[..., :3]
    image = (1 - np.exp(-1.5 * np.maximum(linear, 0))) ** np.float32(1 / 2.2)
    if not denoise:
        return image.astype(np.float32)
    import cv2

    h = DENOISE_H_32SPP * math.sqrt(32 / spp)
    u8 = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return cv2.fastNlMeansDenoisingColored(u8, None, h, h, 7, 21).astype(np.float32) / 255
