"""cli/: the ``depthforge`` command, a thin layer over the library. Each subcommand is one module here exposing
``add_arguments(parser)`` and ``run(args) -> int`` that parses arguments and calls the library; this file only
wires them together."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from ..errors import DepthforgeError
from ..allocator import ALLOCATORS, CHOICE, MARKER, malloc_env

COMMANDS = {
    "demo": ("depthforge.cli.demo", "train -> evaluate -> predict on the built-in synthetic scenes"),
    "train": ("depthforge.cli.train", "train a model from a YAML recipe (default: configs/quick.yaml)"),
    "eval": ("depthforge.cli.eval", "evaluate a model with the field's standard metrics"),
    "compare": ("depthforge.cli.compare", "train and evaluate models side by side in one report"),
    "benchmark": ("depthforge.cli.benchmark", "models on the zero-shot benchmark sets, aligned as the papers do"),
    "predict": ("depthforge.cli.predict", "predict depth for images, folders, videos or a webcam"),
    "models": ("depthforge.cli.models", "list the registered models with their size and contract"),
    "data": ("depthforge.cli.data", "generate synthetic scenes, check a dataset"),
    "bench": ("depthforge.cli.bench", "speed and memory figures"),
    "export": ("depthforge.cli.export", "export a model to ONNX"),
    "serve": ("depthforge.cli.serve", "web page and API for a model"),
}

# command -> allocator. tcmalloc/jemalloc preloaded crash OpenVINO's plugins (free(): invalid pointer), and eval
# may run an OpenVINO model: it gets glibc's tunables; bench runs its OpenVINO part in a glibc process.
_TUNED = {"demo": "auto", "train": "auto", "bench": "auto", "eval": "glibc", "compare": "auto",
          "benchmark": "glibc"}


def _tune_malloc(command: str) -> None:
    """Re-exec once with the memory allocator of ``allocator.malloc_env`` (tcmalloc or jemalloc preloaded when
    installed, else glibc's tunables): both are read only at process start. DEPTHFORGE_NO_MALLOC_TUNING=1 skips
    it, DEPTHFORGE_MALLOC picks the allocator; a process the user started with GLIBC_TUNABLES is left alone."""
    if command not in _TUNED or not sys.platform.startswith("linux"):
        return
    if os.environ.get(MARKER) or os.environ.get("GLIBC_TUNABLES") or os.environ.get("DEPTHFORGE_NO_MALLOC_TUNING"):
        return
    choice = os.environ.get(CHOICE, _TUNED[command])
    if choice not in ALLOCATORS:
        print(f"warning: {CHOICE}={choice!r} is not one of {', '.join(ALLOCATORS)}; using the default",
              file=sys.stderr)
        choice = _TUNED[command]
    try:
        os.execve(sys.executable, [sys.executable, "-m", "depthforge", *sys.argv[1:]], malloc_env(os.environ, choice))
    except OSError:
        pass


def path_arg(text: str) -> str:
    """argparse type of a file or folder option: an empty value would silently mean the working folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file or folder")
    return text


class Parser(argparse.ArgumentParser):
    """argparse with its errors (a bad number, a missing option) in one line like every other error; the usage
    is one ``-h`` away."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} -h)\n")


def build_parser(command: str | None = None) -> tuple[argparse.ArgumentParser, dict]:
    """The parser, with the arguments of ``command`` only: importing every subcommand (Lightning, FastAPI,
    onnxruntime ...) would cost seconds on each call."""
    parser = Parser(prog="depthforge", description="Monocular depth estimation toolkit.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logs and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, (module_name, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == command:
            modules[name] = importlib.import_module(module_name)
            modules[name].add_arguments(p)
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
        if argv:
            _tune_malloc(argv[0])
    parser, modules = build_parser(next((a for a in argv if not a.startswith("-")), None))
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may come after options (argparse takes positionals in one run only)
    if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s")
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(modules[args.command].run(args) or 0)
    except DepthforgeError as e:
        if args.verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1)  # an interrupted training: 128 + the signal, as the shell reports it
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
