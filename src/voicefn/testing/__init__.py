"""Test doubles for code that talks to LLMs, shipped with voicefn.

`ScriptedLLM` is a real local HTTP server speaking the OpenAI Chat Completions wire format
(streaming SSE and plain JSON) that answers with scripted replies, so the real ``openai`` SDK
client code runs against it::

    from voicefn.testing import ScriptedLLM, Reply, text, tool_call, error_reply

    with ScriptedLLM() as llm:
        llm.push(text("Hello! How can I help?"))
        llm.push(Reply(text="Let me check.", tool_calls=[tool_call("check_order", {"id": "A1"})]))
        llm.push(error_reply(500, "overloaded"))
        client = openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=0)
        ...
        assert llm.requests[0]["messages"][0]["role"] == "system"

This subpackage uses only the standard library and is not imported by ``import voicefn``.
"""

from .llm_server import *  # noqa: F403
from .llm_server import __all__ as __all__
