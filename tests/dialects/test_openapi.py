"""OpenAPI import on real public documents (tests/dialects/openapi_specs/, see its README): what
each operation becomes, what cannot be mapped and says so, and the requests the functions send
to a real server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from voicefn import CallContext, Executor, dump
from voicefn.dialects.openapi import (
    OpenAPIError,
    clean_schema,
    from_openapi,
    inline_refs,
    list_operations,
    load_document,
)

from servers import LocalServer

SPECS = Path(__file__).parent / "openapi_specs"
VOICEFN = str(Path(sys.executable).with_name("voicefn"))
ANTHROPIC_PROPERTY = re.compile(r"^[a-zA-Z0-9_.-]{1,64}$")


# file, base_url needed, functions, skipped
EXPECTED: list[tuple[str, bool, int, int]] = [
    ("oai-v2.0-petstore.json", False, 3, 0),
    ("oai-v2.0-petstore-expanded.json", False, 4, 0),
    ("oai-v2.0-uber.json", False, 5, 0),
    ("oai-v3.0-petstore.yaml", False, 3, 0),
    ("oai-v3.0-petstore-expanded.yaml", False, 4, 0),
    ("oai-v3.0-uspto.yaml", False, 3, 0),
    ("oai-v3.0-api-with-examples.yaml", True, 2, 0),
    ("oai-v3.0-callback-example.yaml", True, 1, 0),
    ("oai-v3.0-link-example.yaml", True, 6, 0),
    ("oai-v3.1-non-oauth-scopes.json", True, 1, 0),
    ("oai-v3.1-webhook-example.json", False, 0, 0),
    ("swagger-petstore-v3.yaml", False, 18, 1),
    ("stripe-2020-03-02-subset.json", False, 9, 0),
    ("twilio-api-v2010-subset.json", False, 7, 0),
]


def test_every_stored_document_is_covered() -> None:
    stored = {p.name for p in SPECS.iterdir() if p.suffix in (".json", ".yaml")}
    assert stored == {name for name, *_ in EXPECTED}


@pytest.mark.parametrize(("name", "needs_base", "count", "skipped"), EXPECTED)
def test_each_document_imports_into_valid_functions_every_dialect_can_write(
    name: str, needs_base: bool, count: int, skipped: int
) -> None:
    if needs_base:
        with pytest.raises(OpenAPIError, match="--base-url"):
            from_openapi(SPECS / name)
    result = from_openapi(SPECS / name, base_url="https://api.example.com" if needs_base else None)
    assert len(result.functions) == count
    assert len(result.skipped) == skipped
    names = [f.function.name for f in result.functions]
    assert len(set(names)) == len(names)
    ops = list_operations(load_document(SPECS / name))
    assert len(ops) == count + skipped
    for item in result.functions:
        fn = item.function
        assert fn.description
        for prop in fn.properties:
            assert ANTHROPIC_PROPERTY.fullmatch(prop), (fn.name, prop)
        for dialect in ("voicefn", "openai", "anthropic", "gemini"):
            dump(fn, dialect)


def imported(name: str, operation: str, **kwargs: Any) -> tuple[Any, list[str]]:
    result = from_openapi(SPECS / name, operations=[operation], **kwargs)
    [item] = result.functions
    return item.function, item.warnings


def test_swagger2_query_parameters_types_and_base_url() -> None:
    fn, _ = imported("oai-v2.0-petstore.json", "listPets")
    result = from_openapi(SPECS / "oai-v2.0-petstore.json")
    assert fn.description == "List all pets"
    assert fn.http.method == "GET"
    assert fn.http.url == "http://petstore.swagger.io/v1/pets"
    assert fn.http.param == {"limit": "%(limit)i"}
    assert fn.properties["limit"] == {
        "type": "integer",
        "format": "int32",
        "description": "How many items to return at one time (max 100)",
    }
    assert fn.required == []
    assert "serves only http" in result.warnings[0]


def test_path_parameters_become_url_placeholders() -> None:
    fn, _ = imported("oai-v3.0-petstore.yaml", "GET /pets/{petId}")
    assert fn.name == "showPetById"
    assert fn.http.url == "http://petstore.swagger.io/v1/pets/%(petId)s"
    assert fn.http.param == {}
    assert fn.required == ["petId"]


def test_all_of_models_merge_and_the_body_becomes_parameters() -> None:
    fn, warnings = imported("oai-v2.0-petstore-expanded.json", "addPet")
    assert fn.http.method == "POST"
    assert fn.http.param == {"name": "%(name)s", "tag": "%(tag)s"}
    assert fn.required == ["name"]
    assert (
        "parameters without a description (the LLM reads only their names): name, tag" in warnings
    )
    pet, _ = imported("oai-v3.0-petstore-expanded.yaml", "find pet by id")
    assert pet.name == "find_pet_by_id"  # operationId "find pet by id"
    assert pet.http.url.endswith("/pets/%(id)i")


def test_server_variables_and_form_bodies() -> None:
    fn, _ = imported("oai-v3.0-uspto.yaml", "perform-search")
    assert fn.http.url == "https://developer.uspto.gov/ds-api/%(dataset)s/%(version)s/records"
    assert fn.http.headers == {"Content-Type": "application/x-www-form-urlencoded"}
    assert fn.http.param == {"criteria": "%(criteria)s", "start": "%(start)i", "rows": "%(rows)i"}
    assert fn.required == ["version", "dataset", "criteria"]


def test_security_schemes_become_context_variable_placeholders_never_secrets() -> None:
    by_key, key_notes = imported("swagger-petstore-v3.yaml", "getPetById")
    oauth, oauth_notes = imported("swagger-petstore-v3.yaml", "findPetsByStatus")
    stripe, stripe_notes = imported("stripe-2020-03-02-subset.json", "PostRefunds")
    twilio, twilio_notes = imported("twilio-api-v2010-subset.json", "CreateMessage")
    assert by_key.http.headers == {"api_key": "{api_key}"}
    assert oauth.http.headers == {"Authorization": "Bearer {petstore_auth}"}
    assert any("does not run the OAuth flow" in n for n in oauth_notes)
    # Stripe accepts basic or bearer: the bearer scheme is the simpler one to fill.
    assert stripe.http.headers["Authorization"] == "Bearer {bearer_auth}"
    assert any("bearerAuth is used" in n for n in stripe_notes)
    assert twilio.http.headers["Authorization"] == "Basic {account_sid_auth_token}"
    assert any("--var account_sid_auth_token=" in n for n in twilio_notes)
    for fn in (by_key, oauth, stripe, twilio):
        assert fn.http.api_token is None
    assert any("--var api_key=" in n for n in key_notes)


def test_what_cannot_be_mapped_is_named() -> None:
    result = from_openapi(SPECS / "swagger-petstore-v3.yaml")
    [(op, why)] = result.skipped
    assert op.operation_id == "uploadFile"
    assert "application/octet-stream" in why
    by_name = {i.function.name: i for i in result.functions}
    assert any("header parameter 'api_key' is left out" in w for w in by_name["deletePet"].warnings)
    assert any(
        "optional query parameter 'status' of a POST is left out" in w
        for w in by_name["updatePetWithForm"].warnings
    )
    assert by_name["updateUser"].function.http.param["username"] == "%(body_username)s"
    body_list = by_name["createUsersWithListInput"].function
    assert body_list.http.param == "%(body)s"
    assert body_list.properties["body"]["type"] == "array"
    stripe = {
        i.function.name: i for i in from_openapi(SPECS / "stripe-2020-03-02-subset.json").functions
    }
    customers = stripe["PostCustomers"]
    assert "metadata" not in customers.function.properties
    assert any("form field 'metadata' is a nested object" in w for w in customers.warnings)
    callback = from_openapi(SPECS / "oai-v3.0-callback-example.yaml", base_url="https://x.example")
    assert any("callbacks" in w for w in callback.functions[0].warnings)
    assert (
        callback.functions[0].function.http.url
        == "https://x.example/streams?callbackUrl=%(callbackUrl)s"
    )
    hooks = from_openapi(SPECS / "oai-v3.1-webhook-example.json")
    assert any("webhook" in w for w in hooks.warnings)


def test_twilio_names_are_made_safe_and_required_body_fields_kept() -> None:
    listing, _ = imported("twilio-api-v2010-subset.json", "ListCall")
    assert listing.http.param["StartTime<"] == "%(StartTime_lt)s"
    assert "StartTime_gt" in listing.properties
    message, _ = imported("twilio-api-v2010-subset.json", "CreateMessage")
    assert message.required == ["AccountSid", "To"]
    assert message.http.url.endswith("/Accounts/%(AccountSid)s/Messages.json")
    # Markdown links in descriptions are reduced to their text.
    assert "](" not in json.dumps(message.parameters)


def test_unknown_operations_get_a_did_you_mean() -> None:
    with pytest.raises(OpenAPIError, match=r"did you mean 'showPetById'"):
        from_openapi(SPECS / "oai-v3.0-petstore.yaml", operations=["showPetsById"])


def test_not_an_openapi_document(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"asyncapi": "2.0.0"}')
    with pytest.raises(OpenAPIError, match=r"not an OpenAPI 3\.0/3\.1 or Swagger 2\.0"):
        from_openapi(path)
    path.write_text("{oops")
    with pytest.raises(OpenAPIError, match="not valid JSON or YAML"):
        from_openapi(path)


def test_refs_allof_nullable_and_recursion() -> None:
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "https://api.example.com"}],
        "paths": {
            "/agents/{agent_id}/nodes": {
                "parameters": [{"$ref": "#/components/parameters/Agent"}],
                "post": {
                    "operationId": "add.node",
                    "summary": "Add a node",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Node"}}
                        },
                    },
                },
            }
        },
        "components": {
            "parameters": {
                "Agent": {
                    "name": "agent_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
            "schemas": {
                "Node": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Base"},
                        {
                            "type": "object",
                            "required": ["label"],
                            "properties": {
                                "label": {"type": "string", "nullable": True},
                                "child": {"$ref": "#/components/schemas/Node"},
                                "id": {"type": "string", "readOnly": True},
                            },
                        },
                    ]
                },
                "Base": {
                    "type": "object",
                    "properties": {"kind": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
                },
            },
        },
    }
    result = from_openapi(doc)
    [item] = result.functions
    fn = item.function
    assert fn.name == "add_node"
    assert fn.http.url == "https://api.example.com/agents/%(target_agent_id)s/nodes"
    assert any("named like a system variable" in w for w in item.warnings)
    assert set(fn.properties) == {"target_agent_id", "kind", "label", "child"}
    assert fn.properties["label"]["type"] == ["string", "null"]
    assert fn.properties["kind"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    # Recursion stops: the nested Node is inlined a bounded number of times, then a bare object.
    depth, node = 0, fn.properties["child"]
    while "properties" in node and "child" in node["properties"]:
        depth, node = depth + 1, node["properties"]["child"]
    assert node["type"] == "object"
    assert depth < 8
    assert fn.required == ["target_agent_id", "label"]


def test_clean_schema_and_inline_refs_units() -> None:
    assert clean_schema({"type": "string", "example": "x", "xml": {"name": "n"}, "x-foo": 1}) == {
        "type": "string",
        "examples": ["x"],
    }
    assert clean_schema({"properties": {"a": {"type": "file"}}}) == {
        "properties": {"a": {"type": "string"}},
        "type": "object",
    }
    root = {"a": {"$ref": "#/a"}}
    assert inline_refs({"$ref": "#/a"}, root) == {"type": "object"}
    assert inline_refs({"$ref": "other.yaml#/X"}, {}) == {"$ref": "other.yaml#/X"}


async def test_imported_functions_send_the_request_the_api_expects(server: LocalServer) -> None:
    base = server.url
    message, _ = imported("twilio-api-v2010-subset.json", "CreateMessage", base_url=base)
    pet, _ = imported("swagger-petstore-v3.yaml", "getPetById", base_url=base)
    find, _ = imported("swagger-petstore-v3.yaml", "findPetsByStatus", base_url=base)
    credentials = base64.b64encode(b"AC123:secret").decode()
    ctx = CallContext(
        variables={
            "account_sid_auth_token": credentials,
            "AccountSid": "AC" + "0" * 32,
            "api_key": "key-123",
            "petstore_auth": "tok-456",
        }
    )
    async with Executor(allow_private_network=True) as ex:
        sent = await ex.run(message, {"To": "+15550100", "Body": "Your order shipped"}, ctx)
        got = await ex.run(pet, {"petId": 42}, ctx)
        found = await ex.run(find, {"status": "sold"}, ctx)
        missing = await ex.run(pet, {"petId": 42}, CallContext())
    # The test server answers 404 to these paths: what matters is what arrived.
    assert [r.status for r in (sent, got, found)] == [404, 404, 404]
    first, second, third = server.received
    assert first.method == "POST"
    assert first.path == f"/2010-04-01/Accounts/AC{'0' * 32}/Messages.json"
    assert first.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert first.text == "To=%2B15550100&Body=Your+order+shipped"
    assert first.headers["Authorization"] == f"Basic {credentials}"
    assert (second.method, second.path) == ("GET", "/pet/42")
    assert second.headers["api_key"] == "key-123"
    assert third.query == {"status": ["sold"]}
    assert third.headers["Authorization"] == "Bearer tok-456"
    # Without the credential the request is not sent, and the result says which variable.
    assert missing.data["reason"] == "template"
    assert "api_key" in missing.data["detail"]
    assert len(server.received) == 3


def test_the_command_line(tmp_path: Path) -> None:
    spec = str(SPECS / "oai-v3.0-petstore.yaml")
    listed = subprocess.run(
        [VOICEFN, "from-openapi", spec, "--list", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [o["operation_id"] for o in json.loads(listed.stdout)["operations"]] == [
        "listPets",
        "createPets",
        "showPetById",
    ]
    picked = subprocess.run(
        [VOICEFN, "from-openapi", spec, "-o", "listPets,showPetById", "--to", "bolna"],
        capture_output=True,
        text=True,
        check=True,
    )
    docs = json.loads(picked.stdout)
    assert [d["name"] for d in docs] == ["listPets", "showPetById"]
    assert all(d["key"] == "custom_task" for d in docs)
    assert "2 function(s) from Swagger Petstore" in picked.stderr
    written = subprocess.run(
        [VOICEFN, "from-openapi", spec, "--out-dir", str(tmp_path / "fns")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sorted(p.name for p in (tmp_path / "fns").iterdir()) == [
        "createPets.json",
        "listPets.json",
        "showPetById.json",
    ]
    assert "wrote" in written.stdout
    validated = subprocess.run(
        [VOICEFN, "validate", str(tmp_path / "fns" / "listPets.json")],
        capture_output=True,
        text=True,
    )
    assert validated.returncode == 0, validated.stdout
    bad = subprocess.run(
        [VOICEFN, "from-openapi", spec, "-o", "listPet", "--json"], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "did you mean 'listPets'?" in json.loads(bad.stdout)["message"]


def test_a_path_or_operation_may_name_its_own_server() -> None:
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "https://api.example.com/v1"}],
        "paths": {
            "/files": {
                "servers": [{"url": "https://uploads.example.com"}],
                "get": {"operationId": "listFiles", "summary": "List files"},
            },
            "/users": {"get": {"operationId": "listUsers", "summary": "List users"}},
        },
    }
    urls = {i.function.name: i.function.http.url for i in from_openapi(doc).functions}
    assert urls == {
        "listFiles": "https://uploads.example.com/files",
        "listUsers": "https://api.example.com/v1/users",
    }
    given = from_openapi(doc, base_url="http://127.0.0.1:9")
    assert {i.function.http.url for i in given.functions} == {
        "http://127.0.0.1:9/files",
        "http://127.0.0.1:9/users",
    }
