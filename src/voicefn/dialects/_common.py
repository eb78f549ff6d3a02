"""Helpers shared by the dialect modules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..validation import Path, Problem, did_you_mean, json_path


def unknown_keys(data: Mapping[str, Any], known: Iterable[str], prefix: Path = ()) -> list[Problem]:
    """An error for each key a dialect does not define, with a did-you-mean for typos."""
    known = list(known)
    problems = []
    for key in data:
        if key not in known:
            hint = did_you_mean(str(key), known)
            fix = (
                f"did you mean {hint!r}?"
                if hint
                else f"remove it; known fields: {', '.join(known)}"
            )
            problems.append(Problem(json_path((*prefix, key)), f"unknown field {key!r}", fix))
    return problems


def prefix_locator(table: Mapping[Path, Path]) -> Any:
    """Map a canonical path to the dialect's path by its longest matching prefix."""
    ordered = sorted(table.items(), key=lambda kv: -len(kv[0]))

    def locate(path: Path) -> Path:
        for src, dst in ordered:
            if path[: len(src)] == src:
                return (*dst, *path[len(src) :])
        return path

    return locate


def repeat_loss(f: Any) -> list[str]:
    """``allow_repeat``, ``store`` and ``mapping`` are voicefn's own: no platform format
    carries them."""
    lost = [f"allow_repeat={f.allow_repeat}"] if f.allow_repeat is not None else []
    lost += [f"store ({', '.join(f.store)})"] if getattr(f, "store", None) else []
    lost += [f"mapping ({', '.join(f.mapping)})"] if getattr(f, "mapping", None) else []
    return lost


def drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}
