"""Secrets at rest: the key, its file, its check value, rotation; and masking documents."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from voicefn.store import SecretBox, SecretKeyError, open_store
from voicefn.store.secrets import MASK, agent_places, function_places, seal, unseal


def test_the_key_is_generated_once_into_the_data_directory_with_0600(tmp_path: Path) -> None:
    box = SecretBox.load(tmp_path / "data", environ={})
    key_file = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    token = box.encrypt({"api_token": "Bearer sk_live_1"})
    assert "sk_live_1" not in token
    again = SecretBox.load(tmp_path / "data", environ={})
    assert again.decrypt(token) == {"api_token": "Bearer sk_live_1"}
    assert key_file.read_text() == (tmp_path / "data" / "secret.key").read_text()


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    SecretBox.load(tmp_path, environ={})
    os.chmod(tmp_path / "secret.key", 0o644)
    with pytest.raises(SecretKeyError, match="chmod 600"):
        SecretBox.load(tmp_path, environ={})


def test_the_environment_key_wins_and_several_keys_rotate(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = SecretBox.load(None, environ={"VOICEFN_SECRET_KEY": old}).encrypt("s3cret")
    rotated = SecretBox.load(None, environ={"VOICEFN_SECRET_KEY": f"{new},{old}"})
    assert rotated.decrypt(token) == "s3cret"
    assert (
        SecretBox.load(None, environ={"VOICEFN_SECRET_KEY": new}).decrypt(rotated.encrypt("x"))
        == "x"
    )
    assert not (tmp_path / "secret.key").exists()
    passphrase = SecretBox.load(None, environ={"VOICEFN_SECRET_KEY": "a passphrase"})
    assert passphrase.decrypt(passphrase.encrypt([1])) == [1]
    with pytest.raises(SecretKeyError, match="cannot be decrypted"):
        SecretBox.load(None, environ={"VOICEFN_SECRET_KEY": new}).decrypt(token)


async def test_a_database_refuses_a_different_key(db_url: str, tmp_path: Path) -> None:
    first = await open_store(db_url, SecretBox.load(tmp_path / "one", environ={}))
    await first.close()
    same = await open_store(db_url, SecretBox.load(tmp_path / "one", environ={}))
    await same.close()
    with pytest.raises(SecretKeyError, match="not the key"):
        await open_store(db_url, SecretBox.load(tmp_path / "two", environ={}))


def test_function_secrets_are_masked_and_kept_when_written_back() -> None:
    doc = {
        "name": "f",
        "action": {
            "type": "http",
            "api_token": "Bearer sk_live_abc",
            "headers": {"X-Api-Key": "k-123", "X-Tenant": "acme", "X-Custom": "c-9"},
        },
    }
    places = function_places(doc, ["x-custom"])
    masked, secrets, missing = seal(doc, places, {})
    assert missing == []
    assert masked["action"]["api_token"] == MASK
    assert masked["action"]["headers"] == {"X-Api-Key": MASK, "X-Tenant": "acme", "X-Custom": MASK}
    assert sorted(secrets.values()) == ["Bearer sk_live_abc", "c-9", "k-123"]
    assert unseal(masked, secrets) == doc
    again, kept, missing = seal(masked, function_places(masked, ["X-Custom"]), secrets)
    assert (again, kept, missing) == (masked, secrets, [])
    renamed = {**masked, "action": {**masked["action"], "headers": {"X-Auth-Key": MASK}}}
    _, _, missing = seal(renamed, function_places(renamed), secrets)
    assert missing == [("action", "headers", "X-Auth-Key")]


def test_agent_variables_named_like_credentials_are_secret() -> None:
    doc = {"variables": {"crm_token": "t-1", "customer_name": "Bruce", "pin": "1234"}}
    masked, secrets, _ = seal(doc, agent_places(doc, ["pin"]), {})
    assert masked["variables"] == {"crm_token": MASK, "customer_name": "Bruce", "pin": MASK}
    assert sorted(secrets.values()) == ["1234", "t-1"]
