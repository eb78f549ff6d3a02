"""Which ``voicefn serve`` process holds a test call.

A test call's conversation (its history, what pre-call functions set, its open LLM client) lives
in the memory of the process that started it; with several processes on one database the next
turn may reach another one. The call's id names its holder (``call_<random>_p<pid>_<instance>``)
so that process can say so, plainly, instead of "not found" (see README, "Dashboard").
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass

SHAPE = re.compile(r"^call_[0-9a-f]{16}_p([1-9][0-9]{0,6})_([0-9a-f]{6})$")

GONE = (
    "This test call has ended (hung up, idle too long, or the server restarted): start a new one."
)


@dataclass(frozen=True, slots=True)
class Holder:
    """One process's test calls: its pid and a random instance tag (a restarted process, or
    another machine with the same pid, has another tag)."""

    pid: int
    instance: str

    @classmethod
    def here(cls) -> Holder:
        return cls(os.getpid(), secrets.token_hex(3))

    def new_call_id(self) -> str:
        return f"call_{secrets.token_hex(8)}_p{self.pid}_{self.instance}"

    def __str__(self) -> str:
        return f"pid {self.pid}, instance {self.instance}"


def holder_of(call_id: str) -> Holder | None:
    """The process a test call id names; None for any other id."""
    found = SHAPE.match(call_id)
    return Holder(int(found.group(1)), found.group(2)) if found else None


def missing(call_id: str, here: Holder) -> tuple[int, str]:
    """The status and message for a test call this process does not hold: 404 when it ended
    here (or the id is not one), 409 naming the process that started it otherwise."""
    holder = holder_of(call_id)
    if holder is None or holder == here:
        return 404, GONE
    return 409, (
        f"This test call was started by another voicefn serve process ({holder}), not this one "
        f"({here}): a test call's conversation lives in the memory of the process that started "
        "it. Send each dashboard session to one process (sticky sessions at your proxy, or open "
        "that process's own address), or start a new call here. If that process has restarted, "
        "the call has ended."
    )
