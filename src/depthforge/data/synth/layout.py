"""Where things go in a room: free floor spots mostly in the camera's view, spots against walls, and tops that
small items rest on."""
from __future__ import annotations

import math

import numpy as np


class RoomLayout:
    """Floor footprints (circles) and support tops, so that new objects stand clear of others and the camera."""

    def __init__(self, rng, room: tuple, cam_xz: np.ndarray, yaw: float, hfov: float):
        self.rng, self.room, self.cam, self.hfov = rng, room, cam_xz, hfov
        self.forward = np.array([-math.sin(yaw), -math.cos(yaw)])  # camera's look direction in (x, z)
        self.circles: list[tuple[float, float, float]] = []
        self.on_walls: list[tuple[float, float, float]] = []  # pictures and doors
        self.tops: list[dict] = []  # horizontal box tops things can rest on

    def _in_view(self) -> np.ndarray:
        """A floor point (x, z) inside the camera's horizontal field of view, between it and the walls."""
        a = math.atan2(self.forward[1], self.forward[0]) + self.rng.uniform(-0.55, 0.55) * self.hfov
        ray = np.array([math.cos(a), math.sin(a)])
        with np.errstate(divide="ignore"):
            to_wall = np.max([-self.cam / ray, (np.asarray(self.room)[[0, 2]] - self.cam) / ray], axis=0).min()
        return self.cam + self.rng.uniform(0.8, max(1.0, to_wall)) * ray

    def _free(self, x: float, z: float, r: float, clearance: float = 0.7, in_room: bool = True) -> bool:
        w, _, d = self.room
        if in_room and not (r <= x <= w - r and r <= z <= d - r):
            return False
        if math.hypot(x - self.cam[0], z - self.cam[1]) < r + clearance:
            return False
        return all(math.hypot(x - cx, z - cz) >= r + cr for cx, cz, cr in self.circles)

    def spot(self, r: float):
        """A free floor point (x, z) for an object of footprint radius r, mostly in view; None if none found."""
        w, _, d = self.room
        for _ in range(25):
            x, z = self._in_view() if self.rng.random() < 0.8 else self.rng.uniform([0, 0], [w, d])
            if self._free(x, z, r):
                self.circles.append((x, z, r))
                return x, z
        return None

    def wall_spot(self, width: float, depth: float, hangs: bool = False):
        """Against a wall: (x, z, yaw, inward normal (x, z)) for a width x depth footprint, or None.

        Things that ``hangs`` (pictures, doors) only keep clear of each other, not of furniture."""
        w, _, d = self.room
        for _ in range(25):
            x, z = self._in_view() if self.rng.random() < 0.8 else self.rng.uniform([0, 0], [w, d])
            x, z = min(max(x, 0.0), w), min(max(z, 0.0), d)
            gaps = [x, w - x, z, d - z]
            wall = int(np.argmin(gaps))
            normal = [(1, 0), (-1, 0), (0, 1), (0, -1)][wall]
            off = depth / 2 + 0.01
            if wall < 2:
                x, z, yaw = (off if wall == 0 else w - off), min(max(z, width / 2), d - width / 2), math.pi / 2
            else:
                x, z, yaw = min(max(x, width / 2), w - width / 2), (off if wall == 2 else d - off), 0.0
            r = math.hypot(width, depth) / 2
            if hangs:
                if all(math.hypot(x - cx, z - cz) >= r + cr for cx, cz, cr in self.on_walls):
                    self.on_walls.append((x, z, r))
                    return x, z, yaw, normal
            elif self._free(x, z, r * 0.9, in_room=False):  # (x, z) is already against the wall
                self.circles.append((x, z, r * 0.9))
                return x, z, yaw, normal
        return None

    def add_top(self, y: float, center: tuple, hx: float, hz: float, yaw: float):
        self.tops.append({"y": y, "center": center, "hx": hx, "hz": hz, "yaw": yaw, "items": []})

    def top_spot(self, r: float):
        """A free point (x, y, z) on some support top for an item of radius r; None if none found."""
        for _ in range(10):
            if not self.tops:
                return None
            top = self.tops[self.rng.integers(len(self.tops))]
            if top["hx"] < r or top["hz"] < r:
                continue
            lx, lz = self.rng.uniform(-1, 1, 2) * (top["hx"] - r, top["hz"] - r)
            c, s = math.cos(top["yaw"]), math.sin(top["yaw"])
            x, z = top["center"][0] + c * lx + s * lz, top["center"][1] - s * lx + c * lz
            if all(math.hypot(x - ix, z - iz) >= r + ir for ix, iz, ir in top["items"]):
                top["items"].append((x, z, r))
                return x, top["y"], z
        return None


def rot_xz(yaw: float, lx: float, lz: float) -> tuple[float, float]:
    c, s = math.cos(yaw), math.sin(yaw)
    return c * lx + s * lz, -s * lx + c * lz
