"""One LLM response of a call as it streams in: its words, its reasoning and its tool calls,
each call assembled from the fragments providers send (:meth:`Round.call_for`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ..results import ToolResult
from .streaming import ThinkFilter, complete_object


@dataclass
class StreamedCall:
    """One tool call as it streams in, then runs."""

    index: int | None
    id: str = ""
    name: str = ""
    arguments: str = ""
    llm_id: str = ""  # the id the LLM gave, if any (``id`` may be generated)
    extra_content: dict[str, Any] | None = None  # provider fields to send back (Gemini)
    sent_arguments: str | None = None  # the arguments it ran with
    engine_error: str | None = None  # the execution raised (a bug of ours): for the host
    announced: bool = False
    task: asyncio.Task[ToolResult] | None = None
    deduplicated: bool = False
    filler_at: float | None = None
    started_at: float | None = None
    round_sent_at: float | None = None  # when its round's request went (no reference: no cycle)


@dataclass
class Round:
    """One LLM response: its words, its reasoning and its tool calls, in the order they came."""

    calls: list[StreamedCall] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)  # reasoning_content, sent back
    extra_content: dict[str, Any] | None = None  # message-level provider fields, sent back
    think: ThinkFilter = field(default_factory=ThinkFilter)
    sent_at: float = 0.0
    filler_sent: bool = False
    first_token_ms: float | None = None
    by_id: dict[str, StreamedCall] = field(default_factory=dict)
    by_index: dict[int, StreamedCall] = field(default_factory=dict)
    last: StreamedCall | None = None

    def new_call(self, index: int | None, after: StreamedCall | None = None) -> StreamedCall:
        call = StreamedCall(index)
        if after is not None:
            self.calls.insert(self.calls.index(after) + 1, call)
        else:
            self.calls.append(call)
        if index is not None:
            self.by_index[index] = call
        self.last = call
        return call

    def call_for(
        self, index: int | None, call_id: str, name: str, touched: list[StreamedCall]
    ) -> StreamedCall:
        """The call a streamed fragment belongs to.

        The id decides where ids differ: a new id is a new call even at an index already
        used (providers that give every parallel call index 0) or with no index at all.
        Without an id, the index decides; without either, the fragment continues the last
        call, unless it names a function while that call's arguments are already whole, or
        names another function once that call has arguments (or came earlier in this delta).
        """
        if call_id:
            known = self.by_id.get(call_id)
            if known is not None:
                return known
            slot = self.by_index.get(index) if index is not None else self.last
            # An id arriving after the call's first fragment names that call; else a new one.
            call = slot if slot is not None and not slot.llm_id else self.new_call(index)
            call.llm_id = call_id
            if not call.announced:
                call.id = call_id
            self.by_id[call_id] = call
            return call
        if index is not None:
            known = self.by_index.get(index)
            return known if known is not None else self.new_call(index)
        slot = self.last
        if slot is None:
            return self.new_call(None)
        if name and slot.name:
            if complete_object(slot.arguments):
                return self.new_call(None)
            if name != slot.name and (slot.arguments or slot in touched):
                return self.new_call(None)
        return slot
