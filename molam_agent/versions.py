"""Plugin versions: parsing, comparison and reading the installed version."""

from __future__ import annotations

import os
import re
from functools import total_ordering
from pathlib import Path

from .errors import ConfigError, VerificationError

# The one version grammar (the control plane imports it): release numbers of at most 9 digits,
# pre-release and build made of non-empty dot-separated identifiers, 64 characters at most.
MAX_LENGTH = 64
_IDENTIFIERS = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_VERSION_RE = re.compile(
    rf"^(?P<release>\d{{1,9}}(?:\.\d{{1,9}})*)(?:-(?P<pre>{_IDENTIFIERS}))?(?:\+(?P<build>{_IDENTIFIERS}))?$",
    re.ASCII,  # \d is 0-9 only, as in the published pattern: "٤.0.0" is not a version
)
# The same header WordPress reads (get_file_data): "Version: 3.9.0" in the first 8 KiB.
_WP_HEADER_RE = re.compile(r"^[ \t/*#@]*Version:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


@total_ordering
class Version:
    """A dotted numeric version with an optional pre-release and build suffix.

    Compared as versions, not strings: ``3.10.0 > 3.9.0``, ``4.0.0-rc.1 < 4.0.0``,
    ``4.0 == 4.0.0``; build metadata is ignored when comparing.
    """

    def __init__(self, text: str) -> None:
        text = text.strip()
        match = _VERSION_RE.match(text)
        if not match or len(text) > MAX_LENGTH:
            raise VerificationError(f"'{text}' is not a valid version")
        self.text = text
        parts = [int(p) for p in match["release"].split(".")]
        while len(parts) > 1 and parts[-1] == 0:
            parts.pop()
        self.release = tuple(parts)
        self.pre = tuple(match["pre"].split(".")) if match["pre"] else ()

    def _pre_key(self) -> tuple:
        # No pre-release sorts after any pre-release (semver rule 11).
        if not self.pre:
            return (1,)
        return (0,) + tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre)

    def _key(self) -> tuple:
        return (self.release, self._pre_key())

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


def is_valid(text: str) -> bool:
    """True when ``text`` parses as a version."""
    try:
        Version(text)
    except VerificationError:
        return False
    return True


def read_installed_version(plugin_dir: Path, version_from: str) -> str:
    """Read the version of the plugin installed in ``plugin_dir``.

    ``version_from`` is ``wp-header:<file>`` (the ``Version:`` line of a WordPress plugin
    header) or ``file:<file>`` (a file holding only the version).
    """
    kind, _, rel = version_from.partition(":")
    if not rel or kind not in ("wp-header", "file"):
        raise ConfigError(
            f"plugin.version_from must be 'wp-header:FILE' or 'file:FILE', got {version_from!r}"
        )
    root = os.path.realpath(plugin_dir)
    path = Path(plugin_dir) / rel
    # A symlinked version file (``VERSION -> ../../agent.toml``) must not read outside the
    # tree: its content could end up in an error reported to the control plane.
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise VerificationError(f"version file {path} points outside the plugin directory")
    try:
        with open(real, "rb") as fh:
            head = fh.read(8192).decode("utf-8", "replace")
    except FileNotFoundError as exc:
        raise VerificationError(f"version file {path} does not exist") from exc
    except OSError as exc:
        raise VerificationError(f"cannot read version file {path}: {exc.strerror}") from exc
    if kind == "file":
        text = head.strip()
    else:
        match = _WP_HEADER_RE.search(head)
        if not match:
            raise VerificationError(f"no 'Version:' header in {path}")
        text = match.group(1)
    if not is_valid(text):
        # Never echo the content: it is reported to the control plane.
        raise VerificationError(f"version file {path} does not hold a valid version")
    return text.strip()
