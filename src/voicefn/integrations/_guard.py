"""The one import guard for optional integrations.

Every integration module imports its framework inside :func:`extra`, so a missing extra always
fails the same way: an ``ImportError`` that names the extra to install. The imports stay ordinary
``import`` statements, so type checkers still see the framework's types::

    from voicefn.integrations._guard import extra

    with extra("livekit"):
        from livekit import agents
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["MissingExtraError", "extra"]


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message says which extra provides it."""

    def __init__(self, name: str, cause: ImportError) -> None:
        self.extra = name
        what = (
            f"{cause.name} is not installed"
            if isinstance(cause, ModuleNotFoundError) and cause.name
            else f"an import failed ({cause})"
        )
        super().__init__(f'{what}: pip install "voicefn[{name}]"', name=cause.name)


@contextmanager
def extra(name: str) -> Iterator[None]:
    """Turn an ``ImportError`` raised inside the block into one that names ``voicefn[name]``."""
    try:
        yield
    except ImportError as exc:
        raise MissingExtraError(name, exc) from exc
