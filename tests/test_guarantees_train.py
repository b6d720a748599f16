"""Guarantees of `depthforge train`, tested as properties.

(c) A run folder has one writer at a time, and a run that did not finish says so with a non-zero exit after saving
    what it can (SIGTERM and SIGINT included); `--resume` then ends with the weights of an unbroken run.
(f) A value outside its meaning is refused in one line naming the key and the allowed range — for every field of
    the recipe schema, fed generated bad values — with nothing written.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest
import torch

from depthforge.cli import main
from depthforge.errors import DepthforgeError
from depthforge.recipe import Recipe, resolve

from conftest import make_checkpoint

TINY = ["data.n=24", "data.size=[32,48]", "test_data.n=4", "model.width=0.125", "model.levels=3",
        "train.batch_size=4", "train.precision=32-true", "train.accelerator=cpu", "--no-progress"]


def one_line(capsys, argv: list[str], code: int = 1) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and err.startswith("error: "), err
    return err


# --- (f) values: every field of the schema, fuzzed --------------------------------------------------------------

def _leaves():
    """(dotted key, pydantic field) for every closed field of the recipe, nested sections walked."""
    for name, field in Recipe.model_fields.items():
        section = next((a for a in (field.annotation, *typing.get_args(field.annotation))
                        if isinstance(a, type) and hasattr(a, "model_fields")), None)
        if section is None:
            yield name, field
        else:
            for sub, f in section.model_fields.items():
                yield f"{name}.{sub}", f


def _bounds(field) -> list:
    metas = list(field.metadata)
    stack = [field.annotation]
    while stack:  # constraints of the Annotated members of unions (a pair's own bounds: see _bad_values)
        ann = stack.pop()
        if typing.get_origin(ann) is typing.Annotated:
            metas += [m for a in typing.get_args(ann)[1:] for m in (getattr(a, "metadata", None) or [a])]
        if typing.get_origin(ann) not in (tuple, list):
            stack += list(typing.get_args(ann))
    return metas


# wrong types, non-finite numbers, empty and nested garbage: no field of the recipe takes any of them
GARBAGE = [".nan", ".inf", "-.inf", "[]", "{a: {b: [1, {c: .nan}]}}", "[[1, [2]], {x: y}]", "not-a-value-123"]


def _bad_values(key: str, field) -> list[str]:
    values = list(GARBAGE)
    for m in _bounds(field):  # just outside each stated bound, and far outside
        if getattr(m, "ge", None) is not None:
            values += [str(m.ge - 1), "-1e30"]
        if getattr(m, "gt", None) is not None:
            values += [str(m.gt), "-1e30"]
        if getattr(m, "le", None) is not None:
            values += [str(m.le + 1), "1e30"]
        if getattr(m, "lt", None) is not None:
            values += [str(m.lt), "1e30"]
    if typing.get_origin(field.annotation) is typing.Union and any(
            typing.get_origin(a) is tuple for a in typing.get_args(field.annotation)) or "size" in key:
        values += ["[0, 0]", "[1]", "[1, 2, 3]"]
    # "not-a-value-123" parses as text: a text field (name, out, strategy) may take it
    if str in (field.annotation, *typing.get_args(field.annotation)):
        values = [v for v in values if v != "not-a-value-123"] + ["''"]
    return sorted(set(values))


CASES = [(key, value) for key, field in _leaves() for value in _bad_values(key, field)]


def test_fuzz_every_field_refuses_bad_values_in_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert len(CASES) > 300  # every field, several values each
    start = time.monotonic()
    for key, value in CASES:
        out = [] if key == "out" else [f"out={tmp_path / 'run'}"]
        argv = ["train", *out, f"{key}={value}", "--print-config"]
        assert main(argv) == 1, (key, value, capsys.readouterr().out[-300:])
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "Traceback" not in err and len(err) < 600, (key, value, err)
        assert key in err and "allowed:" in err, (key, value, err)
    assert list(tmp_path.iterdir()) == []
    assert time.monotonic() - start < 60


AUDITED = [  # the audit's silent acceptances and tracebacks (issue 16)
    ("train.poly_power=.inf", "train.poly_power", "finite number > 0"),
    ("augment.hflip=2", "augment.hflip", "[0, 1]"),
    ("augment.crop=[0,0]", "augment.crop", "integers in [1,"),
    ("train.max_steps=0", "train.max_steps", "-1 or an integer >= 1"),
    ("model.width=abc", "model.width", "number"),
    ("seed=-1", "seed", "[0, 4294967295]"),
    ("train.limit_train_batches=1.5", "train.limit_train_batches", "(0, 1]"),
    ("augment.jitter={gamma: [2, 1]}", "augment.jitter", "low <= high"),
    ("train.num_workers=-2", "train.num_workers", "auto or an integer"),
]


@pytest.mark.parametrize("override,key,allowed", AUDITED, ids=[a[0] for a in AUDITED])
def test_audited_values_are_refused_naming_key_and_range(override, key, allowed, tmp_path, capsys):
    err = one_line(capsys, ["train", f"out={tmp_path / 'run'}", override, "--print-config"])
    assert key in err and allowed in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override,named", [("train.devices=[0,1,2]", "train.devices"),
                                            ("train.accelerator=tpu", "train.accelerator=tpu"),
                                            ("train.strategy=bogus", "train.strategy=bogus")])
def test_hardware_lightning_cannot_use_is_one_line(override, named, tmp_path, capsys):
    argv = ["train", f"out={tmp_path / 'run'}", *[a for a in TINY if "accelerator" not in a], "data.n=6", override]
    err = one_line(capsys, argv)
    assert named in err and "not usable here" in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_an_anchor_bomb_is_refused_before_it_expands(tmp_path, capsys):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 7)]  # 9^7 values
    lines += ["model: {name: seed-unet}", "loss: {name: seed}", "data: {name: synth}", "name: *a6"]
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    err = one_line(capsys, ["train", "-c", str(recipe), f"out={tmp_path / 'run'}", "--print-config"])
    assert "bomb.yaml" in err and "aliases" in err and len(err) < 300, err[:300]
    assert time.monotonic() - start < 10
    big = tmp_path / "big.yaml"
    big.write_text("model: {name: seed-unet}\n" + "# padding\n" * 200_000)
    assert "too large" in one_line(capsys, ["train", "-c", str(big), "--print-config"])


def test_a_whole_section_is_replaced_from_the_command_line(capsys):
    recipe = resolve("depth-anything-v2-nyu", ["data=synth"])
    assert recipe.data.name == "synth" and recipe.data.kwargs == {} and recipe.data.size == (518, 518)
    recipe = resolve("depth-anything-v2-nyu", ["data={name: folder, root: /somewhere}", "data.val_fraction=0.1"])
    assert recipe.data.kwargs == {"root": "/somewhere"} and recipe.data.val_fraction == 0.1
    with pytest.raises(DepthforgeError, match="did you mean data.root"):
        resolve("depth-anything-v2-nyu", ["data=folder", "data.rot=/x"])
    with pytest.raises(DepthforgeError, match="data=synth replaces the whole section"):
        resolve("depth-anything-v2-nyu", ["data.name=synth"])
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "data=synth" in capsys.readouterr().out


def test_default_loader_workers_follow_the_cpus_this_process_may_use(monkeypatch):
    from depthforge.training import loaders

    assert resolve("depth-anything-v2-nyu").train.num_workers == "auto"
    assert resolve("quick", ["train.num_workers=3"]).train.num_workers == 3
    for cpus, world, expected in [(2, 1, 1), (1, 1, 0), (2, 2, 0), (16, 1, 8), (16, 2, 7)]:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cpus: set(range(n)))
        assert loaders.worker_count("auto", world) == expected, (cpus, world)
        assert loaders.worker_count(4, world) == 4


@pytest.mark.parametrize("n", [7, 8])
def test_a_resumed_epoch_gives_each_process_the_samples_of_an_unbroken_one(n):
    """Two processes, an odd sample count: the epoch is padded by wrapping; that padding must not depend on
    where the epoch was resumed, else exact resume breaks."""
    from depthforge.training.loaders import EpochSampler

    def share(rank, consumed=None):
        sampler = EpochSampler(n, seed=3, rank=rank, world=2)
        sampler.set_epoch(1)
        if consumed is not None:
            sampler.load_state_dict({"epoch": 1, "consumed": consumed})
        return list(sampler)

    for rank in (0, 1):
        unbroken = share(rank)
        assert len(unbroken) == -(-n // 2)
        for steps in (1, 2, 3):  # a batch of one per process: 2 samples consumed per step
            assert share(rank, consumed=2 * steps) == unbroken[steps:], (rank, steps)
    # resumed on one process after two consumed 4: the 4 positions not yet taken, each once, and the padding
    one = EpochSampler(n, seed=3, rank=0, world=1)
    one.set_epoch(1)
    one.load_state_dict({"epoch": 1, "consumed": 4})
    both = [p for pair in zip(share(0)[2:], share(1)[2:]) for p in pair]
    assert list(one) == both[:n - 4]


def test_an_unreadable_checkpoint_is_one_line(tmp_path, capsys, monkeypatch):
    from depthforge.models import checkpoint

    ckpt = make_checkpoint(tmp_path / "m.ckpt")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(checkpoint, "open", denied, raising=False)  # as root, chmod 000 would not stop a read
    with pytest.raises(DepthforgeError, match="m.ckpt: cannot read the checkpoint"):
        checkpoint.load_checkpoint(ckpt)
    err = one_line(capsys, ["train", f"out={tmp_path / 'run'}", *TINY, "data.n=6", "--resume", str(ckpt)])
    assert "m.ckpt: cannot read" in err and "Permission denied" in err, err


@pytest.mark.slow
def test_a_weights_only_checkpoint_says_so_and_fine_tunes_with_init_from(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "m.ckpt", size=(32, 48))
    model = ["model.width=0.25", "model.levels=3"]  # conftest.TINY, the checkpoint's model
    args = ["train", f"out={tmp_path / 'run'}", *TINY, "data.n=6", *model, "train.max_steps=1"]
    err = one_line(capsys, [*args, "--resume", str(ckpt)])
    assert "holds weights only" in err and f"train.init_from={ckpt}" in err, err
    assert main([*args, f"train.init_from={ckpt}"]) == 0
    other = ["train", f"out={tmp_path / 'other'}", *TINY, "data.n=6", f"train.init_from={ckpt}"]
    assert "do not fit" in one_line(capsys, other)


@pytest.mark.slow
def test_overwrite_clears_the_old_run_but_nothing_else(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", f"out={out}", *TINY, "data.n=6", "train.epochs=1"]
    assert main(args) == 0
    (out / "notes.txt").write_text("mine")
    (out / "logs" / "mine.txt").write_text("mine too")
    assert main([*args, "--overwrite"]) == 0
    assert [p.name for p in (out / "logs").glob("version_*")] == ["version_0"]  # the new run's curves only
    assert (out / "notes.txt").read_text() == "mine" and (out / "logs" / "mine.txt").exists()


# --- (c) processes: one writer, interruptions said and saved, exact resume --------------------------------------

RUN = [*TINY, "train.epochs=2", "train.deterministic=true", "train.log_every_n_steps=1"]  # 17 samples: 5 steps/epoch


def start(out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "depthforge", "train", f"out={out}", *RUN, *extra]
    env = dict(os.environ, DEPTHFORGE_NO_MALLOC_TUNING="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err


def step_of(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # not written yet
        return -1


def wait_for(proc: subprocess.Popen, ready, what: str) -> None:
    deadline = time.time() + 300
    while proc.poll() is None and not ready() and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before {what}: {proc.communicate()[1][-2000:]}"


def weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("straight")
    code, err = finish(start(out))
    assert code == 0, err[-3000:]
    return out


def same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k  # tolerance 0


@pytest.mark.slow
@pytest.mark.processes
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_saves_says_so_exits_non_zero_and_resume_is_exact(straight, tmp_path, sig):
    out = tmp_path / "run"
    proc = start(out, "train.checkpoint_every_n_steps=1")
    wait_for(proc, lambda: step_of(out / "checkpoints" / "last.ckpt") >= 2, "its second step")
    os.kill(proc.pid, sig)
    code, err = finish(proc)
    assert code == 128 + sig, err[-2000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"error: training interrupted ({sig.name}) at step "), line
    step = int(line.split(" at step ")[1].split(":")[0])
    assert step_of(out / "checkpoints" / "last.ckpt") == step and f"holds step {step}" in line and "--resume" in line
    assert 2 <= step < 10
    code, err = finish(start(out, "train.checkpoint_every_n_steps=1", "--resume"))
    assert code == 0, err[-3000:]
    same_weights(straight, out)


@pytest.mark.slow
@pytest.mark.processes
def test_step_checkpoints_come_before_the_first_validation_and_resume_exactly(straight, tmp_path):
    out = tmp_path / "run"
    proc = start(out, "train.checkpoint_every_n_steps=2")
    last = out / "checkpoints" / "last.ckpt"
    wait_for(proc, lambda: step_of(last) >= 2, "a step checkpoint")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= step_of(last) < 5  # within the first epoch: no validation had run
    code, err = finish(start(out, "train.checkpoint_every_n_steps=2", "--resume"))
    assert code == 0, err[-3000:]
    same_weights(straight, out)


@pytest.mark.slow
@pytest.mark.processes
def test_a_run_folder_has_one_writer_and_kill_9_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "run"
    first = start(out, "train.epochs=50", "train.checkpoint_every_n_steps=1")
    lock = out / ".depthforge-train.lock"
    wait_for(first, lambda: lock.exists() and lock.read_text().strip() == str(first.pid), "taking the lock")
    code, err = finish(start(out))
    assert code == 1 and err.strip().count("\n") == 0, err[-2000:]
    assert str(out) in err and f"pid {first.pid}" in err and "Traceback" not in err, err
    last = out / "checkpoints" / "last.ckpt"
    wait_for(first, lambda: step_of(last) >= 1, "a checkpoint")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    stop = step_of(last) + 2
    code, err = finish(start(out, "train.epochs=50", f"train.max_steps={stop}", "--resume"))
    assert code == 0, err[-3000:]
    assert step_of(last) == stop


def test_bf16_on_a_cpu_where_it_is_slower_trains_in_fp32(monkeypatch, caplog):
    """The quick recipe's bf16 autocast is ~3.5x faster than fp32 with AMX but ~12x slower on AVX2 (an AMD EPYC:
    11 s a step against 0.9 s), which made `make demo` take hours there, and 1.4x slower with AVX512-BF16 alone."""
    from depthforge.recipe import resolve
    from depthforge.training import fit as fit_module

    t = resolve("quick", ["train.accelerator=cpu"]).train
    assert t.precision == "bf16-mixed"
    monkeypatch.setattr(fit_module, "fast_bf16", lambda: False)
    assert fit_module._precision(t) == "32-true"
    assert "slower than fp32 on this CPU" in caplog.text
    monkeypatch.setattr(fit_module, "fast_bf16", lambda: True)
    assert fit_module._precision(t) == "bf16-mixed"
    assert fit_module._precision(resolve("quick", ["train.precision=32-true"]).train) == "32-true"
