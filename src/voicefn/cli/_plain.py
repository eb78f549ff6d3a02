"""Plain output without rich, for the lines where rich would write exactly the same characters.

When its file is not a terminal, rich prints no colour: a line of markup such as
``[green]ok[/green] a.json: f (bolna)`` comes out as ``ok a.json: f (bolna)``. Importing rich to
learn that costs about 30 ms, a tenth of ``voicefn validate``. :func:`plain` gives the same text
for the simple lines the commands print (printable ASCII and the styles below) and None for
anything else (escapes, emoji codes such as ``:x:``, other brackets, control characters,
non-ASCII), which rich then prints. ``tests/test_cli_plain.py`` checks both give the same
characters, including for generated lines.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TextIO

#: The styles the commands' markup uses.
STYLES = frozenset({"bold", "dim", "green", "red", "yellow", "bold green"})

_TAG = re.compile(r"\[(/?)([^\[\]]*)\]")
#: What rich may turn into other characters: a backslash (escapes), a bracket outside a known
#: tag, ``:name:`` (emoji codes; a colon then one with no space between), anything but printable
#: ASCII and newlines (control codes are dropped, tabs expanded).
_UNSURE = re.compile(r"[^\x20-\x7e\n]|\\|:\S*:")
#: Variables under which rich colours output that is not a terminal, or renders for Jupyter.
_FORCING = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def plain(text: str) -> str | None:
    """``text`` (rich markup) as rich prints it without colour, newline included; None if unsure."""
    if _UNSURE.search(text):
        return None
    opened: list[str] = []
    parts: list[str] = []
    end = 0
    for tag in _TAG.finditer(text):
        closing, style = tag.group(1), tag.group(2)
        if closing:
            if not opened or style not in ("", opened[-1]):
                return None  # rich refuses a closing tag that closes nothing
            opened.pop()
        elif style in STYLES:
            opened.append(style)
        else:
            return None
        parts.append(text[end : tag.start()])
        end = tag.end()
    rest = text[end:]
    if "[" in rest or "]" in rest or any("[" in p or "]" in p for p in parts):
        return None
    return "".join(parts) + rest + "\n"


def colourless(stream: TextIO) -> bool:
    """True when rich would print to ``stream`` without colour or Jupyter rendering."""
    if any(name in os.environ for name in _FORCING) or "IPython" in sys.modules:
        return False
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):  # rich treats a closed or odd stream the same way
        return True


def write_plain(text: str, stream: TextIO) -> bool:
    """Write ``text`` as rich would to ``stream``, if that needs no rich; True if written."""
    if not colourless(stream):
        return False
    line = plain(text)
    if line is None:
        return False
    stream.write(line)
    stream.flush()
    return True
