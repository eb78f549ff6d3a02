"""Text from the document: descriptions as plain text, names in snake_case."""

from __future__ import annotations

import re
from typing import Any, Final

_MD_LINK: Final = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_HTML_TAG: Final = re.compile(r"<[^>]+>")


def plain_text(text: Any) -> str:
    if not isinstance(text, str):
        return ""
    text = _MD_LINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


def first_paragraph(text: Any, limit: int = 400) -> str:
    if not isinstance(text, str):
        return ""
    para = plain_text(re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0])
    if len(para) > limit:
        cut = para[:limit].rsplit(" ", 1)[0]
        para = f"{cut}..."
    return para


def snake_case(text: str) -> str:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    return re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").lower() or "credential"
