"""TOML input → validated dataclasses.

A command describes its input as (nested) dataclasses whose fields are declared with
:func:`param`, giving the unit, a one-line description and the admissible range.  :func:`load`
reads a TOML file and builds the dataclass, rejecting unknown keys, wrong types, out-of-range and
inconsistent values with one :class:`~hpcmsm.errors.ConfigError` that names the file and the
dotted key.  Every rank reads and validates the file itself, so an error is raised identically on
all ranks before any collective (no broadcast, no hang).

A ``[petsc]`` table holds PETSc options per solver prefix::

    [petsc.macro]          # -> -macro_ksp_type cg -macro_pc_type gamg
    ksp_type = "cg"
    pc_type = "gamg"
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import types
import typing
from dataclasses import MISSING, dataclass, field
from typing import Any, Literal, Union

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def param(default: Any = MISSING, *, unit: str = "", doc: str = "", gt: float | None = None,
          ge: float | None = None, lt: float | None = None, le: float | None = None,
          choices: typing.Sequence | None = None, default_factory: Any = MISSING):
    """A validated dataclass field: ``length: float = param(1.0, unit="m", gt=0, doc="...")``."""
    meta = dict(unit=unit, doc=doc, gt=gt, ge=ge, lt=lt, le=le, choices=choices)
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple, typing.Sequence):
        args = typing.get_args(tp)
        inner = _type_name(args[0]) if args else "values"
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} items ({', '.join(_type_name(a) for a in args)})"
        return f"a list of {inner.replace('a ', '').replace('an ', '')}s" if args else "a list"
    if origin is dict or tp is dict:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    return getattr(tp, "__name__", str(tp))


def _convert(value, tp, key: str, file: str | None):
    """Check ``value`` against type ``tp``; return the converted value."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"expected {_type_name(tp)}, got {value!r}", file=file, key=key)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, key, file)
            except ConfigError:
                # a table for an optional section: its own error (file + dotted key) is the useful one
                if isinstance(value, dict) and dataclasses.is_dataclass(a):
                    raise
                continue
        raise bad
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        v = float(value)
        if not math.isfinite(v):
            raise ConfigError(f"expected a finite number, got {value!r}", file=file, key=key)
        return v
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin in (list, tuple, typing.Sequence):
        if not isinstance(value, list):
            raise bad
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise bad
            return tuple(_convert(v, a, f"{key}[{i}]", file) for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        out = [_convert(v, inner, f"{key}[{i}]", file) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise bad
        args = typing.get_args(tp)
        if args:
            return {k: _convert(v, args[1], f"{key}.{k}", file) for k, v in value.items()}
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad
        return from_dict(tp, value, file=file, prefix=key)
    raise ConfigError(f"internal: unsupported type {tp}", file=file, key=key)


def _check_range(value, meta, key: str, file: str | None) -> None:
    if value is None:
        return
    vals = value if isinstance(value, (list, tuple)) else [value]
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            continue
        choices = meta.get("choices")
        if choices is not None and v not in choices:
            raise ConfigError(f"expected one of {', '.join(map(repr, choices))}, got {v!r}", file=file, key=key)
        if isinstance(v, str):
            continue
        for op, bound, word in (("gt", meta.get("gt"), ">"), ("ge", meta.get("ge"), ">="),
                                ("lt", meta.get("lt"), "<"), ("le", meta.get("le"), "<=")):
            if bound is None:
                continue
            ok = {"gt": v > bound, "ge": v >= bound, "lt": v < bound, "le": v <= bound}[op]
            if not ok:
                what = "a positive number" if (op == "gt" and bound == 0) else f"a value {word} {bound}"
                raise ConfigError(f"expected {what}, got {v!r}", file=file, key=key)


def from_dict(cls, data: dict, *, file: str | None = None, prefix: str = ""):
    """Build dataclass ``cls`` from a mapping, validating keys, types, ranges and consistency."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a table, got {data!r}", file=file, key=prefix or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        k = unknown[0]
        known = ", ".join(sorted(fields))
        raise ConfigError(f"unknown key (known keys here: {known})", file=file,
                          key=f"{prefix}.{k}" if prefix else k)
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            v = _convert(data[name], hints[name], key, file)
            _check_range(v, f.metadata, key, file)
            kwargs[name] = v
        elif f.default is MISSING and f.default_factory is MISSING:
            doc = f.metadata.get("doc", "")
            unit = f.metadata.get("unit", "")
            raise ConfigError(f"missing required key ({doc}{' [' + unit + ']' if unit else ''})".replace(" ()", ""),
                              file=file, key=key)
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ConfigError as e:
            if e.file is None:
                k = e.key if e.key is None or not prefix else f"{prefix}.{e.key}"
                raise ConfigError(e.reason, file=file, key=k) from None
            raise
    return obj


def read_toml(path: str | os.PathLike) -> tuple[dict, str]:
    """Parse a TOML file; returns (data, text). Errors name the file (and the line)."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ConfigError("input file does not exist", file=p)
    if os.path.isdir(p):
        raise ConfigError("is a directory, expected a TOML input file", file=p)
    try:
        with open(p, "rb") as fh:
            raw = fh.read()
        text = raw.decode("utf-8")
        return tomllib.loads(text), text
    except UnicodeDecodeError:
        raise ConfigError("not a UTF-8 text file", file=p) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"malformed TOML: {e}", file=p) from None


def load(path: str | os.PathLike, cls):
    """Read ``path`` and build dataclass ``cls`` from it. Returns ``(config, input_text)``."""
    data, text = read_toml(path)
    return from_dict(cls, data, file=os.fspath(path)), text


def loads(text: str, cls, name: str = "<input>"):
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"malformed TOML: {e}", file=name) from None
    return from_dict(cls, data, file=name)


# ----------------------------------------------------------------------------------------------
# shared input sections
# ----------------------------------------------------------------------------------------------

PetscScalar = Union[str, int, float, bool]


def petsc_table_to_options(table: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, str]]:
    """``{"macro": {"ksp_type": "cg"}}`` → ``{"macro_": {"ksp_type": "cg"}}`` (strings)."""
    out: dict[str, dict[str, str]] = {}
    for prefix, opts in (table or {}).items():
        p = prefix if prefix.endswith("_") else prefix + "_"
        out[p] = {}
        for k, v in opts.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            out[p][k.lstrip("-")] = str(v)
    return out


@dataclass
class OutputSection:
    """``[output]``: where results go and how often."""

    dir: str = param("out", doc="output directory (created if missing)")
    every: int = param(1, ge=1, doc="write fields every this many steps")
    checkpoint_every: int = param(0, ge=0, doc="checkpoint every this many steps (0: at output steps)")
    png: bool = param(True, doc="write PNG plots")
