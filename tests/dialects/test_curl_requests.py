"""from_curl / from_curl_all, issue 8 section 2: shell variables, -F, repeated keys, --next and -T,
system-variable names. Exact outputs; requests are built by the real HTTP action."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from voicefn.actions.base import Invocation
from voicefn.actions.http import HttpRunner
from voicefn.context import SYSTEM_VARIABLES, CallContext
from voicefn.dialects import validate
from voicefn.dialects.curl import CurlImport, CurlParseError, from_curl, from_curl_all
from voicefn.egress import EgressPolicy
from voicefn.results import ToolResult
from voicefn.spec import Function
from voicefn.transport import AiohttpTransport

FIXTURES = Path(__file__).resolve().parent / "curl_fixtures"


def action(result: CurlImport) -> dict[str, Any]:
    doc = result.function.to_dict()
    assert validate(doc, "voicefn", variables=_vars(doc)).ok
    out: dict[str, Any] = doc["action"]
    return {
        k: v for k, v in out.items() if k not in ("pre_call_webhook_param", "pre_call_webhook_url")
    }


def _vars(doc: dict[str, Any]) -> list[str]:
    return re.findall(r"\{([A-Za-z_]\w*)\}", str(doc))


def build(fn: Function, args: dict[str, Any], variables: dict[str, Any]) -> httpx.Request:
    """The request the real HTTP action makes for these arguments and context variables."""
    ctx = CallContext(call_sid="CA1", variables=variables)
    known = ctx.as_variables()
    inv = Invocation(
        fn,
        {**known, **args},
        known,
        ctx,
        "call_1",
        time.perf_counter(),
        ToolResult(fn.name, False, ""),
    )
    request, _ = HttpRunner(AiohttpTransport(EgressPolicy())).build_request(inv)
    # As an httpx.Request, to read the URL and body the way the server will see them.
    return httpx.Request(request.method, request.url, headers=request.headers, content=request.body)


HOW = (
    "set it for every call (--var {n}=... with voicefn invoke or call, under variables: in the "
    "agent file, or CallContext(variables={{'{n}': ...}}) in Python)"
)

# ----------------------------------------------------------------- shell variables


def test_bearer_env_var_from_real_fixture_becomes_a_context_variable() -> None:
    result = from_curl((FIXTURES / "get_with_env_var.sh").read_text())
    assert action(result) == {
        "type": "http",
        "method": "GET",
        "url": "http://localhost:28139/v2/images",
        "param": {"type": "%(type)s"},
        "api_token": None,
        "headers": {"Content-Type": "application/json", "Authorization": "Bearer {do_api_token}"},
        "timeout_ms": 5000,
    }
    assert (
        "the shell variable $DO_API_TOKEN (in the Authorization header) became the context "
        "variable {do_api_token}; " + HOW.format(n="do_api_token")
    ) in result.warnings
    request = build(result.function, {"type": "distribution"}, {"do_api_token": "dop_v1_abc"})
    assert request.headers["Authorization"] == "Bearer dop_v1_abc"
    assert str(request.url) == "http://localhost:28139/v2/images?type=distribution"


def test_user_with_variables_is_not_base64_of_the_names() -> None:
    result = from_curl(
        'curl -u "$TWILIO_ACCOUNT_SID:$TWILIO_AUTH_TOKEN" '
        "https://api.twilio.com/2010-04-01/Accounts/$TWILIO_ACCOUNT_SID/Messages.json "
        "--data-urlencode 'Body=Hello'"
    )
    got = action(result)
    assert got["api_token"] is None
    assert got["headers"]["Authorization"] == "Basic {basic_credentials}"
    assert got["url"] == (
        "https://api.twilio.com/2010-04-01/Accounts/{twilio_account_sid}/Messages.json"
    )
    names_b64 = base64.b64encode(b"$TWILIO_ACCOUNT_SID:$TWILIO_AUTH_TOKEN").decode()
    assert names_b64 not in str(got)
    assert (
        "-u/--user '$TWILIO_ACCOUNT_SID:$TWILIO_AUTH_TOKEN' holds shell variables, and Basic "
        "credentials are the base64 of user:password, which a template cannot compute: the "
        "function sends Authorization: Basic {basic_credentials}, whose value is the output of "
        "printf '%s' \"$TWILIO_ACCOUNT_SID:$TWILIO_AUTH_TOKEN\" | base64; "
        + HOW.format(n="basic_credentials")
    ) in result.warnings
    secret = base64.b64encode(b"AC1:tok").decode()
    request = build(
        result.function,
        {"Body": "Hi"},
        {"basic_credentials": secret, "twilio_account_sid": "AC1"},
    )
    assert request.headers["Authorization"] == f"Basic {secret}"
    assert request.url.path == "/2010-04-01/Accounts/AC1/Messages.json"


def test_user_with_literal_user_and_variable_password() -> None:
    got = action(from_curl("curl -u admin:$PASS https://api.example.com/x"))
    assert (got["api_token"], got["headers"]) == (
        None,
        {"Authorization": "Basic {basic_credentials}"},
    )


def test_braced_variable_in_single_quoted_header_and_oauth2_bearer() -> None:
    result = from_curl(
        "curl https://api.example.com/v1/me -H 'X-Api-Key: ${API_KEY}' --oauth2-bearer $TOKEN"
    )
    assert action(result)["headers"] == {
        "X-Api-Key": "{api_key}",
        "Authorization": "Bearer {token}",
    }
    assert not any("plain text" in w for w in result.warnings)  # no secret is in the file


def test_command_substitution_becomes_a_variable() -> None:
    result = from_curl(
        'curl -H "Authorization: Bearer $(gcloud auth print-access-token)" '
        "https://speech.googleapis.com/v1/operations"
    )
    assert action(result)["headers"] == {"Authorization": "Bearer {access_token}"}
    assert (
        "$(gcloud auth print-access-token) (in the Authorization header) runs a command, which a "
        "function cannot: it became the context variable {access_token}, whose value is that "
        "command's output; " + HOW.format(n="access_token")
    ) in result.warnings


def test_variables_in_bodies_stay_fixed_and_single_quoted_dollars_stay_literal() -> None:
    result = from_curl(
        'curl https://api.example.com/graphql -H "Content-Type: application/json" '
        '-d \'{"query": "query Q($id: ID!) { node(id: $id) }", "limit": 2}\''
    )
    assert action(result)["param"] == {"query": "%(query)s", "limit": "%(limit)i"}
    form = from_curl('curl https://api.example.com/sms -d "from=$FROM_PHONE" -d "to=+1555" -d \\$5')
    assert action(form)["param"] == {"from": "{from_phone}", "to": "%(to)s", "$5": ""}
    assert list(form.function.properties) == ["to"]
    bare = from_curl(
        'curl https://api.example.com/n -H "Content-Type: application/json" -d "{\\"n\\": $COUNT}"'
    )
    assert action(bare)["param"] == {"n": "{count}"}


def test_variable_named_like_a_system_variable_is_renamed() -> None:
    result = from_curl('curl "https://api.example.com/calls?agent=$AGENT_ID"')
    assert action(result)["param"] == {"agent": "{target_agent_id}"}
    assert any(
        w.startswith(
            "the shell variable $AGENT_ID (query field agent) became the context "
            "variable {target_agent_id} (not {agent_id}:"
        )
        for w in result.warnings
    )


def test_variable_host_is_refused() -> None:
    with pytest.raises(CurlParseError) as info:
        from_curl('curl "https://$HOST/v1/orders"')
    assert str(info.value).startswith(
        "the URL 'https://$HOST/v1/orders' takes its scheme, host or port from a shell variable"
    )
    with pytest.raises(CurlParseError, match="takes its host from a shell variable"):
        from_curl("curl $BASE_URL/v1/orders")


# ----------------------------------------------------------------- -F multipart


def test_form_text_fields_from_real_fixture() -> None:
    result = from_curl((FIXTURES / "get_with_form.sh").read_text())
    assert action(result) == {
        "type": "http",
        "method": "POST",
        "url": "http://localhost:28139/v3",
        "param": {"from": "%(from)s", "to": "%(to)s", "subject": "%(subject)s", "text": "%(text)s"},
        "api_token": "Basic dGVzdDo=",
        "headers": {"Content-Type": "multipart/form-data"},
        "timeout_ms": 5000,
    }
    assert result.function.properties["to"]["description"] == 'to (example: "devs@tester.net")'


def test_form_quoted_values_types_and_boundaries() -> None:
    result = from_curl(
        "curl https://api.example.com/f -H 'Content-Type: multipart/form-data; boundary=XyZ' "
        "-F 'token=\"9d96\"' -F 'meta={\"a\": 1};type=application/json' --form-string 'at=@home'"
    )
    assert action(result)["param"] == {"token": "%(token)s", "meta": "%(meta)s", "at": "%(at)s"}
    assert action(result)["headers"] == {"Content-Type": "multipart/form-data"}
    assert result.function.properties["token"]["description"] == 'token (example: "9d96")'
    assert result.function.properties["meta"]["description"] == 'meta (example: "{\\"a\\": 1}")'
    assert any("'meta' has type=application/json" in w for w in result.warnings)
    assert any("dropped the boundary" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("command", "start"),
    [
        (
            "curl -F 'doc=<notes.txt' https://api.example.com/f",
            "-F 'doc=<notes.txt' uploads a file",
        ),
        (
            "curl -F a=1 -d b=2 https://api.example.com/f",
            "the command mixes -F (multipart form) with -d",
        ),
        (
            "curl -X GET -F a=1 https://api.example.com/f",
            "-F sends a multipart body, but the method is GET",
        ),
        ("curl -F novalue https://api.example.com/f", "-F/--form 'novalue' is not a form field"),
    ],
)
def test_form_refusals(command: str, start: str) -> None:
    with pytest.raises(CurlParseError) as info:
        from_curl(command)
    assert str(info.value).startswith(start)


def test_raw_multipart_body_from_a_browser_becomes_fields() -> None:
    body = (
        '$\'--B1\\r\\nContent-Disposition: form-data; name="name"\\r\\n\\r\\nAsha\\r\\n'
        '--B1\\r\\nContent-Disposition: form-data; name="msg"\\r\\n\\r\\nhi there\\r\\n--B1--\\r\\n\''
    )
    result = from_curl(
        f"curl https://api.example.com/contact -H 'content-type: multipart/form-data; boundary=B1' "
        f"--data-raw {body}"
    )
    assert action(result)["param"] == {"name": "%(name)s", "msg": "%(msg)s"}


def test_http_action_sends_form_fields_as_multipart() -> None:
    fn = from_curl("curl -F name=Asha -F note=hi https://api.example.com/contact").function
    request = build(fn, {"name": "Asha", "note": "hi"}, {})
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    content = request.read()
    assert b'name="name"\r\n\r\nAsha' in content
    assert b'name="note"\r\n\r\nhi' in content


# ----------------------------------------------------------------- repeated keys


def test_repeated_query_key_from_real_fixture_is_a_list() -> None:
    result = from_curl((FIXTURES / "repeated_query_key.sh").read_text())
    assert action(result)["param"] == {"key": "%(key)s"}
    assert result.function.properties["key"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": 'key (example: ["one", "two"])',
    }
    request = build(result.function, {"key": ["one", "two"]}, {})
    assert request.url.query == b"key=one&key=two"


def test_repeated_form_keys_keep_every_value() -> None:
    result = from_curl((FIXTURES / "post_same_field_multiple_times.sh").read_text())
    assert (
        result.function.properties["foo"]["description"] == 'foo (example: ["bar", "", "barbar"])'
    )
    assert (
        "body field 'foo' is given 3 times: its values are kept as a list, sent as repeated foo= fields"
        in result.warnings
    )
    request = build(result.function, {"foo": ["bar", "", "barbar"]}, {})
    assert request.read() == b"foo=bar&foo=&foo=barbar"
    array = from_curl((FIXTURES / "j_patch_array.sh").read_text())
    assert action(array)["param"] == {"item[]": "%(item)s"}
    assert build(array.function, {"item": ["1", "2"]}, {}).read() == b"item%5B%5D=1&item%5B%5D=2"


def test_repeated_keys_across_url_and_get_data_merge() -> None:
    result = from_curl("curl -G 'https://api.example.com/s?tag=a' -d tag=b -d q=x")
    assert action(result)["param"] == {"tag": "%(tag)s", "q": "%(q)s"}
    assert result.function.properties["tag"]["type"] == "array"


def test_duplicate_json_key_is_warned() -> None:
    result = from_curl('curl https://api.example.com/j --json \'{"a": 1, "a": 2}\'')
    assert action(result)["param"] == {"a": "%(a)i"}
    assert (
        "JSON field 'a' is given more than once in one object: JSON keeps only the last value"
        in result.warnings
    )


# ----------------------------------------------------------------- --next, several URLs, -T


def test_next_makes_one_function_per_request() -> None:
    command = (
        "curl -X POST https://api.example.com/orders -d item=tea "
        "--next https://api.example.com/orders/ORD-1234 -H 'X-A: 1'"
    )
    first, second = from_curl_all(command)
    assert (first.function.name, action(first)["method"], action(first)["param"]) == (
        "create_order",
        "POST",
        {"item": "%(item)s"},
    )
    assert action(second) == {
        "type": "http",
        "method": "GET",
        "url": "https://api.example.com/orders/%(order_id)s",
        "param": {},
        "api_token": None,
        "headers": {"X-A": "1"},  # nothing of the first request leaks into the second
        "timeout_ms": 5000,
    }
    assert all(w.startswith("request 2: ") for w in second.warnings)
    with pytest.raises(CurlParseError) as info:
        from_curl(command)
    assert str(info.value) == (
        "the command makes 2 requests (request 1: POST https://api.example.com/orders; "
        "request 2: GET https://api.example.com/orders/ORD-1234); a function makes one request: "
        "paste one request at a time"
    )


def test_names_stay_unique_and_follow_the_given_name() -> None:
    items = from_curl_all("curl https://api.example.com/a https://api.example.com/a", name="look")
    assert [i.function.name for i in items] == ["look", "look_2"]
    items = from_curl_all("curl https://api.example.com/a\ncurl https://api.example.com/a")
    assert [i.function.name for i in items] == ["get_a", "get_a_2"]


def test_upload_is_a_put_with_the_file_name_appended() -> None:
    result = from_curl((FIXTURES / "upload_file.sh").read_text())
    assert (action(result)["method"], action(result)["url"]) == (
        "PUT",
        "http://localhost:28139/file.txt",
    )
    assert (
        "the body curl sends is the file 'file.txt' (-T), which the converter cannot see: the "
        "function's PUT sends an empty JSON object {}; write the body into param"
    ) in result.warnings
    kept = action(from_curl("curl -T a.json https://api.example.com/docs/1"))
    assert (kept["method"], kept["url"]) == ("PUT", "https://api.example.com/docs/%(doc_id)s")


def test_upload_with_data_is_refused() -> None:
    with pytest.raises(CurlParseError) as info:
        from_curl((FIXTURES / "put_with_T_option.sh").read_text())
    assert str(info.value) == (
        "the command uploads 'my_file.txt' with -T and also gives -d data: curl sends only the "
        "file (as a PUT). Remove -T to send the -d data, or remove -d to upload the file"
    )


def test_heredoc_feeds_data_from_stdin() -> None:
    result = from_curl(
        "curl -X POST https://api.example.com/notes -H 'Content-Type: application/json' "
        '--data-binary @- <<EOF\n{"text": "hi"}\nEOF\n'
    )
    assert action(result)["param"] == {"text": "%(text)s"}


# ----------------------------------------------------------------- system variable names


@pytest.mark.parametrize("system", SYSTEM_VARIABLES)
def test_no_parameter_is_named_like_a_system_variable(system: str) -> None:
    result = from_curl(f'curl https://api.example.com/x --json \'{{"{system}": "v"}}\'')
    assert action(result)["param"] == {system: f"%(target_{system})s"}
    assert list(result.function.properties) == [f"target_{system}"]
    assert any(
        w.startswith(f"body field {system!r}: the parameter is 'target_{system}', not {system!r}")
        for w in result.warnings
    )


def test_agent_path_id_and_doc_placeholder_never_become_agent_id() -> None:
    result = from_curl((FIXTURES / "patch.sh").read_text())
    assert action(result)["url"] == "http://localhost:28139/go/api/agents/%(target_agent_id)s"
    assert "agent_id" not in result.function.properties
    doc = from_curl("curl https://api.example.com/calls/{call_sid}")
    assert action(doc)["url"] == "https://api.example.com/calls/%(target_call_sid)s"
    request = build(doc.function, {"target_call_sid": "CA999"}, {})
    assert request.url.path == "/calls/CA999"  # the LLM's value, not the call's own CA1
