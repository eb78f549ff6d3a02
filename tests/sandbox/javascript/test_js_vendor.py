"""The vendored JavaScript libraries are exactly the npm files VERSIONS names (by sha256), with
their licences beside them: a file edited by hand, or replaced without updating VERSIONS, fails."""

from __future__ import annotations

import hashlib
from pathlib import Path

import voicefn.sandbox.javascript as js

VENDOR = Path(js.__file__).parent / "vendor"


def recorded() -> dict[str, str]:
    """``vendored file -> sha256`` from the VERSIONS table."""
    table: dict[str, str] = {}
    for line in (VENDOR / "VERSIONS").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or "->" not in line:
            continue
        vendored, digest = line.split("->", 1)[1].split()
        table[vendored] = digest
    return table


def test_every_vendored_library_matches_its_recorded_sha256() -> None:
    table = recorded()
    assert set(table) == {"axios.js", "moment.js", "lodash.js"}
    for name, digest in table.items():
        assert len(digest) == 64
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_each_library_has_its_licence_and_keeps_its_header() -> None:
    for package in ("axios", "moment", "lodash"):
        licence = (VENDOR / f"LICENSE.{package}").read_text(encoding="utf-8")
        assert "Permission is hereby granted" in licence, package
    assert (VENDOR / "axios.js").read_text(encoding="utf-8").startswith("/*! Axios v1.21.1")
    assert "lodash.com/license" in (VENDOR / "lodash.js").read_text(encoding="utf-8")[:400]
