"""HTTP transport rules shared by the API client and the release download.

Two rules from the TUF threat model for updates:

- **https only**, except for loopback hosts (``127.0.0.0/8``, ``::1``, ``localhost``): a
  local mirror or a test server needs no TLS, anything that crosses a network does. ``file:``
  URLs name a local file and are accepted for downloads only (a local mirror); the package is
  still checked against its SHA-256 and signature.
- **credentials stay with their origin**: urllib's default redirect handler copies every header,
  ``Authorization`` included, to wherever a redirect points. ``SafeRedirectHandler`` drops
  ``Authorization`` (and ``Cookie``) when the redirect changes scheme, host or port, and refuses
  a redirect to a URL the first rule forbids (an https answer redirecting to http).
"""

from __future__ import annotations

import ipaddress
import urllib.error
import urllib.parse
import urllib.request

from .errors import ConfigError

_CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (IPv4 ``127/8``, IPv6 ``::1``)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":  # not "*.localhost": not every resolver keeps those on loopback
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_refusal(url: str, *, allow_file: bool = False) -> str | None:
    """Why ``url`` may not be used by the agent, or None when it may."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https" and parts.hostname:
        return None
    if scheme == "http" and parts.hostname:
        if is_loopback_host(parts.hostname):
            return None
        return f"{url} is plain http: https is required except for loopback hosts"
    if scheme == "file" and allow_file:
        return None
    return f"{url} is not an https URL"


def require_secure_url(url: str, what: str, *, allow_file: bool = False) -> str:
    """Return ``url`` or raise ``ConfigError`` naming ``what`` (a config key or a download)."""
    refusal = url_refusal(url, allow_file=allow_file)
    if refusal:
        raise ConfigError(f"{what}: {refusal}")
    return url


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute URL, with the default port filled in."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    return scheme, (parts.hostname or "").lower(), port


class InsecureRedirectError(urllib.error.URLError):
    """A redirect pointed to a URL the transport rules forbid."""


class SafeRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never carry credentials to another origin or down to http."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        refusal = url_refusal(newurl)
        if refusal:
            raise InsecureRedirectError(f"refused redirect from {req.full_url}: {refusal}")
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and origin(newurl) != origin(req.full_url):
            # Request stores header names capitalised ("Authorization"); compare lower-case.
            for name in list(new.headers):
                if name.lower() in _CREDENTIAL_HEADERS:
                    del new.headers[name]
            for name in list(new.unredirected_hdrs):
                if name.lower() in _CREDENTIAL_HEADERS:
                    del new.unredirected_hdrs[name]
        return new


def build_opener() -> urllib.request.OpenerDirector:
    """An opener with ``SafeRedirectHandler`` in place of urllib's default redirect handler."""
    return urllib.request.build_opener(SafeRedirectHandler)


_OPENER = build_opener()


def urlopen(req: urllib.request.Request, timeout: float):
    """``urllib.request.urlopen`` through the safe opener (no global install_opener)."""
    return _OPENER.open(req, timeout=timeout)
