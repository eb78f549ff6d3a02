"""The dashboard in real Chromium against the real service: what a newcomer does, step by step,
and what must be refused (no session, a wrong key, a forged form, another workspace's pages)."""

from __future__ import annotations

import re
from typing import Any

from api_helpers import echo_function
from dashboard_helpers import Site, allow_loopback, arrive, login, new_workspace, shot
from playwright.sync_api import expect

from voicefn.testing import Reply, text, tool_call


def _agent(site: Site, key: str, **doc: Any) -> dict[str, Any]:
    with site.api(key) as api:
        created = api.post(
            "/v1/agents", json={"name": "store-agent", "system_prompt": "You help.", **doc}
        )
        assert created.status_code == 201, created.text
        return dict(created.json())


def test_newcomer_creates_fixes_tests_and_restores_a_function(page: Any, site: Site) -> None:
    allow_loopback(site)  # the operator lets this workspace's functions reach 127.0.0.1
    page.goto(f"{site.url}/login")
    shot(page, "login")
    login(page, site, site.key)

    # An agent.
    page.get_by_label("Name").fill("store-agent")
    page.get_by_label("System prompt").fill("You are Sam from Acme. Help callers with orders.")
    page.get_by_role("button", name="Create agent").click()
    expect(page.get_by_role("heading", name=re.compile("store-agent"))).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    shot(page, "agent")

    # A function from a pasted cURL command.
    page.get_by_role("link", name="New function").click()
    page.get_by_label("Paste a curl command").fill(
        f"curl -X POST {site.functions.url}/echo -H 'Content-Type: application/json' "
        """-d '{"order_id": "ORD-1"}'"""
    )
    page.get_by_role("button", name="Generate from cURL").click()
    editor = page.locator(".cm-content")
    expect(editor).to_contain_text('"%(order_id)s"')
    expect(page.locator("#curl-notes")).to_contain_text("Generated in voicefn")
    problems = page.locator("#problems")
    expect(problems).to_contain_text("0 error(s), 1 warning(s)")  # the TODO description

    # A typo in the template: the problem is shown at its place in the text.
    page.locator(".cm-line", has_text="%(order_id)s").click()
    page.keyboard.press("End")
    for _ in range(3):
        page.keyboard.press("ArrowLeft")
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    page.keyboard.type("ID")
    expect(page.locator(".cm-lintRange-error")).to_have_text('"%(order_ID)s"')
    expect(problems).to_contain_text("1 error(s)")
    expect(problems).to_contain_text("$.action.param.order_id")
    expect(problems).to_contain_text("order_id")  # the did-you-mean
    shot(page, "function-editor")

    # Fixed from the keyboard: the problem's button selects the place, typing replaces it.
    go = page.get_by_role("button", name="Go to $.action.param.order_id")
    go.focus()
    page.keyboard.press("Enter")
    page.keyboard.type('"%(order_id)s"')
    expect(page.locator(".cm-lintRange-error")).to_have_count(0)
    expect(problems).to_contain_text("0 error(s), 1 warning(s)")
    page.keyboard.press("Tab")  # leaves the editor: keyboard users are never trapped in it
    assert page.evaluate("!document.activeElement.closest('.cm-editor')")
    page.get_by_role("button", name="Create function").click()
    expect(page.get_by_role("status").first).to_have_text("Saved as version 1.")
    function_url = page.url.split("?")[0]

    # The test panel: arguments in, the request sent and what the LLM reads out.
    page.get_by_label("Arguments").fill('{"order_id": "ORD-1"}')
    page.get_by_role("button", name="Run test").click()
    result = page.locator("#test-result")
    expect(result).to_contain_text("OK")
    expect(result).to_contain_text("HTTP 200")
    expect(result).to_contain_text(re.compile(r"\d+\.\d ms total"))
    expect(page.get_by_test_id("request-sent")).to_contain_text(f"POST {site.functions.url}/echo")
    expect(page.get_by_test_id("llm-reads")).to_contain_text("ORD-1")
    arrived = [r for r in site.functions.received if r.path == "/echo"]
    assert arrived[-1].json == {"order_id": "ORD-1"}
    shot(page, "function-test")

    # A second version: the description's warning fixed.
    page.get_by_role("button", name="Go to $.description").click()
    page.keyboard.type('"Use this when the caller asks where their order is."')
    expect(problems).to_contain_text("No problems.")
    page.get_by_role("button", name="Save new version").click()
    expect(page.get_by_role("status").first).to_have_text("Saved as version 2.")

    # The diff between versions, then version 1 restored.
    page.get_by_role("button", name="Show diff").click()
    diff = page.locator("#diff")
    expect(diff.locator("del")).to_contain_text("TODO")
    expect(diff.locator("ins")).to_contain_text("Use this when the caller asks")
    shot(page, "function-versions")
    page.get_by_role("button", name="Restore version 1").click()
    expect(page.get_by_role("status").first).to_have_text("Version 1 restored as version 3.")
    expect(editor).to_contain_text("TODO")
    expect(page.get_by_role("row", name=re.compile("v3"))).to_contain_text("restore of v1")
    with site.api() as api:
        agent_id, function_id = function_url.split("/agents/")[1].split("/functions/")
        stored = api.get(f"/v1/agents/{agent_id}/functions/{function_id}").json()
    assert stored["version"] == 3
    assert "TODO" in stored["function"]["description"]

    # The execution in the log (filtered), and its detail.
    page.get_by_role("link", name="Executions").click()
    page.get_by_label("Source").select_option("call")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No executions match these filters.")).to_be_visible()
    page.get_by_label("Source").select_option("test")
    page.get_by_role("button", name="Filter").click()
    arrive(page, re.compile(r"source=test"))
    row = page.get_by_role("row", name=re.compile("create_echo"))
    expect(row).to_contain_text("test")
    expect(row).to_contain_text("ok")
    shot(page, "executions")
    row.get_by_role("link").click()
    expect(page.get_by_test_id("llm-reads")).to_contain_text("ORD-1")
    shot(page, "execution")

    page.get_by_role("link", name="Functions").click()
    expect(page.get_by_role("row", name=re.compile("create_echo"))).to_contain_text("v3")
    shot(page, "functions")
    page.get_by_role("link", name="Agents").click()
    expect(page.get_by_role("row", name=re.compile("store-agent"))).to_be_visible()
    shot(page, "agents")
    page.get_by_role("link", name="API keys").click()
    expect(page.get_by_role("row", name=re.compile("first key"))).to_contain_text("this session")
    shot(page, "keys")


def test_a_test_call_streams_fillers_functions_and_results(page: Any, site: Site) -> None:
    key = new_workspace(site, "calls")
    allow_loopback(site, key)
    agent = _agent(
        site,
        key,
        welcome_message="Hi, this is Sam from Acme.",
        llm={"model": "scripted", "base_url": site.llm.base_url, "max_retries": 0},
    )
    with site.api(key) as api:
        fn = api.post(f"/v1/agents/{agent['id']}/functions", json=echo_function(site.functions.url))
        assert fn.status_code == 201, fn.text
    site.llm.push(
        Reply(tool_calls=[tool_call("check_order", {"order_id": "ORD-7"})]),
        text("Your order ORD-7 is on its way."),
    )
    login(page, site, key, then=f"/agents/{agent['id']}/call")
    page.get_by_role("button", name="Start call").click()
    transcript = page.get_by_role("list", name="Conversation")
    expect(transcript).to_contain_text("Hi, this is Sam from Acme.")
    page.get_by_label("You say").fill("Where is my order ORD-7?")
    page.keyboard.press("Enter")
    expect(transcript.locator(".filler")).to_contain_text("Let me check.")
    finished = transcript.locator(".function.ok")
    expect(finished).to_contain_text("check_order finished: ok 200")
    expect(finished.locator("pre")).to_contain_text("ORD-7")
    expect(transcript.locator(".agent").last).to_have_text(
        re.compile("Your order ORD-7 is on its way.")
    )
    expect(page.get_by_label("You say")).to_be_enabled()
    shot(page, "call")
    page.get_by_role("button", name="Hang up").click()
    expect(transcript).to_contain_text("You hung up.")
    with site.api(key) as api:
        runs = api.get("/v1/executions", params={"source": "call"}).json()["data"]
    assert [(r["function"], r["ok"]) for r in runs] == [("check_order", True)]
    assert site.llm.requests[0]["tools"][0]["function"]["name"] == "check_order"


def test_pages_need_a_session_and_a_key_that_works(page: Any, site: Site) -> None:
    key = new_workspace(site, "login")
    page.goto(f"{site.url}/functions")
    arrive(page, f"{site.url}/login?next=/functions")
    page.get_by_label("API key").fill("vfn_not_a_real_key_0123456789")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("This API key is unknown or revoked.")
    assert page.context.cookies() == []
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    arrive(page, f"{site.url}/functions")
    cookie = page.context.cookies()[0]
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
    assert key not in cookie["value"]  # encrypted, not the key itself

    with site.api(key) as api:
        key_id = api.get("/v1/api-keys").json()[0]["id"]
        second = api.post("/v1/api-keys", json={"name": "spare"}).json()
        assert api.delete(f"/v1/api-keys/{key_id}").status_code == 200
    page.reload()  # the session's key was revoked: the session is over
    arrive(page, f"{site.url}/login?next=/functions")
    login(page, site, second["key"], then="/keys")
    page.get_by_label("Name").fill("voice stack")
    page.get_by_role("button", name="Create key").click()
    made = page.get_by_label("Key", exact=True).input_value()
    assert made.startswith("vfn_")
    with site.api(made) as api:  # a working key of this workspace
        assert api.get("/v1/workspace").json()["name"].startswith("login-")
    page.get_by_role("button", name="Revoke voice stack").click()
    expect(page.get_by_role("row", name=re.compile("voice stack"))).to_contain_text("revoked")
    with site.api(made) as api:
        assert api.get("/v1/workspace").status_code == 401
    page.get_by_role("button", name="Sign out").click()
    arrive(page, f"{site.url}/login")
    page.goto(f"{site.url}/keys")
    arrive(page, f"{site.url}/login?next=/keys")


def test_forms_without_this_sessions_token_or_from_another_site_are_refused(
    page: Any, site: Site
) -> None:
    key = new_workspace(site, "forms")
    login(page, site, key)
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    same_origin = {"Origin": site.url}
    forged = [
        ({"name": "forged-1"}, same_origin),  # no token
        ({"name": "forged-2", "csrf_token": "0" * 43}, same_origin),  # a wrong token
        ({"name": "forged-3", "csrf_token": token}, {"Origin": "http://evil.example"}),
    ]
    for fields, headers in forged:
        answer = page.request.post(
            f"{site.url}/agents", form=fields, headers=headers, max_redirects=0
        )
        assert answer.status == 403, fields
        assert "nothing was changed" in answer.text()
    made = page.request.post(
        f"{site.url}/agents",
        form={"name": "made-here", "csrf_token": token},
        headers=same_origin,
        max_redirects=0,
    )
    assert made.status == 303  # the same request with the token: so the refusals were the token
    with site.api(key) as api:
        names = [a["name"] for a in api.get("/v1/agents").json()["data"]]
    assert names == ["made-here"]


def test_another_workspaces_pages_are_not_found_like_made_up_ones(page: Any, site: Site) -> None:
    a_key = new_workspace(site, "tenant-a")
    allow_loopback(site, a_key)
    agent = _agent(site, a_key, system_prompt="A-ONLY-MARKER")
    with site.api(a_key) as api:
        fn = api.post(
            f"/v1/agents/{agent['id']}/functions", json=echo_function(site.functions.url)
        ).json()
        run = api.post(
            f"/v1/agents/{agent['id']}/functions/{fn['id']}/test",
            json={"arguments": {"order_id": "A-1"}},
        ).json()
    b_key = new_workspace(site, "tenant-b")
    login(page, site, b_key)
    real = [
        f"/agents/{agent['id']}",
        f"/agents/{agent['id']}/functions/{fn['id']}",
        f"/agents/{agent['id']}/call",
        f"/executions/{run['execution_id']}",
    ]
    made_up = [
        "/agents/agent_0123456789abcdef",
        "/agents/agent_0123456789abcdef/functions/fn_0123456789abcdef",
        "/agents/agent_0123456789abcdef/call",
        "/executions/ex_0123456789abcdef01234567",
    ]
    pages = []
    for path in real + made_up:
        response = page.goto(f"{site.url}{path}")
        assert response is not None
        assert response.status == 404, path
        pages.append(page.content())
        assert "A-ONLY-MARKER" not in pages[-1]
    assert all(p == pages[0] for p in pages)  # nothing tells them apart
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()


def test_pages_fit_a_phone_screen(phone: Any, site: Site) -> None:
    key = new_workspace(site, "phone")
    agent = _agent(site, key)
    with site.api(key) as api:
        fn = api.post(
            f"/v1/agents/{agent['id']}/functions", json=echo_function(site.functions.url)
        ).json()
    login(phone, site, key)
    for path, name in [
        ("/agents", None),
        (f"/agents/{agent['id']}", None),
        (f"/agents/{agent['id']}/functions/{fn['id']}", "phone-function"),
        ("/executions", None),
        ("/keys", None),
    ]:
        phone.goto(f"{site.url}{path}")
        expect(phone.get_by_role("navigation", name="Main")).to_be_visible()
        if "/functions/" in path:
            expect(phone.locator("#problems")).to_contain_text("No problems.")
            shot(phone, name or "")
        overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 390px"


def test_the_editor_speaks_the_functions_other_dialects(page: Any, site: Site) -> None:
    key = new_workspace(site, "dialects")
    agent = _agent(site, key)
    with site.api(key) as api:
        fn = api.post(
            f"/v1/agents/{agent['id']}/functions", json=echo_function(site.functions.url)
        ).json()
    login(page, site, key, then=f"/agents/{agent['id']}/functions/{fn['id']}")
    page.get_by_label("Dialect").select_option("bolna")
    arrive(page, re.compile(r"\?dialect=bolna$"))
    editor = page.locator(".cm-content")
    expect(editor).to_contain_text('"key": "custom_task"')
    expect(page.get_by_role("note")).to_contain_text("bolna cannot carry")  # its one filler
    page.locator(".cm-line", has_text='"custom_task"').click()
    page.keyboard.press("End")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    page.keyboard.type("s")
    # The problem's path is Bolna's ($.key), marked where Bolna's document has it.
    expect(page.locator(".cm-lintRange-error")).to_have_text('"custom_tasks"')
    expect(page.locator("#problems")).to_contain_text("$.key")
    page.get_by_role("button", name="Save new version").click()
    expect(page.locator("#problems")).to_contain_text("Not saved")
    page.get_by_role("button", name="Go to $.key").click()
    page.keyboard.type('"custom_task"')
    expect(page.locator(".cm-lintRange-error")).to_have_count(0)
    page.get_by_role("button", name="Save new version").click()
    expect(page.get_by_role("status").first).to_have_text("Saved as version 2.")
    arrive(page, re.compile(r"dialect=bolna"))
    with site.api(key) as api:
        stored = api.get(f"/v1/agents/{agent['id']}/functions/{fn['id']}").json()
    assert (stored["version"], stored["source_dialect"]) == (2, "bolna")
