"""from_curl_all on real commands: the curlconverter project's fixtures (see curl_fixtures/README.md).

Every file must convert without crashing: to functions voicefn validates with no error, or to a
CurlParseError whose message starts as pinned here. The table pins each file's outcome (method and
URL of every request, or the start of the refusal), so any change of behaviour fails a test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voicefn.dialects import validate
from voicefn.dialects.curl import CurlParseError, from_curl, from_curl_all
from voicefn.validation import validate_document

FIXTURES = Path(__file__).resolve().parent / "curl_fixtures"

#: file stem -> ["METHOD url", ...] for each request, or the start of the error message.
EXPECTED: dict[str, list[str] | str] = {
    "bash_redirect": "the body has Content-Type 'text/xml', wh",
    "bash_redirect_heredoc": "the body is not valid JSON (Expecting ',",
    "bash_redirect_herestring": [
        "POST http://localhost:28139/api/servers/%(server_id)s/shared_servers/"
    ],
    "broken_cookie": ["GET http://localhost:8888/"],
    "commented_json_with_session": ["POST http://localhost:28139"],
    "delete": ["DELETE http://localhost:28139/page"],
    "form_quotes": "-F 'file1=@NewDoc.pdf' uploads a file, w",
    "get_basic_auth": ["GET http://localhost:28139/"],
    "get_basic_auth_no_user": ["GET http://localhost:28139/"],
    "get_cert_cacert": ["GET http://localhost:28139/"],
    "get_cert_key_capath": ["GET https://localhost:28139"],
    "get_charles_syntax": ["GET http://localhost:28139/"],
    "get_complex_url_params": ["GET http://localhost:28139/house-sitting/"],
    "get_cookie_with_empty_value": ["GET http://localhost:28139/cookies"],
    "get_cookies_from_file": ["GET http://localhost:28139/"],
    "get_digest_auth": ["GET http://localhost:28139/"],
    "get_follow_redirect": ["GET http://localhost:28139"],
    "get_header_with_quotes": ["GET http://localhost:28139"],
    "get_http2_warning": ["GET https://localhost:28139"],
    "get_insecure_basic_auth": ["GET http://localhost:28139/"],
    "get_insecure_full": ["GET http://localhost:28139"],
    "get_insecure_k": ["GET http://localhost:28139"],
    "get_insecure_short": ["GET http://localhost:28139/"],
    "get_long_form_header": ["GET http://localhost:28139/api/retail/books/list"],
    "get_max_time": ["GET http://localhost:28139"],
    "get_max_time_and_connect_timeout": ["GET http://localhost:28139"],
    "get_proxy": ["GET http://localhost:28139"],
    "get_proxy_with_auth": ["GET http://localhost:28139"],
    "get_referer": ["GET http://localhost:28139"],
    "get_silent": ["GET https://localhost:28139"],
    "get_url_starting_with_http": ["GET https://httpbin.org/test"],
    "get_user_agent": ["GET http://localhost:28139/vc/moviesmagic"],
    "get_user_agent_alias": ["GET http://localhost:28139/vc/moviesmagic"],
    "get_with_all_numerical_data": ["POST http://localhost:28139/CurlToNode"],
    "get_with_browser_headers": ["GET http://localhost:28139/"],
    "get_with_cookie_in_headers": ["GET http://localhost:28139/cookies"],
    "get_with_data": ["GET http://localhost:28139/synthetics/api/v3/monitors"],
    "get_with_data2": [
        "PUT http://localhost:28139/v2/alerts_policy_channels.json?policy_id=policy_id&channel_ids=channel_id"
    ],
    "get_with_env_var": ["GET http://localhost:28139/v2/images"],
    "get_with_form": ["POST http://localhost:28139/v3"],
    "get_with_header_lowercase_cookie": ["GET http://localhost:28139/page"],
    "get_with_header_without_value": ["GET https://localhost:28139/get"],
    "get_with_single_header": ["GET http://localhost:28139/"],
    "head": "-I/--head makes a HEAD request, which a ",
    "head_with_I_option": "-I/--head makes a HEAD request, which a ",
    "head_without_http": "-I/--head makes a HEAD request, which a ",
    "j_data_priority_than_f": "the command mixes -F (multipart form) wi",
    "j_patch_array": ["PATCH http://localhost:28139/patch"],
    "j_patch_file_only": "-F 'file1=@./test/fixtures/curl_commands",
    "j_patch_file_with_data": "-F 'file1=@./test/fixtures/curl_commands",
    "j_post_data_wo_verb": ["POST http://localhost:28139/post"],
    "j_post_form_f": ["POST http://localhost:28139/post"],
    "max_redirs": ["GET http://localhost:28139"],
    "multiline_post_with_data": ["GET http://localhost:28139/echo/html/"],
    "multipart_post": "-F 'file=@myfile.jpg' uploads a file, wh",
    "multipart_with_headers": "-F 'file=@myfile.jpg' uploads a file, wh",
    "multiple_commands": [
        "GET https://localhost:28139",
        "GET https://localhost:28139/second",
        "PUT https://localhost:28139/third",
    ],
    "multiple_d_post": ["POST http://localhost:28139/webservices/rest.php"],
    "multiple_urls": "the command uploads 'file.txt' with -T a",
    "no_location_with_full_cookie_jar": ["GET http://localhost:28139"],
    "options": "method 'OPTIONS' cannot be used by a fun",
    "parse_form_data": "-F 'your-email=@hhhhhhhh' uploads a file",
    "patch": ["PATCH http://localhost:28139/go/api/agents/%(target_agent_id)s"],
    "pipelines": [
        "GET https://localhost:28139",
        "GET https://localhost:28139",
        "GET https://localhost:28139",
        "GET https://localhost:28139",
        "GET https://localhost:28139",
    ],
    "post_basic_auth_url_encoded_data": ["POST http://localhost:28139/api/oauth/token/"],
    "post_binary_file": "the body has Content-Type 'application/s",
    "post_data_binary_with_equals": [
        "POST http://localhost:28139/api/service.svc?action=CreateItem&ID=-37&AC=1"
    ],
    "post_empty": ["POST http://localhost:28139"],
    "post_escaped_double_quotes_in_single_quotes": ["POST http://localhost:28139/"],
    "post_escaped_single_quotes_in_double_quotes": ["POST http://localhost:28139/"],
    "post_form": ["POST http://localhost:28139/post-to-me.php"],
    "post_image": "-F 'image=@image.jpg' uploads a file, wh",
    "post_json": ["POST http://localhost:28139"],
    "post_json_multiple_headers": ["POST http://localhost:28139/rest/login-sessions"],
    "post_number": ["POST http://localhost:28139"],
    "post_quotes_inside_data": ["POST https://localhost:28139"],
    "post_same_field_multiple_times": ["POST http://localhost:28139/"],
    "post_with_browser_headers": ["POST http://localhost:28139/ajax/demo_post.asp"],
    "post_with_colon_in_header": ["POST http://localhost:28139/endpoint"],
    "post_with_data-ascii": ["POST http://localhost:28139/echo/html/"],
    "post_with_data_binary": ["POST http://localhost:28139/post"],
    "post_with_data_raw": ["POST http://localhost:28139/post"],
    "post_with_data_with_percent_sign": ["POST http://localhost:28139/post"],
    "post_with_double_quotes_inside_single_quotes": ["POST http://localhost:28139/"],
    "post_with_escaped_double_quotes": ["POST http://localhost:28139/"],
    "post_with_extra_whitespace": "-F 'files=@47.htz' uploads a file, which",
    "post_with_quotes_anywhere": ["POST http://localhost:28139"],
    "post_with_single_quotes_inside_double_quotes": ["POST http://localhost:28139/"],
    "post_with_urlencoded_data": ["POST http://localhost:28139/echo/html/"],
    "post_with_urlencoded_data_and_headers": [
        "POST http://localhost:28139/api/Listing.svc/PropertySearch_Post"
    ],
    "post_xpost": ["POST http://localhost:28139/api/xxxxxxxxxxxxxxxx"],
    "put_basic_auth_json_data": ["PUT http://localhost:28139/test/_security"],
    "put_with_T_option": "the command uploads 'my_file.txt' with -",
    "put_with_file": ["PUT http://localhost:28139/upload"],
    "put_xput": ["PUT http://localhost:28139/twitter/_mapping/user?pretty"],
    "range": ["GET http://localhost:28139"],
    "read_cookies_and_mixed_auth": ["GET http://localhost:28139"],
    "read_stdin": ["POST https://localhost:28139"],
    "redirect_command_data": ["POST https://localhost:28139"],
    "redirect_command_url_query": ["GET https://localhost:28139"],
    "redirect_variable_and_string_data": ["POST https://localhost:28139"],
    "redirect_variable_data": ["POST https://localhost:28139"],
    "repeated_query_key": ["GET https://localhost:28139"],
    "socks_proxy": ["GET http://localhost:28139"],
    "strange_http_method": "method 'WHAT' cannot be used by a functi",
    "upload_file": ["PUT http://localhost:28139/file.txt"],
    "url_query": [
        "GET http://localhost:28139",
        "GET http://localhost:28139/",
        "GET http://localhost:28139",
        "GET http://localhost:28139",
    ],
    "url_query_reads_file": [
        "GET http://localhost:28139",
        "GET http://localhost:28139/",
        "GET http://localhost:28139",
        "GET http://localhost:28139",
    ],
}


def test_every_fixture_is_pinned() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.sh")) == sorted(EXPECTED)
    assert len(EXPECTED) == 108


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_fixture_converts_or_is_refused_clearly(stem: str) -> None:
    command = (FIXTURES / f"{stem}.sh").read_text(encoding="utf-8")
    expected = EXPECTED[stem]
    if isinstance(expected, str):
        with pytest.raises(CurlParseError) as info:
            from_curl_all(command)
        assert str(info.value).startswith(expected)
        assert "\x00" not in str(info.value)  # no internal marker leaks into a message
        return
    imported = from_curl_all(command)
    assert [f"{i.function.http.method} {i.function.http.url}" for i in imported] == expected
    names = [i.function.name for i in imported]
    assert len(set(names)) == len(names)
    for item in imported:
        doc = item.function.to_dict()
        assert validate(doc, "voicefn").ok
        _, problems = validate_document(doc, variables=_variables(doc))
        assert not [p for p in problems if p.severity == "error"]
        assert all("\x00" not in w for w in item.warnings)
        assert "\x00" not in str(doc)
    if len(expected) > 1:  # from_curl makes one function: it names the requests instead
        with pytest.raises(CurlParseError, match=f"makes {len(expected)} requests"):
            from_curl(command)
    else:
        assert from_curl(command).function == imported[0].function


def _variables(doc: dict[str, object]) -> list[str]:
    return re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", str(doc))
