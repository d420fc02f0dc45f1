"""Identifiers and versions as SPEC.md defines them.

Versions are dotted numbers with an optional pre-release and build suffix (``4.0.0``,
``1.8.0-rc.1``, ``2.0.0+build.5``) and are compared as versions: ``3.10.0 > 3.9.0``,
``1.8.0-rc.1 < 1.8.0``, and ``4.0 == 4.0.0``. Build metadata does not take part in ordering.
"""

from __future__ import annotations

import re
from functools import total_ordering

PLUGIN_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
VERSION_RE = re.compile(
    r"^(?P<release>\d{1,9}(?:\.\d{1,9})*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
VERSION_MAX_LENGTH = 64
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
TIER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def is_valid_version(value: str) -> bool:
    return isinstance(value, str) and len(value) <= VERSION_MAX_LENGTH and bool(VERSION_RE.match(value))


@total_ordering
class Version:
    """A comparable plugin version."""

    __slots__ = ("text", "_release", "_pre")

    def __init__(self, text: str) -> None:
        match = VERSION_RE.match(text) if len(text) <= VERSION_MAX_LENGTH else None
        if not match:
            raise ValueError(f"'{text}' is not a valid version")
        self.text = text
        release = [int(part) for part in match["release"].split(".")]
        while len(release) > 1 and release[-1] == 0:
            release.pop()  # 4.0 == 4.0.0
        self._release = tuple(release)
        pre = match["pre"]
        self._pre = (
            tuple((0, int(ident), "") if ident.isdigit() else (1, 0, ident) for ident in pre.split("."))
            if pre
            else None
        )

    def _key(self) -> tuple:
        # A release without pre-release sorts after all its pre-releases (semver rule).
        return (self._release, (1,) if self._pre is None else (0, self._pre))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"
