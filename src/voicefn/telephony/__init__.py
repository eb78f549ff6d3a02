"""Telephony providers that carry out the runtime's call-control events (transfer, SMS).

Provider modules import their SDK lazily: ``from voicefn.telephony.twilio import TwilioTelephony``
needs the ``twilio`` package; importing :mod:`voicefn.telephony` alone does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .twilio import TelephonyError, TwilioTelephony

__all__ = ["TelephonyError", "TwilioTelephony"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import twilio

        return getattr(twilio, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
