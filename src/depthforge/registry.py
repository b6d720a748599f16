"""One registry type for everything built by name from a recipe: models, losses, datasets."""
from __future__ import annotations

import difflib
from typing import Any, Callable

from .errors import DepthforgeError


class Registry(dict):
    """``name -> factory``, with per-entry facts (``info``) and one error style for unknown names.

    >>> MODELS = Registry("model")
    >>> @MODELS.register("seed-unet", family="CNN")
    ... class SeedUNet: ...
    >>> MODELS.build("seed-unet", width=0.5)
    """

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.info: dict[str, dict[str, Any]] = {}

    def register(self, name: str, factory: Callable | None = None, **info: Any):
        """Add ``factory`` under ``name`` (or decorate it); ``info`` holds facts a listing shows."""

        def add(f: Callable) -> Callable:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self[name] = f
            self.info[name] = info
            return f

        return add(factory) if factory is not None else add

    def get_factory(self, name: str) -> Callable:
        try:
            return self[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), list(self), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise DepthforgeError(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(sorted(self))})") from None

    def name_of(self, obj: Any) -> str:
        """The name an object built by this registry was registered under (by its class)."""
        return next(n for n, f in self.items() if isinstance(f, type) and type(obj) is f)

    def build(self, name: str, **kwargs: Any) -> Any:
        """``factory(**kwargs)``; bad arguments become one line naming the entry."""
        factory = self.get_factory(name)
        try:
            return factory(**kwargs)
        except DepthforgeError:
            raise
        except TypeError as e:
            if "argument" not in str(e):
                raise
            raise DepthforgeError(f"{self.kind} {name!r}: {e}") from None
        except ValueError as e:  # a factory's own check of its arguments
            raise DepthforgeError(f"{self.kind} {name!r}: {e}") from None
