import subprocess
import sys

from depthforge.cli import COMMANDS, build_parser


def test_parser_imports_only_the_command_being_run():
    code = ("import sys; from depthforge.cli import build_parser; build_parser('data'); "
            "print(sorted(m for m in ('lightning', 'fastapi', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]"


def test_every_command_builds_its_arguments():
    for name in COMMANDS:
        parser, modules = build_parser(name)
        assert set(modules) == {name} and hasattr(modules[name], "run")
