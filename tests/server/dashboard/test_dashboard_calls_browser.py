"""Calls and dead letters in real Chromium: a reported call's agent webhook dead-letters against
a receiver answering 500; the user finds the call, its attempts, then (from the keyboard) the
dead letter, redelivers it once the receiver is fixed, and sees it delivered. A test call hung
up on its page is stored and linked. The pages fit a phone."""

from __future__ import annotations

import re
from typing import Any

from dashboard_calls_support import (
    ATTEMPTS,
    World,
    report_call,
    scripted_agent,
    wait_for_state,
    world,
)
from dashboard_helpers import login, shot
from playwright.sync_api import expect

from voicefn.testing import text

__all__ = ["world"]  # the module's fixture


def test_a_dead_letter_is_found_redelivered_and_delivered(page: Any, world: World) -> None:
    site = world.site
    call = report_call(world, "CA-browser-1")
    dead = wait_for_state(site, call.key, call.call_id, "agent_webhook", "dead")
    login(page, site, call.key, then="/calls")
    shot(page, "calls")
    page.get_by_role("link", name=re.compile(r"^\d{4}-\d\d-\d\d ")).first.click()
    expect(page.get_by_role("heading", name="Call CA-browser-1")).to_be_visible()
    expect(page.get_by_role("region", name="Transcript")).to_contain_text(
        "Where is my order ORD-77?"
    )
    expect(page.get_by_role("link", name="Execution of check_order")).to_have_attribute(
        "href", f"/executions/{call.execution_id}"
    )
    webhook = page.locator(f"#job-{dead['id']}")
    expect(webhook).to_contain_text("dead-letter")
    expect(webhook.locator("table.attempts tbody tr")).to_have_count(ATTEMPTS)
    expect(webhook.locator("table.attempts tbody tr").last).to_contain_text("HTTP 500")
    shot(page, "call-detail")

    # To the dead letters from the keyboard: the main navigation, then the row's button.
    nav = page.get_by_role("navigation", name="Main").get_by_role("link", name="Dead letters")
    nav.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dead-letter jobs")).to_be_visible()
    page.wait_for_load_state("load")  # htmx (deferred) handles the button's POST
    row = page.locator(f"#job-{dead['id']}")
    expect(row).to_contain_text("HTTP 500")
    shot(page, "dead-letters")
    world.receiver.fix()
    try:
        button = row.get_by_role("button", name=re.compile("^Redeliver agent_webhook"))
        button.focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("status")).to_contain_text("Queued again")
        expect(row.get_by_role("button")).to_have_count(0)
        wait_for_state(site, call.key, call.call_id, "agent_webhook", "succeeded")
    finally:
        world.receiver.status = 500
    page.goto(f"{site.url}/calls/{call.call_id}")
    expect(webhook).to_contain_text("succeeded")
    expect(webhook.locator("table.attempts tbody tr")).to_have_count(ATTEMPTS + 1)
    expect(webhook.locator("table.attempts tbody tr").last).to_contain_text("delivered")


def test_a_test_call_hung_up_is_stored_and_linked(page: Any, world: World) -> None:
    site = world.site
    key, agent_id = scripted_agent(world, "browser-call")
    login(page, site, key, then=f"/agents/{agent_id}/call")
    page.get_by_role("button", name="Start call").click()
    expect(page.locator("#call-status")).to_contain_text("Your turn")
    site.llm.push(text("It ships on Monday."))
    page.get_by_label("You say").fill("When does it ship?")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_label("Conversation")).to_contain_text("It ships on Monday.")
    page.get_by_role("button", name="Hang up").click()
    link = page.get_by_role("link", name="its transcript and post-call jobs")
    link.click()
    expect(page.get_by_role("heading", name=re.compile(r"^Call call_"))).to_be_visible()
    expect(page.get_by_role("region", name="Transcript")).to_contain_text("When does it ship?")
    expect(page.get_by_role("region", name="Transcript")).to_contain_text("It ships on Monday.")
    expect(page.get_by_role("heading", name=re.compile("^post_call"))).to_be_visible()


def test_the_calls_pages_fit_a_phone_screen(phone: Any, world: World) -> None:
    call = report_call(world, "CA-phone-1")
    dead = wait_for_state(world.site, call.key, call.call_id, "agent_webhook", "dead")
    login(phone, world.site, call.key, then="/calls")
    for path in ("/calls", f"/calls/{call.call_id}", "/jobs", f"/jobs/{dead['id']}"):
        phone.goto(f"{world.site.url}{path}")
        expect(phone.get_by_role("navigation", name="Main")).to_be_visible()
        overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 390px"
