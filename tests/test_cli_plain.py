"""The CLI's plain output path writes exactly what rich writes, or leaves the line to rich."""

from __future__ import annotations

import io
import os
import pty

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.errors import MarkupError
from rich.markup import escape as rich_escape

from voicefn.cli._app import escape
from voicefn.cli._plain import STYLES, plain, write_plain


def by_rich(text: str) -> str | None:
    """What the CLI's console prints for ``text`` to a file that is not a terminal (and no
    FORCE_COLOR: the plain path is not taken under it)."""
    file = io.StringIO()
    try:
        Console(file=file, highlight=False, soft_wrap=True, force_terminal=False).print(text)
    except MarkupError:
        return None
    return file.getvalue()


PIECES = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12),
    st.sampled_from(
        [
            *(f"[{s}]" for s in STYLES),
            *(f"[/{s}]" for s in STYLES),
            "[/]",
            "[italic]",
            "[0]",
            "[",
            "]",
            "\\",
            "\\[bold]",
            ":",
            ":smile:",
            ":x:",
            "http://h:80/",
            " ",
            "   ",
            "\t",
            "\n",
            "\r",
            "\x1b[31m",
            "é",
            "—",
            "日本",
            "x" * 120,
        ]
    ),
)
LINES = st.lists(PIECES, max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(LINES)
def test_a_plain_line_is_what_rich_prints(text: str) -> None:
    line = plain(text)
    if line is not None:
        assert line == by_rich(text)


@settings(max_examples=300, deadline=None)
@given(LINES)
def test_escape_is_richs_escape(text: str) -> None:
    assert escape(text) == rich_escape(text)


@pytest.mark.parametrize(
    "text",
    [
        "[green]ok[/green] examples/functions/check_order_status.json: check_order_status (bolna)",
        "[red]invalid[/red] a.json: 2 error(s)",
        "  [red]error[/red] [bold]$.value.url[/bold]: missing\n      fix: add it",
        "[bold green]you>[/bold green] hello",
        "",
    ],
)
def test_the_commands_usual_lines_take_the_plain_path(text: str) -> None:
    assert plain(text) is not None  # else every run would import rich again
    assert plain(text) == by_rich(text)


@pytest.mark.parametrize(
    "text", ["[red]a[/green]", "[/bold]", "[link]x[/link]", "see :x:", "a\\[b", "tab\there"]
)
def test_lines_rich_would_change_or_refuse_are_left_to_rich(text: str) -> None:
    assert plain(text) is None


def test_a_terminal_or_forced_colour_goes_to_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    leader, follower = pty.openpty()
    with open(follower, "w", encoding="utf-8") as terminal:
        assert write_plain("[green]ok[/green]", terminal) is False
    os.close(leader)
    pipe = io.StringIO()
    assert write_plain("[green]ok[/green] x", pipe) is True
    assert pipe.getvalue() == "ok x\n"
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert write_plain("[green]ok[/green]", io.StringIO()) is False
