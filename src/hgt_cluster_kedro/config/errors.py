"""Parameter errors that name the offending key: ``hgt.train.epochs``, its value,
and for an unknown key the nearest valid name (:mod:`difflib`)."""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError


class ParameterError(ValueError):
    """One or more parameters are invalid; ``problems`` holds one line each
    (``section.key: what is wrong``)."""

    def __init__(self, problems: Sequence[str], header: str | None = None) -> None:
        self.problems = list(problems)
        head = header or "Invalid parameters"
        super().__init__(head + ":\n  " + "\n  ".join(self.problems))


def nearest(name: str, valid: Iterable[str], cutoff: float = 0.5) -> str | None:
    """The valid name closest to ``name`` (:func:`difflib.get_close_matches`)."""
    match = difflib.get_close_matches(str(name), sorted(valid), n=1, cutoff=cutoff)
    return match[0] if match else None


def unknown_key(path: str, key: str, valid: Iterable[str]) -> str:
    """``path.key: unknown parameter; did you mean 'k'? (valid: …)``."""
    valid = sorted(valid)
    guess = nearest(key, valid)
    hint = f"did you mean {guess!r}? " if guess else ""
    return f"{path}: unknown parameter; {hint}(valid: {', '.join(valid)})"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Pydantic models an annotation may hold (through Optional, unions, lists)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType, list, tuple):
        return [m for arg in get_args(annotation) for m in _models_in(arg)]
    return []


def _field(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def fields_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str] | None:
    """Valid keys of the model reached by ``loc`` from ``model`` (aliases as
    written in YAML), or ``None`` when the path leaves typed models."""
    current: list[type[BaseModel]] = [model]
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        nxt: list[type[BaseModel]] = []
        for m in current:
            info = _field(m, str(part))
            if info is None:
                continue
            annotation = info.annotation
            if get_origin(annotation) is dict:  # name -> model: skip the name
                if parts:
                    parts.pop(0)
                annotation = get_args(annotation)[1]
            nxt.extend(_models_in(annotation))
        if not nxt:
            return None
        current = nxt[:1]
    m = current[0]
    return [info.alias or name for name, info in m.model_fields.items()]


def describe(section: str, model: type[BaseModel], exc: ValidationError) -> list[str]:
    """One line per pydantic error, named by its full dotted path."""
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not _is_union_tag(p)]
        path = ".".join([section, *(str(p) for p in loc)])
        if err["type"] == "extra_forbidden":
            valid = fields_at(model, loc[:-1]) or []
            lines.append(unknown_key(path, str(loc[-1]), valid))
            continue
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] in ("value_error", "assertion_error"):
            lines.append(f"{path}: {msg}")
        elif err["type"] == "missing":
            lines.append(f"{path}: required parameter is missing")
        else:
            lines.append(f"{path}: {msg} (got {err.get('input')!r})")
    return list(dict.fromkeys(lines))


def _is_union_tag(part: Any) -> bool:
    """pydantic names union branches in ``loc`` (``int``, ``list[int]``,
    ``literal['all']``, ``function-after[...]``); they are not keys."""
    text = str(part)
    return (
        text in ("int", "float", "str", "bool", "none")
        or "[" in text
        or text.startswith(("function-", "literal", "constrained-"))
    )


def validate_model(section: str, model: type[BaseModel], raw: Any) -> BaseModel:
    """``model.model_validate(raw)`` with a :class:`ParameterError` naming
    ``section.key`` for every problem."""
    if isinstance(raw, model):
        return raw
    if isinstance(raw, BaseModel):
        raw = raw.model_dump(by_alias=True)
    try:
        return model.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise ParameterError(describe(section, model, exc)) from None
