"""The error model: a :class:`Problem` (JSON path, what is wrong, what was found, the fix), the
exception that carries them all, and the collector the checks add to."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Path = tuple[str | int, ...]
Locate = Callable[[Path], Path]
Severity = Literal["error", "warning"]


def json_path(path: Iterable[str | int]) -> str:
    """``("value", "param", "order_id")`` -> ``$.value.param.order_id``; odd keys are quoted."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a function document."""

    path: str
    message: str
    fix: str
    found: Any = None
    severity: Severity = "error"

    def __str__(self) -> str:
        found = (
            "" if self.found is None else f" (found {json.dumps(self.found, ensure_ascii=False)})"
        )
        return f"{self.severity}: {self.path}: {self.message}{found}. Fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "path": self.path,
            "message": self.message,
            "found": self.found,
            "fix": self.fix,
        }


class FunctionValidationError(ValueError):
    """A function document has errors; ``problems`` lists all of them (warnings included)."""

    def __init__(self, problems: Sequence[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        errors = [p for p in self.problems if p.severity == "error"]
        head = f"{source}: " if source else ""
        lines = "\n".join(f"  - {p}" for p in errors)
        super().__init__(f"{head}{len(errors)} problem(s) in function definition:\n{lines}")


@dataclass
class Collector:
    locate: Locate
    problems: list[Problem] = field(default_factory=list)

    def add(
        self,
        path: Path,
        message: str,
        fix: str,
        found: Any = None,
        severity: Severity = "error",
    ) -> None:
        self.problems.append(Problem(json_path(self.locate(path)), message, fix, found, severity))


def identity(path: Path) -> Path:
    return path
