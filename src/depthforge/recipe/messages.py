"""One-line messages for bad recipes: a pydantic error -> the key, the problem and what the schema allows."""
from __future__ import annotations

import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ValidationError

from .schema import Named, Recipe, unknown

def _known_keys() -> list[str]:
    keys = []
    for name, field in Recipe.model_fields.items():
        ann = field.annotation
        sub = getattr(ann, "model_fields", None)
        if sub is None and field.default_factory is not None:
            sub = getattr(field.default_factory, "model_fields", None)
        keys.append(name)
        if isinstance(sub, dict) and ann is not Named:
            keys += [f"{name}.{k}" for k in sub]
    return keys


def _bounds(meta: list) -> str:
    lo = next(((">=", "[", m.ge) for m in meta if getattr(m, "ge", None) is not None), None) or \
        next(((">", "(", m.gt) for m in meta if getattr(m, "gt", None) is not None), None)
    hi = next((("<=", "]", m.le) for m in meta if getattr(m, "le", None) is not None), None) or \
        next((("<", ")", m.lt) for m in meta if getattr(m, "lt", None) is not None), None)
    if lo and hi:
        return f" in {lo[1]}{_num(lo[2])}, {_num(hi[2])}{hi[1]}"
    return f" {lo[0]} {_num(lo[2])}" if lo else f" {hi[0]} {_num(hi[2])}" if hi else ""


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _plural(text: str) -> str:
    return text.replace("an integer", "integers").replace("a finite number", "finite numbers")


def describe(ann: Any, meta: list | None = None) -> str:
    """A field's type and range in words: "a finite number in [0, 1]", "true/false or [H, W] ..."."""
    meta = list(meta or [])
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is Annotated:
        extra = [m for a in args[1:] for m in (getattr(a, "metadata", None) or [a])]
        return describe(args[0], meta + extra)
    if origin is Union:
        return " or ".join("null" if a is type(None) else describe(a, meta) for a in args)
    if origin is Literal:
        return str(args[0]) if len(args) == 1 else "one of " + ", ".join(str(a) for a in args)
    if origin is tuple:
        parts = [describe(a) for a in args]
        if len(parts) == 2 and parts[0] == parts[1]:
            return f"a pair of {_plural(parts[0])}"
        return "[" + ", ".join(parts) + "]"
    if origin is list:
        return "a non-empty list of " + _plural(describe(args[0]))
    if origin is dict:
        return "a mapping of " + describe(args[0]) + " to " + describe(args[1])
    if ann is bool:
        return "true/false"
    if ann is int:
        return "an integer" + _bounds(meta)
    if ann is float:
        return "a finite number" + _bounds(meta)
    if ann is str:
        return "non-empty text" if any(getattr(m, "min_length", 0) for m in meta) else "text"
    return "a section" if isinstance(ann, type) and issubclass(ann, BaseModel) else str(ann)


def _field(keys: list[str]):
    """The pydantic field at ``keys`` (["train", "lr"]), or None."""
    model, field = Recipe, None
    for key in keys:
        fields = getattr(model, "model_fields", None)
        if not isinstance(fields, dict) or key not in fields:
            return None
        field = fields[key]
        model = next((a for a in (field.annotation, *typing.get_args(field.annotation))
                      if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return field


# constraint errors say more than a union's "input should be a valid boolean"
_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number",
                 "too_short", "too_long", "string_too_short", "value_error", "literal_error"}


def validation_line(where: str, e: ValidationError) -> str:
    # pydantic names union members and validators in the location ("hflip.bool"): keep the keys only
    types = {"bool", "int", "float", "str", "dict", "list", "tuple", "literal"}

    def keys(err) -> list[str]:
        return [str(p) for p in err["loc"] if not (str(p).split("[")[0] in types or "[" in str(p)
                                                     or str(p).startswith(("function-", "constrained-")))]

    errors = e.errors()
    first = keys(errors[0])
    same = [err for err in errors if keys(err)[:len(first)] == first or first[:len(keys(err))] == keys(err)]
    err = next((x for x in same if x["type"] in _RANGE_ERRORS), errors[0])
    loc = ".".join(keys(err))
    if err["type"] == "missing" and any(isinstance(p, int) for p in err["loc"]):  # a short list: a bad value
        err = {**err, "type": "too_short", "msg": "Too few values", "input": _input(e, keys(err))}
    if err["type"] == "missing":
        return f"{where}: missing {'section' if '.' not in loc else 'key'} {loc!r}"
    if err["type"] == "extra_forbidden":
        return f"{where}: {unknown(loc, _known_keys())}"
    if err["type"] == "unknown_name":  # ``_one_of``'s line, with its did-you-mean
        return f"{where}: {loc}: {err['msg']}"
    got = err.get("input")
    shown = "" if isinstance(got, dict) else f" (got {short(got)})"
    msg = err["msg"].removeprefix("Value error, ")
    field = _field(keys(err)[:2])
    allowed = f"; allowed: {describe(field.annotation, field.metadata)}" if field is not None else ""
    return f"{where}: {loc}: {msg[0].lower() + msg[1:]}{shown}{allowed}"


def _input(e: ValidationError, keys: list[str]) -> Any:
    """What the user gave at the field named by ``keys`` (the first two: section and key)."""
    value = e.errors()[0].get("input")
    for err in e.errors():
        if [str(p) for p in err["loc"][:2]] == keys[:2]:
            return err.get("input")
    return value


def short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
