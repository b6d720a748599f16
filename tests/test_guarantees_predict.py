"""What ``depthforge predict`` (and every reader it shares with serve and the datasets) guarantees, checked as
properties over many generated cases: it writes only inside --out and maps no two inputs to one output; every
image's size is bounded from its header before memory is spent; all inputs of an image are checked before
anything is written for it; and whatever an input folder holds (named pipes, symlink loops) costs a line."""
from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import depthforge
from depthforge.cli import main
from depthforge.data.io import MAX_PIXELS, read_image
from depthforge.inference.photos import OUTPUT_SUFFIXES, output_names

from conftest import make_checkpoint

SRC = Path(depthforge.__file__).parents[1]  # the subprocesses import the depthforge under test
PER_IMAGE = 3  # NAME_color.png, NAME_depth.png, NAME.npy (no --gt, no --ply, a model within 65 m)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("model") / "m.ckpt")


def photo(path: Path, seed: int, size=(20, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (*size, 3), np.uint8)).save(path)
    return path


def clip(path: Path, frames: int = 2, size=(24, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size[::-1])
    for i in range(frames):
        writer.write(np.full((*size, 3), 40 * i, np.uint8))
    writer.release()
    return path


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.fixture
def root_entries():
    """The filesystem root's entries before the test; any plain output file a failing run left there is
    removed afterwards (today's code wrote /_tmp_..._ok_png_0_color.png)."""
    before = set(os.listdir("/"))
    yield before
    for name in set(os.listdir("/")) - before:
        p = Path("/") / name
        if p.is_file() and name.endswith((*OUTPUT_SUFFIXES, ".npy", ".ply", "_depth.mp4")):
            p.unlink()


# --- (a) outputs stay inside --out, one per distinct input ------------------------------------------------

def test_output_names_are_plain_and_distinct_for_any_list_of_paths():
    """Over random lists of paths (repeats, the same stem in many folders, root-level files, names that look
    like another's disambiguated name), every name is a plain file name and no two are equal."""
    rng = np.random.default_rng(0)
    parts = ["a", "b", "a_b", "x", "x_png", "..", ".", "deep"]
    stems = ["x", "x_png", "a_x", "clip", "x_1", ".hidden"]
    for case in range(400):
        paths = []
        for _ in range(rng.integers(1, 9)):
            folders = [str(rng.choice(parts)) for _ in range(rng.integers(0, 4))]
            name = f"{rng.choice(stems)}.{rng.choice(['png', 'jpg', 'mp4'])}"
            start = str(rng.choice(["/", "", "./", "/tmp/"]))
            paths.append(Path(start + "/".join([*folders, name])))
        names = output_names(paths)
        assert len(set(names)) == len(names), (paths, names)
        for n in names:
            assert "/" not in n and os.sep not in n and n not in ("", ".", ".."), (paths, n)
            assert (Path("/out") / f"{n}_color.png").parent == Path("/out")


def spellings(root: Path, rel: str) -> list[str]:
    """Ways to name ``root/rel`` from the working folder ``root/work``: relative, with ./ and ../ detours,
    doubled slashes, absolute."""
    first, _, rest = rel.partition("/")
    return [f"../{rel}", f"./../{rel}", str(root / rel), f"../b/../{rel}", f"../{first}//{rest}" if rest else
            f"..//{first}", f"{root}/work/../{rel}"]


def test_predict_writes_only_inside_out_and_one_output_per_distinct_input(ckpt, tmp_path, monkeypatch, capsys,
                                                                         root_entries):
    """Generated input lists — the same file in several spellings, through a symlink, inside a folder also given,
    the same stem in other folders and suffixes, an image and a video of one stem, two videos of one name —
    write exactly PER_IMAGE files per distinct image and one per distinct video, all inside --out, and nothing
    anywhere else (the temporary root, the working folder, the filesystem root)."""
    root = tmp_path
    images = ["a/x.png", "a/x.jpg", "a/y.png", "b/x.png", "b/sub/x.png"]
    videos = ["a/clip.mp4", "b/clip.mp4", "a/x.mp4"]
    for i, rel in enumerate(images):
        photo(root / rel, i)
    for rel in videos:
        clip(root / rel)
    (root / "c").mkdir()
    (root / "c" / "alias.png").symlink_to("../a/x.png")
    (root / "work").mkdir()
    monkeypatch.chdir(root / "work")
    folders = {"a": ["a/x.png", "a/x.jpg", "a/y.png"], "b/sub": ["b/sub/x.png"]}  # a plain folder: its own images
    files = images + videos + ["c/alias.png"]
    rng = np.random.default_rng(1)
    for case in range(14):
        chosen: list[str] = []
        given: list[str] = []
        for _ in range(rng.integers(1, 7)):
            rel = str(rng.choice(files + list(folders)))
            given.append(str(rng.choice(spellings(root, rel))))
            chosen += folders.get(rel, [rel])
        out_rel = f"out{case}" if case % 2 else str(root / "work" / f"out{case}")
        out = root / "work" / f"out{case}"
        real = {os.path.realpath(root / c) for c in chosen}
        n_images = len({r for r in real if not r.endswith(".mp4")})
        n_videos = len(real) - n_images
        before, top = files_under(root), set(os.listdir("/"))
        code = main(["predict", *given, "--checkpoint", str(ckpt), "--out", out_rel, "--device", "cpu",
                     "--max-frames", "2"])
        printed = capsys.readouterr().out
        new = files_under(root) - before
        assert code == 0, (given, printed)
        assert set(os.listdir("/")) == top, (given, set(os.listdir("/")) - top)
        assert all(p.is_relative_to(out) for p in new), (given, sorted(map(str, new)))
        written = sorted(p.name for p in out.iterdir())
        assert len(written) == PER_IMAGE * n_images + n_videos, (given, written)
        assert f"{n_images + n_videos} written" in printed, (given, printed)


# --- (d) every input's size is bounded before memory is spent ---------------------------------------------

def bomb_png(width: int, height: int, color_type: int, bit_depth: int) -> bytes:
    """A PNG of zeros that claims width x height: kilobytes on disk, hundreds of MB once decoded.
    color_type 0 grey, 2 RGB, 3 palette."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    channels = {0: 1, 2: 3, 3: 1}[color_type]
    row = b"\0" * (1 + (width * channels * bit_depth + 7) // 8)
    z = zlib.compressobj(6)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    palette = chunk(b"PLTE", bytes(range(6))) if color_type == 3 else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))
            + palette + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


MEASURE = textwrap.dedent("""
    import io, json, sys
    from pathlib import Path

    def peak_mb(op):
        # VmHWM reset to the current size, the operation, then how far the peak rose above where it started
        open("/proc/self/clear_refs", "w").write("5")
        rss = status("VmRSS")
        result = op()
        return result, (status("VmHWM") - rss) / 1024

    def status(key):
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key + ":"))

    err = io.StringIO()
    sys.stderr = err  # the CLI's log handler binds it at its first run
    import depthforge
    from depthforge.cli import main
    from depthforge.data.check import check_dataset
    from depthforge.serve.app import create_app
    from fastapi.testclient import TestClient

    def run(cases, ckpt, work):
        client = TestClient(create_app(depthforge.load(ckpt, device="cpu"), workdir=str(work / "serve")))
        main(["predict", cases[0]["small"], "--checkpoint", ckpt, "--out", str(work / "warm"), "--device", "cpu"])
        for case in cases:
            bomb = case["bomb"]
            def predict():
                start = err.tell()
                code = main(["predict", bomb, "--checkpoint", ckpt, "--out", str(work / "out"), "--device", "cpu"])
                return code, err.getvalue()[start:]
            def serve():
                data = Path(bomb).read_bytes()
                r = client.post("/api/predict", files={"file": (Path(bomb).name, data, "image/png")})
                return r.status_code, r.json().get("detail", r.text[:80]) + "\\n"
            def dataset(folder):
                def check():
                    report = check_dataset({"name": "folder", "root": folder}, splits=("test",), progress=False)
                    problems = report.splits[0].problems
                    return len(problems), "".join(p.message + "\\n" for p in problems)
                return check
            for reader, op in [("predict", predict), ("serve", serve), ("rgb", dataset(case["rgb"])),
                               ("depth", dataset(case["depth"]))]:
                (code, text), mb = peak_mb(op)
                print(json.dumps({"bomb": bomb, "reader": reader, "code": code, "text": text, "mb": mb}), flush=True)

    try:
        run(json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
    except BaseException:
        import traceback
        traceback.print_exc(file=sys.__stderr__)
        raise
""")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak memory is read from Linux's /proc")
def test_huge_dimension_images_are_refused_from_the_header_by_every_reader(ckpt, tmp_path):
    """Generated PNGs of a few kB that claim 41-400 MP (1-bit grey and palette, 8- and 16-bit grey, RGB) are
    refused in one line naming the file, its size and the limit — by predict, serve, and the folder dataset
    (as a photo and as a depth map) — while the process's peak memory rises by less than 500 MB."""
    rng = np.random.default_rng(2)
    kinds = [(0, 1, 400e6), (3, 1, 400e6), (0, 8, 120e6), (0, 16, 90e6), (2, 8, 60e6), (3, 8, 89e6)]
    cases = []
    for i, (color_type, bits, most) in enumerate(kinds):
        pixels = rng.uniform(MAX_PIXELS * 1.02, most)
        aspect = rng.uniform(0.5, 2.0)
        w = int(np.sqrt(pixels * aspect))
        h = int(pixels / w) + 1
        case = tmp_path / f"case{i}"
        bomb = case / f"bomb{i}_{w}x{h}.png"
        bomb.parent.mkdir(parents=True)
        bomb.write_bytes(bomb_png(w, h, color_type, bits))
        assert bomb.stat().st_size < 1_000_000
        for role in ("rgb", "depth"):  # one dataset with the bomb as the photo, one with it as the depth map
            photo(case / role / "rgb" / "0.png", i, size=(12, 16))
            (case / role / "depth").mkdir()
            Image.fromarray(np.full((12, 16), 1500, np.uint16)).save(case / role / "depth" / "0.png")
            (case / role / role / "0.png").write_bytes(bomb.read_bytes())
        cases.append({"bomb": str(bomb), "small": str(case / "depth" / "rgb" / "0.png"), "w": w, "h": h,
                      "rgb": str(case / "rgb"), "depth": str(case / "depth")})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "DEPTHFORGE_NO_MALLOC_TUNING": "1"}
    proc = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(cases), str(ckpt), str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 4 * len(cases), proc.stdout[-3000:]
    for row, case in zip(rows, [c for c in cases for _ in range(4)]):
        name = Path(case["bomb"]).name if row["reader"] in ("predict", "serve") else "0.png"
        lines = [line for line in row["text"].splitlines() if line.strip()]
        size = rf"({case['w']}x{case['h']} \()?{case['w'] * case['h'] / 1e6:.0f} MP\)?"
        assert len(lines) == 1 and re.search(rf"{name}: image is {size}; the limit is {MAX_PIXELS / 1e6:g} MP",
                                             lines[0]), row
        assert row["code"] == {"predict": 1, "serve": 413}.get(row["reader"], 1), row
        assert row["mb"] < 500, row


def test_a_video_of_huge_frames_is_refused_before_a_frame_is_decoded(ckpt, tmp_path, capsys):
    h, w = 6000, 7000  # 42 MP
    writer = cv2.VideoWriter(str(tmp_path / "huge.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (w, h))
    assert writer.isOpened()
    writer.write(np.zeros((h, w, 3), np.uint8))
    writer.release()
    assert main(["predict", str(tmp_path / "huge.avi"), "--checkpoint", str(ckpt), "--out", str(tmp_path / "out"),
                 "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(rf"error: \S*huge.avi: image is {w}x{h} \(42 MP\); the limit is 40 MP \(.*\)", err), err
    assert not any((tmp_path / "out").iterdir())


# --- what the photo path reads: orientation, 16-bit photos scaled down ------------------------------------

def test_predict_turns_photos_as_their_exif_orientation_says(ckpt, tmp_path, capsys):
    """The same decoder as serve: a portrait phone photo (stored landscape + orientation tag) gives a portrait
    depth map, for every orientation that swaps the axes and for those that do not."""
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / f"o{orientation}.jpg", exif=exif)
    assert main(["predict", str(tmp_path), "--checkpoint", str(ckpt), "--out", str(tmp_path / "out"),
                 "--device", "cpu"]) == 0
    for orientation in range(1, 9):
        shape = np.load(tmp_path / "out" / f"o{orientation}.npy").shape
        assert shape == ((40, 30) if orientation >= 5 else (30, 40)), (orientation, shape)


def test_16_bit_photos_keep_their_values_when_scaled_down_to_the_work_size():
    """Over random 16-bit grey images (ramps, noise), the reader's scaled-down image has the full image's mean
    and is never clipped white (Pillow's own 16->8 bit convert clips everything above 255)."""
    rng = np.random.default_rng(3)
    for _ in range(12):
        h, w = rng.integers(40, 300, 2)
        a = (rng.uniform(0, 1, (h, w)) * rng.uniform(0.05, 1) * 65535).astype(np.uint16)
        if rng.random() < 0.5:
            a = np.sort(a, axis=1)  # a ramp
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "PNG")
        full = read_image("g16.png", buf.getvalue())
        small = read_image("g16.png", buf.getvalue(), work_pixels=int(h * w * rng.uniform(0.1, 0.6)))
        assert small.shape[0] * small.shape[1] < h * w
        assert abs(small.mean() - full.mean()) < 0.02 and (small >= 1).mean() < 0.01, (small.mean(), full.mean())


def test_serve_does_not_turn_a_large_16_bit_png_white(ckpt, tmp_path):
    """The audit's case: a 16-bit PNG above serve's 4 MP work size came back 99.9 % white."""
    from depthforge.serve import WORK_PIXELS
    from depthforge.serve.app import create_app
    from fastapi.testclient import TestClient

    h, w = 2000, 2100
    assert h * w > WORK_PIXELS
    ramp = np.tile(np.linspace(0, 65535, w).astype(np.uint16), (h, 1))
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, "PNG")
    with TestClient(create_app(depthforge.load(ckpt, device="cpu"), workdir=str(tmp_path / "w"))) as c:
        body = c.post("/api/predict", files={"file": ("ramp16.png", buf.getvalue(), "image/png")}).json()
        seen = np.asarray(Image.open(io.BytesIO(c.get(body["urls"]["image.jpg"]).content)).convert("L"))
    assert abs(seen.mean() - 127.5) < 5 and (seen >= 250).mean() < 0.05, (seen.mean(), (seen >= 250).mean())


# --- all inputs of an image are checked before anything is written for it ---------------------------------

def test_a_bad_ground_truth_or_camera_writes_nothing_for_its_image(ckpt, tmp_path, capsys):
    """Each kind of bad --gt (wrong size, truncated, not an image, missing) and a bad camera from a dataset
    folder's intrinsics.txt cost their image one warning and no file; the good image beside it is written."""
    good = photo(tmp_path / "in" / "good.png", 0)
    bad = photo(tmp_path / "in" / "bad.png", 1)
    gts = tmp_path / "gt"
    gts.mkdir()
    Image.fromarray(np.full((20, 30), 1500, np.uint16)).save(gts / "good.png")
    cases = {"wrong size": lambda p: Image.fromarray(np.full((21, 30), 1500, np.uint16)).save(p),
             "truncated": lambda p: p.write_bytes((gts / "good.png").read_bytes()[:45]),
             "not an image": lambda p: p.write_text("hello"),
             "a folder": lambda p: p.mkdir()}
    for i, (kind, make) in enumerate(cases.items()):
        target = gts / "bad.png"
        if target.is_dir():
            target.rmdir()
        elif target.exists():
            target.unlink()
        make(target)
        out = tmp_path / f"out{i}"
        assert main(["predict", str(good), str(bad), "--checkpoint", str(ckpt), "--gt", str(gts), "--out", str(out),
                     "--device", "cpu"]) == 0
        assert "1 written" in capsys.readouterr().out
        written = sorted(p.name for p in out.iterdir())
        assert written == ["good.npy", "good_color.png", "good_depth.png", "good_panel.png"], (kind, written)
    # a dataset folder whose camera file says fx = 0: --ply cannot be made, so nothing is
    ds = tmp_path / "ds"
    photo(ds / "rgb" / "0.png", 2)
    (ds / "intrinsics.txt").write_text("0 0 8 6\n")
    assert main(["predict", str(ds), "--checkpoint", str(ckpt), "--ply", "--out", str(tmp_path / "o"),
                 "--device", "cpu"]) == 1
    assert list((tmp_path / "o").iterdir()) == []
    # and on the command line it is one error before any work
    assert main(["predict", str(good), "--checkpoint", str(ckpt), "--ply", "--intrinsics", "0", "0", "8", "6",
                 "--out", str(tmp_path / "o2"), "--device", "cpu"]) == 1
    assert "--intrinsics" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists() or list((tmp_path / "o2").iterdir()) == []


# --- whatever a folder holds costs a line, never a hang or a traceback ------------------------------------

RUN = textwrap.dedent("""
    import json, sys
    from depthforge.cli import main
    for argv in json.loads(sys.argv[1]):
        code = main(argv)
        print(json.dumps({"argv": argv, "code": code}), flush=True)
""")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_named_pipes_and_symlink_loops_never_hang_or_trace(ckpt, tmp_path):
    """A folder holding a named pipe called *.png, a symlink loop called *.png and a link to nothing is predicted
    (the good photo written, each odd entry one warning line); each given by name is one error line; a named pipe
    called *.mp4 too; a dataset folder whose photo or depth map is a named pipe costs that sample a line. Run in a
    subprocess: a blocked open() would hang the test."""
    folder = tmp_path / "in"
    photo(folder / "ok.png", 0)
    os.mkfifo(folder / "pipe.png")
    (folder / "loop.png").symlink_to("loop.png")
    (folder / "gone.png").symlink_to("nowhere.png")
    os.mkfifo(tmp_path / "pipe.mp4")
    ds = tmp_path / "ds"
    for i in range(3):
        photo(ds / "rgb" / f"{i}.png", i)
        (ds / "depth").mkdir(exist_ok=True)
        Image.fromarray(np.full((20, 30), 1500, np.uint16)).save(ds / "depth" / f"{i}.png")
    for fifo in (ds / "rgb" / "1.png", ds / "depth" / "2.png"):
        fifo.unlink()
        os.mkfifo(fifo)
    common = ["--checkpoint", str(ckpt), "--device", "cpu"]
    argvs = [["predict", str(folder), "--out", str(tmp_path / "out"), *common],
             ["predict", str(folder / "pipe.png"), "--out", str(tmp_path / "o1"), *common],
             ["predict", str(folder / "loop.png"), "--out", str(tmp_path / "o2"), *common],
             ["predict", str(tmp_path / "pipe.mp4"), "--out", str(tmp_path / "o3"), *common],
             ["predict", str(ds), "--out", str(tmp_path / "o4"), *common]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "DEPTHFORGE_NO_MALLOC_TUNING": "1"}
    proc = subprocess.run([sys.executable, "-c", RUN, json.dumps(argvs)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    codes = [json.loads(line)["code"] for line in proc.stdout.splitlines() if line.startswith("{")]
    assert codes == [0, 1, 1, 1, 0], (proc.stdout, proc.stderr)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok.npy", "ok_color.png", "ok_depth.png"]
    lines = proc.stderr.splitlines()
    for name, problem, times in [("pipe.png", "not a regular file", 2), ("loop.png", "symbolic links", 2),
                                 ("gone.png", "No such file", 1)]:  # in the folder, then given by name
        assert sum(name in line and problem in line for line in lines) == times, (name, proc.stderr)
    assert sum("pipe.mp4: not a regular file" in line for line in lines) == 1, proc.stderr
    assert sorted(p.name for p in (tmp_path / "o4").iterdir()) == ["0.npy", "0_color.png", "0_depth.png",
                                                                   "0_panel.png"], proc.stderr
    for name in ("rgb/1.png", "depth/2.png"):
        assert sum(f"{name}: not a regular file" in line for line in lines) >= 1, (name, proc.stderr)
