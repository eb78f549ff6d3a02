"""from_curl: curl commands (API docs, Postman, browser "Copy as cURL") -> functions."""

from __future__ import annotations

import base64
import itertools
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicefn.context import SYSTEM_VARIABLES
from voicefn.dialects import dump, validate
from voicefn.dialects.curl import CurlImport, CurlParseError, _decode_ansi_c, from_curl
from voicefn.templates import Template
from voicefn.validation import validate_document

SEEDS = Path(__file__).resolve().parents[2].parent / "shared" / "seeds"


def convert(command: str, **kwargs: Any) -> CurlImport:
    """Convert, and check the result is a function voicefn accepts with no errors."""
    result = from_curl(command, **kwargs)
    report = validate(result.function.to_dict(), "voicefn")
    assert report.ok, [str(p) for p in report.errors]
    _, problems = validate_document(result.function.to_dict())
    assert not [p for p in problems if p.severity == "error"]
    return result


def warned(result: CurlImport, *fragments: str) -> bool:
    """Some warning mentions every fragment."""
    return any(all(f in w for f in fragments) for w in result.warnings)


# ----------------------------------------------------------------- seed 002 / seed 001 examples

SEED_CASES: list[tuple[str, dict[str, Any]]] = [
    (
        # seed 002, GET "Check Order Status"
        """curl --location 'https://api.yourstore.com/orders?order_id=ORD-78234' \\
--header 'Authorization: Bearer sk_live_abc123'""",
        {
            "method": "GET",
            "param": {"order_id": "%(order_id)s"},
            "url": "https://api.yourstore.com/orders",
            "api_token": "Bearer sk_live_abc123",
            "headers": {},
        },
    ),
    (
        # seed 002, GET "Look Up Account Balance"
        """curl --location 'https://api.yourbank.com/accounts/balance?account_id=ACC-991042&phone=%2B919876543210' \\
--header 'Authorization: Bearer fin_api_key_001' \\
--header 'X-Request-Source: voice-agent'""",
        {
            "method": "GET",
            "param": {"account_id": "%(account_id)s", "phone": "%(phone)s"},
            "url": "https://api.yourbank.com/accounts/balance",
            "api_token": "Bearer fin_api_key_001",
            "headers": {"X-Request-Source": "voice-agent"},
        },
    ),
    (
        # seed 002, POST "Book an Appointment"
        """curl --location 'https://api.yourclinic.com/v1/appointments' \\
--header 'Content-Type: application/json' \\
--header 'Authorization: Bearer clinic_token_xyz' \\
--data '{
    "patient_name": "Priya Sharma",
    "preferred_date": "2026-03-20",
    "preferred_time": "10:30 AM",
    "reason": "General consultation"
}'""",
        {
            "method": "POST",
            "param": {
                "patient_name": "%(patient_name)s",
                "preferred_date": "%(preferred_date)s",
                "preferred_time": "%(preferred_time)s",
                "reason": "%(reason)s",
            },
            "url": "https://api.yourclinic.com/v1/appointments",
            "api_token": "Bearer clinic_token_xyz",
            "headers": {"Content-Type": "application/json"},
        },
    ),
    (
        # seed 002, POST "Create a Support Ticket"
        """curl --location 'https://api.yourhelpdesk.com/tickets' \\
--header 'Content-Type: application/json' \\
--header 'Authorization: Bearer helpdesk_key_789' \\
--data '{
    "caller_phone": "+919876543210",
    "issue_category": "billing",
    "description": "Customer was charged twice for their February subscription",
    "priority": "high"
}'""",
        {
            "method": "POST",
            "param": {
                "caller_phone": "%(caller_phone)s",
                "issue_category": "%(issue_category)s",
                "description": "%(description)s",
                "priority": "%(priority)s",
            },
            "url": "https://api.yourhelpdesk.com/tickets",
            "api_token": "Bearer helpdesk_key_789",
            "headers": {"Content-Type": "application/json"},
        },
    ),
    (
        # seed 001, GET example
        """curl --location 'https://my-api-dev.xyz?customer_phone=+19876543210' \\
--header 'Authorization: Bearer your_api_token' \\
--header 'header1: value1' \\
--header 'header2: value2'""",
        {
            "method": "GET",
            "param": {"customer_phone": "%(customer_phone)s"},
            "url": "https://my-api-dev.xyz",
            "api_token": "Bearer your_api_token",
            "headers": {"header1": "value1", "header2": "value2"},
        },
    ),
    (
        # seed 001, POST example
        """curl --location 'https://my-api-dev.xyz/v1/store_rating' \\
--header 'Content-Type: application/json' \\
--header 'Authorization: Bearer your_api_token' \\
--header 'version: 1.0' \\
--data '{
    "customer_id": "134532",
    "rating": "5",
    "comment": "Great service!"
}'""",
        {
            "method": "POST",
            "param": {
                "customer_id": "%(customer_id)s",
                "rating": "%(rating)s",
                "comment": "%(comment)s",
            },
            "url": "https://my-api-dev.xyz/v1/store_rating",
            "api_token": "Bearer your_api_token",
            "headers": {"Content-Type": "application/json", "version": "1.0"},
        },
    ),
]


@pytest.mark.parametrize(("command", "expected"), SEED_CASES)
def test_seed_examples_convert_to_the_seed_schema(command: str, expected: dict[str, Any]) -> None:
    result = convert(command)
    f = result.function
    assert f.action.method == expected["method"]
    assert f.action.url == expected["url"]
    assert f.action.token == expected["api_token"]
    assert f.action.headers == expected["headers"]
    assert f.action.param == expected["param"]
    assert set(f.properties) == set(expected["param"])
    assert f.required == list(expected["param"])
    assert all(p["type"] == "string" for p in f.properties.values())
    # Written back in Bolna's dialect, the API configuration is the seed's "value" object.
    doc, _ = dump(f, "bolna")
    assert doc["key"] == "custom_task"
    assert doc["value"] == expected
    assert warned(result, "-L/--location", "honoured")


def test_seed_example_descriptions_carry_the_example_values() -> None:
    f = convert(SEED_CASES[1][0]).function
    assert f.properties["account_id"]["description"] == 'account_id (example: "ACC-991042")'
    assert f.properties["phone"]["description"] == 'phone (example: "+919876543210")'
    assert f.name == "get_account_balance"
    assert f.description.startswith("Calls GET https://api.yourbank.com/accounts/balance.")
    assert "TODO" in f.description


def test_seed_001_plus_in_query_is_flagged() -> None:
    result = convert(SEED_CASES[4][0])
    assert warned(result, "customer_phone", "%2B")


def _seed_pairs(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Each ```bash curl block of a seed with the ```json schema that follows it."""
    blocks = re.findall(r"```(bash|json)[^\n]*\n(.*?)```", text, re.S)
    pairs = []
    for (kind, body), (next_kind, next_body) in itertools.pairwise(blocks):
        if kind == "bash" and body.lstrip().startswith("curl") and next_kind == "json":
            pairs.append((body, json.loads(next_body)))
    return pairs


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the shared seeds are not checked out here")
def test_every_curl_in_seed_002_matches_its_schema() -> None:
    seed = next(SEEDS.glob("002_*.txt"))
    pairs = _seed_pairs(seed.read_text(encoding="utf-8"))
    assert len(pairs) == 4
    for command, schema in pairs:
        f = convert(command).function
        value = schema["value"]
        assert f.action.method == value["method"]
        assert f.action.url == value["url"]
        assert f.action.token == value["api_token"]
        assert f.action.headers == value["headers"]
        assert f.action.param == value["param"]
        assert set(f.properties) == set(schema["parameters"]["properties"])


# ----------------------------------------------------------------- real-world paste styles


def test_bolna_generate_from_curl_example_get_agent() -> None:
    result = convert(
        "curl --location 'https://api.bolna.ai/v2/agent/123e4567-e89b-12d3-a456-426614174000' "
        "--header 'Authorization: Bearer bn-secret'"
    )
    f = result.function
    assert f.name == "get_agent"
    # Never %(agent_id)s: the engine would fill it with the voice agent's own id.
    assert f.action.url == "https://api.bolna.ai/v2/agent/%(target_agent_id)s"
    assert f.properties["target_agent_id"]["type"] == "string"
    assert (
        "123e4567-e89b-12d3-a456-426614174000" in (f.properties["target_agent_id"]["description"])
    )
    assert f.required == ["target_agent_id"]
    assert f.action.param == {}  # nothing echoed into the query string
    assert f.action.token == "Bearer bn-secret"
    assert warned(result, "looks like an ID", "'target_agent_id'")
    assert warned(result, "'target_agent_id', not 'agent_id'", "system variable", "{agent_id}")


CHROME = r"""curl 'https://app.example.com/api/v1/carts/8812/items?lang=en' \
  -H 'accept: application/json, text/plain, */*' \
  -H 'accept-language: en-GB,en;q=0.9' \
  -H 'authorization: Bearer eyJhbGciOi.payload.sig' \
  -H 'content-type: application/json' \
  -b 'session=abc123; theme=dark' \
  -H 'origin: https://app.example.com' \
  -H 'priority: u=1, i' \
  -H 'referer: https://app.example.com/cart' \
  -H 'sec-ch-ua: "Chromium";v="124", "Google Chrome";v="124"' \
  -H 'sec-ch-ua-mobile: ?0' \
  -H 'sec-ch-ua-platform: "macOS"' \
  -H 'sec-fetch-dest: empty' \
  -H 'sec-fetch-mode: cors' \
  -H 'sec-fetch-site: same-origin' \
  -H 'user-agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/124.0 Safari/537.36' \
  --data-raw $'{"sku":"TSHIRT-M","note":"it\'s a gift \u2013 caf\xc3\xa9\\n","qty":2,"price":19.99,"wrap":true}'"""


def test_chrome_copy_as_curl_bash() -> None:
    result = convert(CHROME)
    f = result.function
    assert f.action.method == "POST"
    assert f.action.url == "https://app.example.com/api/v1/carts/%(cart_id)s/items?lang=en"
    assert f.action.token == "Bearer eyJhbGciOi.payload.sig"
    assert f.action.headers == {
        "accept": "application/json, text/plain, */*",
        "accept-language": "en-GB,en;q=0.9",
        "content-type": "application/json",
        "origin": "https://app.example.com",
        "referer": "https://app.example.com/cart",
        "Cookie": "session=abc123; theme=dark",
    }
    assert f.action.param == {
        "sku": "%(sku)s",
        "note": "%(note)s",
        "qty": "%(qty)i",
        "price": "%(price)f",
        "wrap": "%(wrap)s",
    }
    types = {k: v["type"] for k, v in f.properties.items()}
    assert types == {
        "cart_id": "string",
        "sku": "string",
        "note": "string",
        "qty": "integer",
        "price": "number",
        "wrap": "boolean",
    }
    # $'...' decoding: \' and \u2013 and UTF-8 \xHH bytes; \\n stays a JSON escape -> newline.
    assert (
        json.dumps("it's a gift \u2013 caf\u00e9\n", ensure_ascii=False)
        in (f.properties["note"]["description"])
    )
    assert f.name == "create_cart_item"
    assert warned(result, "sec-ch-ua", "sec-fetch-mode", "priority")
    assert warned(result, "User-Agent")
    assert warned(result, "Cookie", "sensitive")
    assert warned(result, "?lang=en", "fixed")


def test_postman_location_request_data_raw() -> None:
    result = convert(
        """curl --location --request POST 'https://api.shop.io/v2/orders/ORD-78234/refunds' \\
--header 'x-api-key: pk_live_998' \\
--header 'Content-Type: application/json' \\
--data-raw '{
    "amount": 12.5,
    "reason": "damaged",
    "items": [1, 2],
    "meta": {"channel": "voice"}
}'"""
    )
    f = result.function
    assert f.action.method == "POST"
    assert f.action.url == "https://api.shop.io/v2/orders/%(order_id)s/refunds"
    assert f.action.headers == {"x-api-key": "pk_live_998", "Content-Type": "application/json"}
    assert f.action.token is None
    assert f.action.param == {
        "amount": "%(amount)f",
        "reason": "%(reason)s",
        "items": "%(items)s",
        "meta": "%(meta)s",
    }
    assert f.properties["items"] == {
        "type": "array",
        "items": {"type": "integer"},
        "description": "items (example: [1, 2])",
    }
    assert f.properties["meta"]["type"] == "object"
    assert f.required == ["order_id", "amount", "reason", "items", "meta"]
    assert f.name == "create_order_refund"
    assert warned(result, "x-api-key", "secret")


def test_get_with_data_urlencode() -> None:
    result = convert(
        "curl -G 'https://api.example.com/search' --data-urlencode 'q=red shoes & socks' "
        "--data-urlencode 'city=São Paulo' -d limit=5"
    )
    f = result.function
    assert f.action.method == "GET"
    assert f.action.url == "https://api.example.com/search"
    assert f.action.param == {"q": "%(q)s", "city": "%(city)s", "limit": "%(limit)s"}
    assert f.properties["q"]["description"] == 'q (example: "red shoes & socks")'
    assert f.properties["city"]["description"] == 'city (example: "São Paulo")'
    assert "Content-Type" not in f.action.headers
    assert f.name == "search"


def test_data_urlencode_file_is_a_warning() -> None:
    result = convert("curl -G https://api.example.com/x --data-urlencode 'note@notes.txt' -d a=1")
    assert result.function.action.param == {"a": "%(a)s"}
    assert warned(result, "note@notes.txt", "file")


def test_user_becomes_basic_token() -> None:
    result = convert("curl -u 'AC123:auth tok:en' https://api.twilio.example/2010-04-01/Accounts")
    expected = "Basic " + base64.b64encode(b"AC123:auth tok:en").decode()
    assert result.function.action.token == expected
    assert "Authorization" not in result.function.action.headers


def test_authorization_header_wins_over_user() -> None:
    result = convert("curl -u a:b -H 'Authorization: Token xyz' https://api.example.com/me")
    assert result.function.action.token == "Token xyz"
    assert warned(result, "-u/--user", "ignored")


def test_url_userinfo_becomes_basic_token() -> None:
    f = convert("curl https://bob:pw@api.example.com/me").function
    assert f.action.url == "https://api.example.com/me"
    assert f.action.token == "Basic " + base64.b64encode(b"bob:pw").decode()


def test_json_flag() -> None:
    result = convert("""curl --json '{"name": "Asha", "age": 31}' https://api.example.com/people""")
    f = result.function
    assert f.action.method == "POST"
    assert f.action.headers == {"Content-Type": "application/json", "Accept": "application/json"}
    assert f.action.param == {"name": "%(name)s", "age": "%(age)i"}
    assert f.properties["age"]["type"] == "integer"
    assert f.name == "create_person"


def test_form_body_adds_form_content_type() -> None:
    result = convert(
        "curl https://api.example.com/v1/callbacks -d 'phone=%2B4915112345&slot=morning' "
        "-d 'Full Name=Jo+Doe'"
    )
    f = result.function
    assert f.action.method == "POST"
    assert f.action.headers == {"Content-Type": "application/x-www-form-urlencoded"}
    assert f.action.param == {
        "phone": "%(phone)s",
        "slot": "%(slot)s",
        "Full Name": "%(full_name)s",
    }
    assert f.properties["phone"]["description"] == 'phone (example: "+4915112345")'
    assert f.properties["full_name"]["description"] == 'Full Name (example: "Jo Doe")'
    assert warned(result, "Content-Type: application/x-www-form-urlencoded")
    assert warned(result, "'Full Name'", "full_name")


def test_combined_short_flags_and_max_time() -> None:
    result = convert("curl -sSLk -m 7.5 https://api.example.com/status -XGET")
    f = result.function
    assert f.action.method == "GET"
    assert f.action.timeout_ms == 7500
    for flag in ("-s/--silent", "-S/--show-error", "-k/--insecure"):
        assert warned(result, flag, "ignored")
    assert warned(result, "-L/--location", "redirects", "egress")
    assert warned(result, "TLS verification cannot be turned off")


@pytest.mark.parametrize(
    ("seconds", "expected", "warns"),
    [("2", 2000, False), ("0.25", 250, False), ("500", 120_000, True), ("0", 5000, True)],
)
def test_max_time_is_bounded(seconds: str, expected: int, warns: bool) -> None:
    result = convert(f"curl --max-time {seconds} https://api.example.com/x")
    assert result.function.action.timeout_ms == expected
    assert warned(result, "--max-time") is warns


def test_header_spellings_glued_and_equals() -> None:
    result = convert(
        "curl -HX-One:1 --header=X-Two:2 -H 'X-Three;' -H 'X-Gone:' -A MyBot/1.0 "
        "-e https://ref.example.com https://api.example.com/x"
    )
    assert result.function.action.headers == {
        "X-One": "1",
        "X-Two": "2",
        "X-Three": "",
        "User-Agent": "MyBot/1.0",
        "Referer": "https://ref.example.com",
    }
    assert warned(result, "X-Gone")


def test_dropped_transport_headers() -> None:
    result = convert(
        "curl https://api.example.com/x -H 'Host: api.example.com' -H 'Content-Length: 3' "
        "-H 'Accept-Encoding: gzip' -H 'Accept: */*' --compressed"
    )
    assert result.function.action.headers == {"Accept": "*/*"}
    for name in ("Host", "Content-Length", "Accept-Encoding"):
        assert warned(result, f"dropped header {name}")
    assert warned(result, "--compressed", "compression")


@pytest.mark.parametrize(
    ("path", "url_path", "name"),
    [
        ("/orders/12345", "/orders/%(order_id)s", "get_order"),
        (
            "/v2/agent/123e4567-e89b-12d3-a456-426614174000",
            "/v2/agent/%(target_agent_id)s",
            "get_agent",
        ),
        ("/users/507f1f77bcf86cd799439011/posts", "/users/%(user_id)s/posts", "get_user_posts"),
        ("/orders/ORD-78234", "/orders/%(order_id)s", "get_order"),
        ("/customers/cus_NffrFeUfNV2Hib", "/customers/%(customer_id)s", "get_customer"),
        (
            "/categories/42/line-items/7",
            "/categories/%(category_id)s/line-items/%(line_item_id)s",
            "get_category_line_item",
        ),
        ("/123", "/%(id)s", "get_example"),
        ("/v2/oauth2/token", "/v2/oauth2/token", "get_oauth2_token"),
        ("/a/1/b/2/a/3", "/a/%(a_id)s/b/%(b_id)s/a/%(a_id_2)s", "get_b_a"),
    ],
)
def test_path_ids_become_parameters(path: str, url_path: str, name: str) -> None:
    result = convert(f"curl https://api.example.com{path}")
    f = result.function
    assert f.action.url == "https://api.example.com" + url_path
    assert f.name == name
    placeholders = re.findall(r"%\((\w+)\)s", url_path)
    assert list(f.properties) == placeholders
    assert f.required == placeholders
    assert bool(placeholders) == warned(result, "looks like an ID")


def test_doc_style_path_placeholders() -> None:
    result = convert(
        "curl https://api.example.com/orders/{order_id}/items/:item_id/<note>/{agent_id}"
    )
    f = result.function
    # An API's {agent_id} is the agent it manages, not this voice agent: never a system variable.
    assert f.action.url == (
        "https://api.example.com/orders/%(order_id)s/items/%(item_id)s/%(note)s/%(target_agent_id)s"
    )
    assert list(f.properties) == ["order_id", "item_id", "note", "target_agent_id"]
    assert warned(result, "{order_id}", "parameter 'order_id'")
    assert warned(result, "path placeholder {agent_id}", "'target_agent_id', not 'agent_id'")


def test_consecutive_ids_do_not_stack_suffixes() -> None:
    f = convert("curl https://api.example.com/users/1/2").function
    assert f.action.url == "https://api.example.com/users/%(user_id)s/%(id)s"


def test_oauth2_bearer_flag() -> None:
    f = convert("curl --oauth2-bearer tok123 https://api.example.com/me").function
    assert f.action.token == "Bearer tok123"


def test_postman_variable_in_header_is_an_error() -> None:
    with pytest.raises(CurlParseError, match="Postman variable"):
        from_curl("curl https://api.example.com/x -H 'Authorization: Bearer {{token}}'")


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("curl -X DELETE https://api.example.com/orders/123", "delete_order"),
        ("curl -X put https://api.example.com/users/42 -d a=1", "update_user"),
        ("curl --request=PATCH https://api.example.com/v1/settings -d a=1", "update_settings"),
        ("curl -X POST https://api.example.com/api/v1/send_sms -d to=1", "send_sms"),
        ("curl -X POST https://api.example.com/orders/9/cancel", "cancel_order"),
        ("curl https://my-api-dev.xyz", "get_my_api_dev"),
        ("curl https://api.yourstore.com/", "get_yourstore"),
    ],
)
def test_generated_names(command: str, name: str) -> None:
    assert convert(command).function.name == name


def test_name_argument_and_invalid_name() -> None:
    assert convert("curl https://api.example.com/x", name="check_x").function.name == "check_x"
    with pytest.raises(CurlParseError, match="1-64 letters"):
        from_curl("curl https://api.example.com/x", name="check x")


def test_long_path_names_stay_valid() -> None:
    seg = "very_long_segment_name_" * 5
    f = convert(f"curl https://api.example.com/{seg}/{seg}").function
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", f.name)


def test_unknown_flag_is_named_in_a_warning() -> None:
    result = convert("curl --frobnicate -Q 'RNFR a' https://api.example.com/x --retry 3 -j")
    assert warned(result, "unknown option --frobnicate")
    assert warned(result, "-Q/--quote", "ignored")  # a curl option that takes a value
    assert warned(result, "--retry", "ignored")
    assert warned(result, "-j/--junk-session-cookies", "ignored")
    assert result.function.action.url == "https://api.example.com/x"
    assert not warned(result, "extra argument")


def test_unknown_flag_does_not_swallow_the_url() -> None:
    result = convert("curl --frobnicate https://api.example.com/x")
    assert result.function.action.url == "https://api.example.com/x"
    assert warned(result, "--frobnicate")


def test_multipart_file_field_is_refused() -> None:
    with pytest.raises(CurlParseError) as info:
        from_curl("curl -F 'file=@photo.jpg' -F 'caption=hi' https://api.example.com/uploads")
    assert str(info.value).startswith(
        "-F 'file=@photo.jpg' uploads a file, which a function cannot send: "
        "a function sends text fields only"
    )


def test_post_query_string_stays_fixed() -> None:
    result = convert(
        """curl -X POST 'https://api.example.com/v1/messages?channel=sms' """
        """-H 'Content-Type: application/json' -d '{"to": "+911234567890"}'"""
    )
    f = result.function
    assert f.action.url == "https://api.example.com/v1/messages?channel=sms"
    assert f.action.param == {"to": "%(to)s"}
    assert list(f.properties) == ["to"]
    assert warned(result, "?channel=sms", "fixed")


def test_post_with_get_flag_keeps_data_in_url() -> None:
    f = convert("curl -X POST -G https://api.example.com/run -d mode=fast").function
    assert f.action.url == "https://api.example.com/run?mode=fast"
    assert f.action.param == {}


def test_get_with_body_sends_fields_as_query() -> None:
    result = convert(
        """curl -X GET https://api.example.com/find -H 'Content-Type: application/json' -d '{"q": "x"}'"""
    )
    assert result.function.action.param == {"q": "%(q)s"}
    assert warned(result, "query parameters")


def test_json_body_without_content_type_is_detected() -> None:
    result = convert("""curl https://api.example.com/items -d '{"n": 1.5}'""")
    f = result.function
    assert f.action.headers == {"Content-Type": "application/json"}
    assert f.action.param == {"n": "%(n)f"}
    assert f.properties["n"]["type"] == "number"
    assert warned(result, "JSON", "Content-Type")


def test_json_list_body_is_kept_fixed() -> None:
    result = convert(
        """curl https://api.example.com/batch -H 'Content-Type: application/json' -d '[1, 2]'"""
    )
    assert result.function.action.param == [1, 2]
    assert result.function.properties == {}
    assert warned(result, "array", "fixed")


def test_null_field_and_invalid_names() -> None:
    result = convert(
        """curl https://api.example.com/x -H 'Content-Type: application/json' """
        """-d '{"Customer Name": "A", "customer_name": "B", "x": null}'"""
    )
    f = result.function
    assert f.action.param == {
        "Customer Name": "%(customer_name)s",
        "customer_name": "%(customer_name_2)s",
        "x": "%(x)s",
    }
    assert f.properties["x"]["type"] == "string"
    assert warned(result, "'x'", "null")


def test_secret_body_field_is_flagged() -> None:
    result = convert(
        """curl https://api.example.com/login --json '{"user": "a", "password": "p"}'"""
    )
    assert warned(result, "'password'", "secret")


def test_multiple_data_are_joined_with_ampersand() -> None:
    f = convert(
        "curl -d a=1 --data-raw 'b=@x' --data-binary c=3 https://api.example.com/f"
    ).function
    assert f.action.param == {"a": "%(a)s", "b": "%(b)s", "c": "%(c)s"}
    assert '"@x"' in f.properties["b"]["description"]


def test_data_from_file_is_a_warning() -> None:
    result = convert(
        "curl -X POST https://api.example.com/f -H 'Content-Type: application/json' -d @body.json"
    )
    assert result.function.action.param == {}
    assert warned(result, "@body.json", "file")


def test_line_continuations_crlf_prompt_and_no_curl_word() -> None:
    command = "$ curl \\\r\n  'https://api.example.com/orders?id=7' \\\r\n  -H 'X-A: 1'\r\n"
    f = convert(command).function
    assert f.action.url == "https://api.example.com/orders"
    assert f.action.headers == {"X-A": "1"}
    g = convert("-H 'X-A: 1' https://api.example.com/orders?id=7").function
    assert g.action.param == f.action.param == {"id": "%(id)s"}


def test_double_quotes_and_escapes() -> None:
    f = convert(
        'curl "https://api.example.com/notes" -H "Content-Type: application/json" '
        '-d "{\\"text\\": \\"say \\\\\\"hi\\\\\\"\\"}"'
    ).function
    assert f.properties["text"]["description"] == 'text (example: "say \\"hi\\"")'


def test_scheme_less_url_gets_https() -> None:
    result = convert("curl api.example.com/v1/orders?order_id=1")
    assert result.function.action.url == "https://api.example.com/v1/orders"
    assert warned(result, "https:// assumed")


def test_shell_pipeline_is_ignored() -> None:
    result = convert("curl -s https://api.example.com/x | jq .")
    assert result.function.action.url == "https://api.example.com/x"
    assert warned(result, "'|'")


def test_cookie_header_via_h_is_kept_with_warning() -> None:
    result = convert("curl https://api.example.com/x -H 'Cookie: sid=1' -b 'b=2'")
    assert result.function.action.headers == {"Cookie": "sid=1; b=2"}
    assert warned(result, "Cookie", "sensitive")


@pytest.mark.parametrize(
    ("escaped", "text"),
    [
        (r"a\nb\tc", "a\nb\tc"),
        (r"it\'s", "it's"),
        (r"back\\slash", "back\\slash"),
        (r"caf\xc3\xa9", "café"),
        (r"\u00e9\u2013", "\u00e9\u2013"),
        (r"\x41\102", "AB"),
    ],
)
def test_ansi_c_decoding(escaped: str, text: str) -> None:
    assert _decode_ansi_c(escaped) == text


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("curl", "no URL"),
        ("curl -s -v", "no URL"),
        ("hello world", "is not a URL"),
        ("wget https://api.example.com/x", "'wget' is not a URL"),
        ("curl 'https://api.example.com/x", "quote is not closed"),
        ("curl $'https://api.example.com/x", "not closed"),
        ("curl -I https://api.example.com/x", "HEAD"),
        ("curl -X OPTIONS https://api.example.com/x", "OPTIONS"),
        ("curl https://api.example.com/x -X", "needs a value"),
        ("curl ftp://files.example.com/a.txt", "http:// or https://"),
        ("curl '{{baseUrl}}/orders'", "Postman variables"),
        (
            """curl https://api.example.com/x -H 'Content-Type: application/json' -d '{"a": 1,}'""",
            "not valid JSON",
        ),
        ("curl https://api.example.com/x -H 'Content-Type: text/xml' -d '<a/>'", "text/xml"),
        ('curl ^"https://api.example.com/x^" ^\n -H ^"a: b^"', "Windows"),
    ],
)
def test_bad_input_raises_a_useful_error(command: str, message: str) -> None:
    with pytest.raises(CurlParseError, match=re.escape(message)) as info:
        from_curl(command)
    assert isinstance(info.value, ValueError)


def test_bad_input_message_shows_an_example() -> None:
    with pytest.raises(CurlParseError) as info:
        from_curl("")
    assert "curl 'https://" in str(info.value)


# ----------------------------------------------------------------- property

_keys = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True) | st.sampled_from(SYSTEM_VARIABLES)
_values = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
)
_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


@settings(max_examples=75, deadline=None)
@given(st.dictionaries(_keys, _values, min_size=1, max_size=8))
def test_json_fields_become_typed_parameters(body: dict[str, Any]) -> None:
    command = (
        "curl -X POST https://api.example.com/v1/things "
        f"-H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))}"
    )
    f = convert(command).function
    names = {k: f"target_{k}" if k in SYSTEM_VARIABLES else k for k in body}  # never a system name
    assert list(f.properties) == list(names.values())
    assert f.required == list(names.values())
    for key, value in body.items():
        assert f.properties[names[key]]["type"] == _TYPES[type(value)]
    # Rendering param with the example values as arguments gives back the example body.
    rendered = Template(f.action.param).render({names[k]: v for k, v in body.items()}, {})
    assert rendered == body
    assert all(type(rendered[k]) is type(v) for k, v in body.items())
