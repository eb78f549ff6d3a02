"""Reading real providers' streamed chat-completion chunks leniently.

Providers that speak "OpenAI-compatible" differ in the details: Azure sends content-filter
choices with no ``delta``; Mistral's reasoning models stream ``content`` as a list of parts;
DeepSeek, xAI and Moonshot stream ``reasoning_content``; DeepSeek-R1 and Qwen served by
Together, Groq, vLLM or Ollama put their reasoning inside ``content`` as ``<think>...</think>``;
Gemini attaches ``extra_content`` (thought signatures) that must go back in the next request.
These helpers read such chunks without trusting their shape: a missing or odd field is read
as absent, never as an exception.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "ThinkFilter",
    "complete_object",
    "content_parts",
    "field_of",
    "merge_extra",
    "split_objects",
]


def field_of(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``; None when absent (SDK models keep unknown fields)."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    try:
        return getattr(obj, name, None)
    except Exception:  # a property of an odd object raising: read as absent
        return None


def content_parts(content: Any) -> tuple[str, str]:
    """``(text, reasoning)`` of a delta's ``content``: a string, or a list of parts
    (``{"type": "text", "text": ...}``, ``{"type": "thinking", "thinking": [...]}``)."""
    if isinstance(content, str):
        return content, ""
    if not isinstance(content, list):
        return "", ""
    text: list[str] = []
    reasoning: list[str] = []
    for part in content:
        if isinstance(part, str):
            text.append(part)
            continue
        kind = field_of(part, "type")
        if kind == "text":
            value = field_of(part, "text")
            if isinstance(value, str):
                text.append(value)
        elif kind == "thinking":
            inner = field_of(part, "thinking")
            if isinstance(inner, str):
                reasoning.append(inner)
            else:
                reasoning.append(content_parts(inner)[0])
    return "".join(text), "".join(reasoning)


def merge_extra(into: dict[str, Any] | None, extra: dict[str, Any]) -> dict[str, Any]:
    """Merge a streamed provider extension object (nested objects merged, the rest replaced)."""
    merged = dict(into or {})
    for key, value in extra.items():
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            merged[key] = merge_extra(old, value)
        else:
            merged[key] = value
    return merged


def _loads(raw: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def complete_object(raw: str) -> bool:
    """True once streamed arguments form one whole JSON object (cheap check first)."""
    if not raw.rstrip().endswith("}"):
        return False
    return isinstance(_loads(raw), dict)


_decoder = json.JSONDecoder()


def split_objects(raw: str) -> list[str] | None:
    """Two or more whole JSON objects written back to back (``{"a":1}{"b":2}``), each as its
    own text; None unless the whole string is exactly that (nothing partial, nothing else)."""
    if raw.count("{") < 2 or not raw.rstrip().endswith("}"):
        return None
    parts: list[str] = []
    at, end = 0, len(raw)
    try:
        while True:
            while at < end and raw[at] in " \t\r\n":
                at += 1
            if at == end:
                break
            value, stop = _decoder.raw_decode(raw, at)
            if not isinstance(value, dict):
                return None
            parts.append(raw[at:stop])
            at = stop
    except (ValueError, RecursionError):
        return None
    return parts if len(parts) >= 2 else None


class ThinkFilter:
    """Separates ``<think>...</think>`` reasoning from the words to speak, across chunks.

    Feed each content piece; `feed` returns what may be spoken now. A piece that might be the
    start of a tag (``"<thi"``) is held back until the next piece tells. Whitespace right after
    a closing tag is dropped, so the answer does not start with the blank lines models put
    there. `flush` at the end of the stream returns what was held back.
    """

    OPEN = "<think>"
    CLOSE = "</think>"

    def __init__(self) -> None:
        self.inside = False
        self.reasoning: list[str] = []
        self._held = ""
        self._after_close = False

    def feed(self, text: str) -> str:
        if not self._held and "<" not in text:  # the common case: no tag in sight
            out: list[str] = []
            self._take(text, out)
            return "".join(out)
        buffer = self._held + text
        self._held = ""
        out = []
        while buffer:
            tag = self.CLOSE if self.inside else self.OPEN
            at = buffer.find(tag)
            if at >= 0:
                self._take(buffer[:at], out)
                buffer = buffer[at + len(tag) :]
                self.inside = not self.inside
                self._after_close = not self.inside
                continue
            keep = _partial_tag(buffer, tag)
            self._take(buffer[: len(buffer) - keep], out)
            self._held = buffer[len(buffer) - keep :]
            break
        return "".join(out)

    def flush(self) -> str:
        held, self._held = self._held, ""
        out: list[str] = []
        self._take(held, out)
        return "".join(out)

    def _take(self, text: str, out: list[str]) -> None:
        if not text:
            return
        if self.inside:
            self.reasoning.append(text)
            return
        if self._after_close:
            text = text.lstrip()
            if not text:
                return
            self._after_close = False
        out.append(text)


def _partial_tag(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is a proper beginning of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
