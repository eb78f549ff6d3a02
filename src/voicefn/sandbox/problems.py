"""What is wrong with customer code: :class:`CodeProblem`, shared by the Python and JavaScript
checks, and the collector they report into."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..validation import Problem

Severity = Literal["error", "warning"]

#: Longer code is refused before parsing (hostile code may try to exhaust the parser).
MAX_CODE_CHARS = 256 * 1024


@dataclass(frozen=True)
class CodeProblem:
    """One thing wrong with customer code."""

    line: int | None  #: 1-based line in the code; None when it concerns the code as a whole
    message: str  #: what is wrong
    fix: str  #: how to fix it
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{self.severity}: {where}{self.message}. Fix: {self.fix}"

    def to_problem(self, path: str = "$.action.code") -> Problem:
        """As a :class:`voicefn.validation.Problem` of the document holding the code."""
        found = None if self.line is None else f"line {self.line}"
        return Problem(path, self.message, self.fix, found, self.severity)


class Problems:
    """The problems one check finds, in the order found."""

    def __init__(self) -> None:
        self.items: list[CodeProblem] = []

    def error(self, line: int | None, message: str, fix: str) -> None:
        self.items.append(CodeProblem(line, message, fix))

    def warning(self, line: int | None, message: str, fix: str) -> None:
        self.items.append(CodeProblem(line, message, fix, "warning"))

    @property
    def failed(self) -> bool:
        return any(p.severity == "error" for p in self.items)

    def result(self) -> list[CodeProblem]:
        """All problems, sorted by line (those about the whole code first)."""
        return sorted(self.items, key=lambda p: p.line or 0)

    def too_long(self, code: str, fix: str) -> bool:
        """Whether the code is over :data:`MAX_CODE_CHARS` (then reported as an error)."""
        if len(code) <= MAX_CODE_CHARS:
            return False
        self.error(
            None,
            f"the code has {len(code)} characters; at most {MAX_CODE_CHARS} are accepted",
            fix,
        )
        return True
