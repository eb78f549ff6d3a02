"""The canonical function model: one home for every field the platforms' docs describe.

A :class:`Function` is what every dialect loads into and dumps from. Structural checks live on the
pydantic models; the rules that need the whole function (placeholders name declared parameters,
``required`` names declared properties, ...) live in :mod:`voicefn.validation`, which reports every
problem at once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)

Phase = Literal["pre_call", "in_call", "post_call"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
HTTP_METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE")
PHASES: tuple[str, ...] = ("pre_call", "in_call", "post_call")
BUILTINS: tuple[str, ...] = ("end_call", "transfer_call", "send_sms")
PARAMETER_TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean", "array", "object")
NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
DEFAULT_TIMEOUT_MS = 5000
MAX_TIMEOUT_MS = 120_000

#: Filler speech: one line, or one per language code ("en", "hi", "es-MX", ...).
Filler = str | dict[str, str]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class HttpAction(_Model):
    """How to call the customer's API. Nothing here can be changed by what the LLM says."""

    type: Literal["http"] = "http"
    method: str
    url: str
    #: The request template (Bolna's ``param``). ``None`` sends the arguments object as it is.
    param: Any = None
    #: Sent as the Authorization header value, e.g. ``"Bearer sk_live_..."``.
    api_token: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_ms: Annotated[int, Field(gt=0, le=MAX_TIMEOUT_MS)] = DEFAULT_TIMEOUT_MS
    #: Body template of a fire-and-forget webhook sent before the request (seed 002). The switch.
    pre_call_webhook_param: dict[str, Any] | None = None
    #: Where that webhook goes; the agent-level webhook URL when not set.
    pre_call_webhook_url: str | None = None

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_serializer("api_token", when_used="always")
    def _dump_token(self, value: SecretStr | None) -> str | None:
        # Dumping a function to its own file keeps the token; what is *printed* is redacted.
        return value.get_secret_value() if value is not None else None

    @property
    def token(self) -> str | None:
        return self.api_token.get_secret_value() if self.api_token is not None else None


class BuiltinAction(_Model):
    """A platform function the host carries out (seed 004): end the call, transfer it, send an SMS.

    Running one yields a directive (see :mod:`voicefn.actions.builtins`); the call runtime turns
    it into an event for the host (simulator, LiveKit/Pipecat adapter, telephony provider).
    """

    type: Literal["builtin"] = "builtin"
    builtin: str
    #: end_call: the goodbye line; send_sms: the body template (``%(x)s`` and ``{variable}``).
    message: str | None = None
    #: transfer_call: the fixed destination (E.164). The LLM never dials a number of its choosing:
    transfer_number: str | None = None
    #: ...unless it picks its ``number`` argument from this list.
    allowed_numbers: list[str] = Field(default_factory=list)
    #: send_sms: the sender; default: the number the caller dialled (``to_number``).
    sms_from: str | None = None
    timeout_ms: Annotated[int, Field(gt=0, le=MAX_TIMEOUT_MS)] = DEFAULT_TIMEOUT_MS
    pre_call_webhook_param: dict[str, Any] | None = None
    pre_call_webhook_url: str | None = None


class _CodeAction(_Model):
    """Customer code run in the sandbox (seed 000/003's advanced mode). Treated as hostile."""

    code: str
    #: The function to call in ``code``; by default the one named like the Function.
    entrypoint: str | None = None
    timeout_ms: Annotated[int, Field(gt=0, le=MAX_TIMEOUT_MS)] = DEFAULT_TIMEOUT_MS
    memory_mb: Annotated[int, Field(ge=32, le=2048)] = 256
    pre_call_webhook_param: dict[str, Any] | None = None
    pre_call_webhook_url: str | None = None


class PythonAction(_CodeAction):
    """``async def name(ctx: RunContext, ...) -> dict`` (pre-call and in-call functions)."""

    type: Literal["python"] = "python"


class JavaScriptAction(_CodeAction):
    """``async function name(data)`` with axios, moment and lodash (post-call functions)."""

    type: Literal["javascript"] = "javascript"


class McpAction(_Model):
    """A tool on an MCP server: over streamable HTTP (``url``) or a local process (``command``).

    An agent file's ``{mcp: {...}}`` entry becomes one function with this action per tool the
    server lists (:mod:`voicefn.integrations.mcp`). The URL goes through the egress policy like
    any request; a command runs only where the operator allows it
    (``Executor(allow_mcp_commands=True)``).
    """

    type: Literal["mcp"] = "mcp"
    #: The tool's name on the server (the function's own name may differ: ``[a-zA-Z0-9_-]``).
    tool: str
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    #: Extra environment for the command (on top of a minimal one: PATH, HOME, ...).
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    timeout_ms: Annotated[int, Field(gt=0, le=MAX_TIMEOUT_MS)] = DEFAULT_TIMEOUT_MS
    pre_call_webhook_param: dict[str, Any] | None = None
    pre_call_webhook_url: str | None = None

    @property
    def server(self) -> str:
        """The server, for messages: its URL, or the command line."""
        return self.url or " ".join([self.command or "", *self.args]).strip()


Action = HttpAction | BuiltinAction | PythonAction | JavaScriptAction | McpAction


class Function(_Model):
    """One tool an agent can use."""

    name: str
    description: str = ""
    phase: str = "in_call"
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    filler: Filler | None = None
    action: Action = Field(discriminator="type")
    #: May the same call (same arguments) run twice in one conversation? ``None``: only GETs.
    allow_repeat: bool | None = None
    #: Pre-call and in-call functions: values of a successful result kept as call variables,
    #: ``{variable_name: "<JMESPath into the response>"}`` (see :mod:`voicefn.runtime.postcall`).
    store: dict[str, str] = Field(default_factory=dict, exclude_if=lambda value: not value)
    #: Post-call functions: where each parameter's value comes from after the call. A string is
    #: a source (``call.from_number``, ``variables.x``, ``post_call.x``, ``transcript``);
    #: ``{"value": ...}`` (or a number, boolean or null) is a static value;
    #: ``{"source": ..., "default": ...}`` a source with a fallback.
    mapping: dict[str, Any] = Field(default_factory=dict, exclude_if=lambda value: not value)
    #: Fields of another platform's format that voicefn keeps but does not act on, by platform
    #: (``{"vapi": {"async": true}}``), so that converting back to that platform gives them
    #: again. Left out of documents when empty.
    platform_fields: dict[str, dict[str, Any]] = Field(
        default_factory=dict, exclude_if=lambda value: not value
    )

    @model_validator(mode="before")
    @classmethod
    def _default_action_type(cls, data: Any) -> Any:
        action = data.get("action") if isinstance(data, dict) else None
        if isinstance(action, dict) and "type" not in action:
            data = {**data, "action": {**action, "type": "http"}}
        return data

    @property
    def http(self) -> HttpAction:
        """The HTTP action; raises TypeError for other kinds (branch with ``isinstance``)."""
        if not isinstance(self.action, HttpAction):
            raise TypeError(f"{self.name} is a {self.action.type} function, not an HTTP one")
        return self.action

    @property
    def repeatable(self) -> bool:
        if self.allow_repeat is not None:
            return self.allow_repeat
        return isinstance(self.action, HttpAction) and self.action.method == "GET"

    @property
    def properties(self) -> dict[str, Any]:
        props = self.parameters.get("properties")
        return props if isinstance(props, dict) else {}

    @property
    def required(self) -> list[str]:
        req = self.parameters.get("required")
        return [r for r in req if isinstance(r, str)] if isinstance(req, list) else []

    def filler_for(self, language: str | None = None) -> str | None:
        """The filler line for a language: exact code, then its base ("en" for "en-IN"), then
        English, then the first one given."""
        if self.filler is None or isinstance(self.filler, str):
            return self.filler
        if not self.filler:
            return None
        if language:
            for code in (language, language.split("-")[0]):
                if code in self.filler:
                    return self.filler[code]
        return self.filler.get("en") or next(iter(self.filler.values()))

    def to_dict(self) -> dict[str, Any]:
        """The canonical (voicefn) document, secrets included: for writing the function's file."""
        return self.model_dump(mode="json", exclude_defaults=False)
