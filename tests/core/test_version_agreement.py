"""The control plane and the agent (which imports nothing of Django) order versions the same way."""

from __future__ import annotations

import itertools

import pytest

from molam_agent.versions import Version as AgentVersion
from molam_agent.versions import is_valid as agent_is_valid
from molam_upgrades.versions import Version, is_valid_version

VERSIONS = [
    "0.9.9",
    "1",
    "1.0",
    "1.0.0",
    "1.0.1",
    "1.8.0-alpha",
    "1.8.0-alpha.1",
    "1.8.0-alpha.beta",
    "1.8.0-beta",
    "1.8.0-beta.2",
    "1.8.0-beta.11",
    "1.8.0-rc.1",
    "1.8.0",
    "1.8.0+build.5",
    "3.9.0",
    "3.10.0",
    "4.0.0",
    "10.0.0",
]


@pytest.mark.parametrize(("a", "b"), list(itertools.combinations(VERSIONS, 2)))
def test_both_sides_compare_alike(a, b):
    assert (Version(a) < Version(b)) == (AgentVersion(a) < AgentVersion(b))
    assert (Version(a) == Version(b)) == (AgentVersion(a) == AgentVersion(b))


# The cases the two grammars once disagreed on (empty identifiers, over-long numbers) included.
@pytest.mark.parametrize(
    "text",
    [
        *VERSIONS,
        "latest",
        "4.0.0-",
        "v4.0.0",
        "4..0",
        "1" * 65,
        "1.0.0-.",
        "1.0.0-a..b",
        "1.0.0+",
        "1.0.0+a..b",
        "1234567890.0.0",
        "123456789.0.0",
    ],
)
def test_both_sides_accept_the_same_versions(text):
    assert is_valid_version(text) == agent_is_valid(text)


def test_the_agent_tolerates_whitespace_read_from_a_version_file():
    # The agent strips what it reads from disk ("4.0.0\n"); the API refuses padded versions.
    assert agent_is_valid("4.0.0 ") and not is_valid_version("4.0.0 ")
