"""The Calls and Dead letters pages over HTTP, against the real service: a reported call whose
agent webhook goes to a loopback receiver answering 500 dead-letters after the configured
attempts; its pages show every attempt; Redeliver (CSRF, htmx) queues it again and, the
receiver fixed, it is delivered. A test call is stored when it is hung up, and a turn that
reaches another process is told which process holds the call."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from api_helpers import wait_until
from dashboard_calls_support import (
    ATTEMPTS,
    FAST_JOBS,
    World,
    jobs_of,
    report_call,
    scripted_agent,
    wait_for_state,
    world,
)
from dashboard_helpers import read_events, session
from live import live_server

from voicefn.server import ServerConfig
from voicefn.server.dashboard import stored_calls
from voicefn.testing import text

__all__ = ["world"]  # the module's fixture


def test_a_dead_letter_webhook_is_shown_redelivered_and_delivered(world: World) -> None:
    site, receiver = world.site, world.receiver
    call = report_call(world, "CA-http-1")
    dead = wait_for_state(site, call.key, call.call_id, "agent_webhook", "dead")
    assert dead["attempts"] == ATTEMPTS
    client, token = session(site, call.key)
    try:
        listed = client.get("/calls").text
        assert f'href="/calls/{call.call_id}"' in listed
        assert "CA-http-1" in listed

        shown = client.get(f"/calls/{call.call_id}").text
        assert "Where is my order ORD-77?" in shown  # the transcript
        assert f'href="/executions/{call.execution_id}"' in shown  # the execution, linked
        assert "check_order" in shown
        assert '<th scope="row">reason</th><td><code>"shipping"</code>' in shown
        assert shown.count("HTTP 500") == ATTEMPTS  # every delivery attempt
        assert shown.count("failed, retried") == ATTEMPTS - 1
        assert "failed, out of attempts" in shown
        assert "dead-letter" in shown

        dead_list = client.get("/jobs").text
        assert "Dead-letter jobs" in dead_list
        assert f'id="job-{dead["id"]}"' in dead_list
        assert "HTTP 500" in dead_list

        # No token: refused, nothing changes.
        refused = client.post(f"/jobs/{dead['id']}/redeliver", headers={"HX-Request": "true"})
        assert refused.status_code == 403
        with site.api(call.key) as api:
            assert jobs_of(api, call.call_id)["agent_webhook"]["state"] == "dead"

        receiver.fix()
        row = client.post(
            f"/jobs/{dead['id']}/redeliver",
            headers={"HX-Request": "true", "X-CSRF-Token": token, "Origin": site.url},
        )
        assert row.status_code == 200, row.text
        assert row.text.startswith(f'<tr id="job-{dead["id"]}">')
        assert "Queued again" in row.text
        assert "Redeliver" not in row.text  # no longer dead-letter

        done = wait_for_state(site, call.key, call.call_id, "agent_webhook", "succeeded")
        assert done["attempts"] == ATTEMPTS + 1
        assert f'id="job-{dead["id"]}"' not in client.get("/jobs").text
        assert "delivered" in client.get(f"/jobs/{dead['id']}").text
        shown = client.get(f"/calls/{call.call_id}").text
        assert shown.count("HTTP 500") == ATTEMPTS
        assert "HTTP 200" in shown

        # Redelivering a job that is not dead-letter says so (the API's 409).
        again = client.post(
            f"/jobs/{dead['id']}/redeliver",
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert again.status_code == 409
        assert "only dead-letter jobs are redelivered" in again.text
    finally:
        client.close()
        receiver.status = 500


def test_the_calls_list_filters_and_pages(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    site = world.site
    first = report_call(world, "CA-page-1")
    second = report_call(world, "CA-page-2", key=first.key)
    client, _ = session(site, first.key)
    try:
        monkeypatch.setattr(stored_calls, "PAGE", 1)
        newest = client.get("/calls").text
        ids = re.findall(r'href="/calls/(call_[0-9A-Za-z_-]+)"', newest)
        assert len(ids) == 1
        older = re.search(r'href="/calls\?(cursor=[^"]+)">Older', newest)
        assert older is not None
        rest = client.get(f"/calls?{older.group(1).replace('&amp;', '&')}").text
        ids += re.findall(r'href="/calls/(call_[0-9A-Za-z_-]+)"', rest)
        assert sorted(ids) == sorted([first.call_id, second.call_id])
        monkeypatch.setattr(stored_calls, "PAGE", 50)

        by_agent = client.get("/calls", params={"agent": first.agent_id}).text
        assert first.call_id in by_agent
        assert second.call_id not in by_agent
        wait_for_state(site, first.key, first.call_id, "post_call", "succeeded")
        odd = client.get("/calls", params={"outcome": "bogus", "cursor": "!!"}).text
        assert "ignored the outcome filter" in odd
        assert first.call_id in odd
        none = client.get("/calls", params={"outcome": "transferred"}).text
        assert "No calls match these filters" in none
    finally:
        client.close()


def test_a_hung_up_test_call_is_stored_with_its_post_call_jobs(world: World) -> None:
    site = world.site
    key, agent_id = scripted_agent(world, "testcall", webhook_url=world.receiver.url)
    client, token = session(site, key)
    headers = {"X-CSRF-Token": token}
    try:
        started = read_events(client.post(f"/agents/{agent_id}/call", headers=headers))
        live_id = started[0][1]["id"]
        site.llm.push(text("Your order ships today."))
        turn = client.post(f"/calls/{live_id}/turn", headers=headers, json={"text": "Order?"})
        assert ("message", {"text": "Your order ships today."}) in read_events(turn)
        hung = read_events(client.post(f"/calls/{live_id}/hangup", headers=headers, json={}))
        reported = dict(hung)["reported"]
        assert hung[-1][0] == "done"
        stored = client.get(reported["url"]).text
        assert "Your order ships today." in stored
        assert "Order?" in stored
        wait_for_state(site, key, reported["call_id"], "agent_webhook", "dead")
        assert "agent_webhook" in client.get(reported["url"]).text
        with site.api(key) as api:
            call = api.get(f"/v1/calls/{reported['call_id']}").json()
        assert call["call_sid"] == live_id
        assert call["agent_id"] == agent_id
        assert next(j["name"] for j in call["jobs"]) == "post_call"
    finally:
        client.close()


def test_a_test_call_is_stored_even_when_the_browser_leaves_at_hang_up(world: World) -> None:
    site = world.site
    key, agent_id = scripted_agent(world, "leaving")
    client, token = session(site, key)
    headers = {"X-CSRF-Token": token}
    try:
        started = read_events(client.post(f"/agents/{agent_id}/call", headers=headers))
        live_id = started[0][1]["id"]
        site.llm.push(text("Anything else?"))
        turn = client.post(f"/calls/{live_id}/turn", headers=headers, json={"text": "Hi"})
        assert ("message", {"text": "Anything else?"}) in read_events(turn)
        # The tab closes as the hang-up is sent: nobody reads the answer.
        with client.stream("POST", f"/calls/{live_id}/hangup", headers=headers, json={}):
            pass

        def stored() -> dict[str, Any] | None:
            with site.api(key) as api:
                found = api.get("/v1/calls", params={"agent_id": agent_id}).json()["data"]
            return next((c for c in found if c["call_sid"] == live_id), None)

        call = wait_until(stored, "the call to be stored", timeout=60.0)
        assert call["agent_id"] == agent_id
    finally:
        client.close()


@pytest.fixture
def second_process(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """Two servers on one database (the first, and a second on the same data directory)."""
    first = world.site.live
    config = ServerConfig(
        data_dir=first.platform.config.data_dir, change_poll_s=0.05, jobs=FAST_JOBS
    )
    with live_server(config) as other:
        yield first.url, other.url


def test_a_turn_on_another_process_says_which_process_holds_the_call(
    world: World, second_process: tuple[str, str]
) -> None:
    site = world.site
    key, agent_id = scripted_agent(world, "twoproc")
    client, token = session(site, key)
    try:
        started = read_events(
            client.post(f"/agents/{agent_id}/call", headers={"X-CSRF-Token": token})
        )
        live_id = started[0][1]["id"]
        other = client.post(
            f"{second_process[1]}/calls/{live_id}/turn",
            headers={"X-CSRF-Token": token, "Origin": second_process[1]},
            json={"text": "hi"},
        )
        assert other.status_code == 409, other.text
        message = other.json()["message"]
        assert "started by another voicefn serve process" in message
        pid, instance = re.search(r"_p(\d+)_([0-9a-f]{6})$", live_id).groups()  # type: ignore[union-attr]
        assert f"pid {pid}, instance {instance}" in message
        # The process that holds it still answers.
        site.llm.push(text("Still here."))
        turn = client.post(
            f"/calls/{live_id}/turn", headers={"X-CSRF-Token": token}, json={"text": "hi"}
        )
        assert ("message", {"text": "Still here."}) in read_events(turn)
        # A call that ended here is gone, not elsewhere.
        client.post(f"/calls/{live_id}/hangup", headers={"X-CSRF-Token": token}, json={})
        gone = client.post(
            f"/calls/{live_id}/turn", headers={"X-CSRF-Token": token}, json={"text": "x"}
        )
        assert gone.status_code == 404
    finally:
        client.close()
