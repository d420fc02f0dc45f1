"""Identifiers of SPEC.md, and versions through the agent's grammar (one grammar, one module).

Versions are dotted numbers with an optional pre-release and build suffix (``4.0.0``,
``1.8.0-rc.1``, ``2.0.0+build.5``) compared as versions: ``3.10.0 > 3.9.0``,
``1.8.0-rc.1 < 1.8.0``, ``4.0 == 4.0.0``; build metadata does not take part in ordering. The
grammar and the ordering live in ``molam_agent.versions`` (Django-free, installed on merchant
hosts); the control plane only adds that API input may not carry surrounding whitespace (the
agent strips what it reads from a version file).
"""

from __future__ import annotations

import re

from molam_agent import versions as _agent

PLUGIN_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
VERSION_MAX_LENGTH = _agent.MAX_LENGTH
# The same grammar as an OpenAPI ``pattern`` (ECMA regex: no named groups), published by VersionField.
VERSION_PATTERN = re.sub(r"\(\?P<\w+>", "(?:", _agent._VERSION_RE.pattern)
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
TIER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def is_valid_version(value: str) -> bool:
    """A version as the API accepts it: the agent's grammar, no surrounding whitespace."""
    return isinstance(value, str) and value == value.strip() and _agent.is_valid(value)


class Version(_agent.Version):
    """The agent's comparable version; invalid text is a ``ValueError`` here, as Django code expects."""

    __slots__ = ()

    def __init__(self, text: str) -> None:
        if not is_valid_version(text):
            raise ValueError(f"'{text}' is not a valid version")
        super().__init__(text)
