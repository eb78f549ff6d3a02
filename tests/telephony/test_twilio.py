"""TwilioTelephony against FakeTwilio: a real HTTP server on 127.0.0.1 speaking Twilio's wire format."""

from __future__ import annotations

import base64
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from voicefn.telephony import TelephonyError as ReexportedTelephonyError
from voicefn.telephony.twilio import TelephonyError, TwilioTelephony
from voicefn.testing.twilio_server import FakeTwilio

CALL_SID = "CA" + "0123456789abcdef" * 2


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(known_calls=[CALL_SID]) as f:
        yield f


@pytest.fixture
def tel(fake: FakeTwilio) -> Iterator[TwilioTelephony]:
    with TwilioTelephony(fake.account_sid, fake.auth_token, base_url=fake.base_url) as t:
        yield t


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- transfer -----------------------------------------------------------------------------------


async def test_transfer_posts_dial_twiml_to_the_call(
    fake: FakeTwilio, tel: TwilioTelephony
) -> None:
    status = await tel.transfer(CALL_SID, "+14155550123")

    assert status == "in-progress"
    assert len(fake.requests) == 1
    req = fake.requests[0]
    assert req.method == "POST"
    assert req.path == f"/2010-04-01/Accounts/{fake.account_sid}/Calls/{CALL_SID}.json"
    assert req.headers["authorization"] == _basic(fake.account_sid, fake.auth_token)
    assert req.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert set(req.form) == {"Twiml"}
    root = ET.fromstring(req.form["Twiml"])
    assert root.tag == "Response"
    assert [child.tag for child in root] == ["Dial"]
    assert root.find("Dial").text == "+14155550123"  # type: ignore[union-attr]
    assert fake.calls[CALL_SID]["twiml"] == req.form["Twiml"]


async def test_transfer_with_announce_says_then_dials(
    fake: FakeTwilio, tel: TwilioTelephony
) -> None:
    await tel.transfer(CALL_SID, "+14155550123", announce="Connecting you to <billing> & co.")

    root = ET.fromstring(fake.requests[0].form["Twiml"])
    assert [child.tag for child in root] == ["Say", "Dial"]
    assert root[0].text == "Connecting you to <billing> & co."  # escaped in XML, intact once parsed
    assert root[1].text == "+14155550123"


async def test_transfer_unknown_call_is_404(fake: FakeTwilio, tel: TwilioTelephony) -> None:
    other = "CA" + "f" * 32
    with pytest.raises(TelephonyError) as info:
        await tel.transfer(other, "+14155550123")
    assert info.value.status == 404
    assert info.value.code == 20404


async def test_transfer_of_ended_call_surfaces_twilio_code(
    fake: FakeTwilio, tel: TwilioTelephony
) -> None:
    fake.calls[CALL_SID]["status"] = "completed"
    with pytest.raises(TelephonyError) as info:
        await tel.transfer(CALL_SID, "+14155550123")
    assert info.value.code == 21220
    assert "not in-progress" in str(info.value)


@pytest.mark.parametrize("sid", ["", "CA../../Messages", "CA 1", "CA1?x=1"])
async def test_transfer_rejects_unsafe_call_sid_without_a_request(
    fake: FakeTwilio, tel: TwilioTelephony, sid: str
) -> None:
    with pytest.raises(TelephonyError, match="invalid call SID"):
        await tel.transfer(sid, "+14155550123")
    assert fake.requests == []


# --- send_sms -----------------------------------------------------------------------------------


async def test_send_sms_posts_to_from_body(fake: FakeTwilio, tel: TwilioTelephony) -> None:
    sid = await tel.send_sms("+14155550100", "Your code is 1234 & welcome", from_="+15005550006")

    assert sid.startswith("SM")
    assert len(sid) == 34
    assert sid == fake.messages[0]["sid"]
    req = fake.requests[0]
    assert req.method == "POST"
    assert req.path == f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    assert req.headers["authorization"] == _basic(fake.account_sid, fake.auth_token)
    assert req.form == {
        "To": "+14155550100",
        "From": "+15005550006",
        "Body": "Your code is 1234 & welcome",
    }


async def test_send_sms_through_messaging_service(fake: FakeTwilio, tel: TwilioTelephony) -> None:
    service = "MG" + "1" * 32
    sid = await tel.send_sms("+14155550100", "hi", messaging_service_sid=service)

    assert sid == fake.messages[0]["sid"]
    assert fake.requests[0].form == {
        "To": "+14155550100",
        "MessagingServiceSid": service,
        "Body": "hi",
    }


async def test_send_sms_without_sender_fails_before_any_request(
    fake: FakeTwilio, tel: TwilioTelephony
) -> None:
    with pytest.raises(TelephonyError, match="from_ or messaging_service_sid"):
        await tel.send_sms("+14155550100", "hi")
    assert fake.requests == []


# --- errors -------------------------------------------------------------------------------------


async def test_wrong_token_is_20003_and_never_leaks_the_token(fake: FakeTwilio) -> None:
    bad_token = "wrong-token-0123456789abcdef"
    with TwilioTelephony(fake.account_sid, bad_token, base_url=fake.base_url) as tel:
        with pytest.raises(TelephonyError) as info:
            await tel.send_sms("+14155550100", "hi", from_="+15005550006")
        with pytest.raises(TelephonyError) as info2:
            await tel.transfer(CALL_SID, "+14155550123")

    for exc in (info.value, info2.value):
        assert exc.code == 20003
        assert exc.status == 401
        assert "Authenticate" in str(exc)
        assert bad_token not in str(exc)
        assert bad_token not in repr(exc)
    assert fake.messages == []  # nothing was sent
    assert fake.requests[0].headers["authorization"] == _basic(fake.account_sid, bad_token)


async def test_token_echoed_by_the_server_is_redacted(
    fake: FakeTwilio, tel: TwilioTelephony
) -> None:
    fake.fail_next(400, 21211, f"bad number; your token was {fake.auth_token}")
    with pytest.raises(TelephonyError) as info:
        await tel.send_sms("+1", "hi", from_="+15005550006")
    assert info.value.code == 21211
    assert fake.auth_token not in str(info.value)
    assert "[redacted]" in str(info.value)


async def test_twilio_400_error_code_surfaces(fake: FakeTwilio, tel: TwilioTelephony) -> None:
    fake.fail_next(400, 21211, "The 'To' number is not a valid phone number.")
    with pytest.raises(TelephonyError) as info:
        await tel.send_sms("+1000", "hi", from_="+15005550006")

    assert info.value.code == 21211
    assert info.value.status == 400
    assert "The 'To' number is not a valid phone number." in str(info.value)
    assert fake.messages == []
    # the failure was for one request only
    assert (await tel.send_sms("+14155550100", "hi", from_="+15005550006")).startswith("SM")


async def test_error_without_twilio_code_uses_http_status(
    fake: FakeTwilio, tel: TwilioTelephony
) -> None:
    fake.fail_next(503, None, "Service Unavailable")
    with pytest.raises(TelephonyError) as info:
        await tel.transfer(CALL_SID, "+14155550123")
    assert info.value.code == 503
    assert info.value.status == 503


async def test_connection_refused_is_telephony_error() -> None:
    token = "tok-" + "9" * 28
    tel = TwilioTelephony(
        "AC" + "0" * 32, token, base_url=f"http://127.0.0.1:{_closed_port()}", timeout_s=2
    )
    with tel, pytest.raises(TelephonyError) as info:
        await tel.send_sms("+14155550100", "hi", from_="+15005550006")
    assert info.value.code is None
    assert info.value.status is None
    assert "ConnectionError" in str(info.value)
    assert token not in str(info.value)


async def test_timeout_is_telephony_error(fake: FakeTwilio) -> None:
    fake.delay_next(1.5)
    tel = TwilioTelephony(fake.account_sid, fake.auth_token, base_url=fake.base_url, timeout_s=0.2)
    with tel, pytest.raises(TelephonyError, match=r"timed out after 0\.2s"):
        await tel.transfer(CALL_SID, "+14155550123")


# --- configuration ------------------------------------------------------------------------------


def test_from_env_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    with pytest.raises(TelephonyError, match="TWILIO_AUTH_TOKEN") as info:
        TwilioTelephony.from_env()
    assert "TWILIO_ACCOUNT_SID" not in str(info.value)

    with pytest.raises(TelephonyError, match="TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"):
        TwilioTelephony.from_env({})


async def test_from_env_uses_base_url(monkeypatch: pytest.MonkeyPatch, fake: FakeTwilio) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", fake.account_sid)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", fake.auth_token)
    monkeypatch.setenv("TWILIO_API_BASE_URL", fake.base_url + "/")
    with TwilioTelephony.from_env() as tel:
        assert tel.base_url == fake.base_url
        assert await tel.transfer(CALL_SID, "+14155550123") == "in-progress"
    assert len(fake.requests) == 1


async def test_base_url_ignores_edge_and_region_env(
    monkeypatch: pytest.MonkeyPatch, fake: FakeTwilio
) -> None:
    # the SDK would otherwise rewrite the host to 127.sydney.au1.0.1 or similar
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    with TwilioTelephony(fake.account_sid, fake.auth_token, base_url=fake.base_url) as tel:
        assert await tel.transfer(CALL_SID, "+14155550123") == "in-progress"
    assert len(fake.requests) == 1


def test_repr_and_errors_do_not_show_the_token() -> None:
    token = "secret-token-abcdef0123456789"
    tel = TwilioTelephony("AC" + "0" * 32, token)
    assert token not in repr(tel)
    assert tel.base_url is None
    tel.close()


def test_reexport_and_twiml_builder() -> None:
    assert ReexportedTelephonyError is TelephonyError
    twiml = TwilioTelephony.transfer_twiml("+14155550123", announce="Hold on")
    root = ET.fromstring(twiml)
    assert [(c.tag, c.text) for c in root] == [("Say", "Hold on"), ("Dial", "+14155550123")]
