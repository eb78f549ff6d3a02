"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``.

The key comes from ``VOICEFN_SECRET_KEY`` (a Fernet key; several separated by commas rotate keys:
the first encrypts, all decrypt), else from ``<data dir>/secret.key``, generated once with 0600
permissions. The database keeps an encrypted check value, so a server started with another key
refuses to start instead of failing on the first secret it reads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

ENV_KEY = "VOICEFN_SECRET_KEY"
KEY_FILE = "secret.key"
_CHECK = b"voicefn secret key check"


class SecretKeyError(RuntimeError):
    """The secret key is missing, unreadable or not the one the database was written with."""


def _fernet(text: str) -> Fernet:
    raw = text.strip().encode()
    try:
        return Fernet(raw)
    except ValueError:
        # Not a Fernet key: any other string (a passphrase from a secret manager) is hashed to one.
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest()))


class SecretBox:
    """Encrypts and decrypts secret values (JSON) with the server's key."""

    def __init__(self, keys: list[str], source: str) -> None:
        if not keys:
            raise SecretKeyError("no secret key given")
        self._fernet = MultiFernet([_fernet(k) for k in keys])
        #: where the key came from, for messages (never the key)
        self.source = source

    @classmethod
    def load(cls, data_dir: Path | None, environ: dict[str, str] | None = None) -> SecretBox:
        env = os.environ if environ is None else environ
        configured = env.get(ENV_KEY, "").strip()
        if configured:
            return cls([k for k in configured.split(",") if k.strip()], f"${ENV_KEY}")
        if data_dir is None:
            raise SecretKeyError(
                f"no secret key: set {ENV_KEY} (e.g. to the output of "
                "`python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`) or give a data directory"
            )
        return cls([_key_file(data_dir)], str(data_dir / KEY_FILE))

    def encrypt(self, value: Any) -> str:
        data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        return self._fernet.encrypt(data).decode()

    def decrypt(self, token: str) -> Any:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise SecretKeyError(
                f"a stored secret cannot be decrypted with the key from {self.source}"
            ) from None

    def check_value(self) -> str:
        return self._fernet.encrypt(_CHECK).decode()

    def verify(self, check_value: str) -> None:
        try:
            ok = self._fernet.decrypt(check_value.encode()) == _CHECK
        except InvalidToken:
            ok = False
        if not ok:
            raise SecretKeyError(
                f"the secret key from {self.source} is not the key this database's secrets were "
                f"encrypted with; set {ENV_KEY} to that key (every server sharing a database needs "
                "the same one)"
            )


def _key_file(data_dir: Path) -> str:
    path = data_dir / KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key() + b"\n")
            f.flush()
            os.fsync(f.fileno())
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise SecretKeyError(
            f"{path} is readable by other users (mode {mode:o}); run chmod 600 {path}"
        )
    text = path.read_text().strip()
    if not text:
        raise SecretKeyError(f"{path} is empty; delete it only if no secrets were stored yet")
    return text
