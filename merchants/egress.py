"""Outgoing webhook requests that cannot be turned against the control plane's own network.

A merchant's ``webhook_url`` is chosen by whoever holds an operator credential, and the
control plane POSTs to it from inside its network. Without care that is a proxy into that
network (SSRF): ``https://10.0.0.5/``, the cloud metadata service at ``169.254.169.254``,
Redis on ``127.0.0.1:6379``, a public name whose DNS answer is private, or a redirect to any
of those. Two checks stop it:

- ``check_webhook_url`` when the URL is given (and again before each delivery): https only, no
  user:password@, no host that is a non-public IP literal (in any spelling the resolver accepts,
  ``127.1`` and ``2130706433`` included) or a local name (``localhost``, ``*.localhost``,
  ``*.internal``, a single-label name such as a compose service).
- ``post`` at delivery: the host is resolved once, *every* address it resolves to must be
  public (a name that answers with one public and one private address is refused), and the
  connection goes to the address that was checked, with TLS SNI, certificate verification and
  ``Host`` still for the URL's name, so a second DNS answer (rebinding) never reaches a socket.
  Redirects are never followed and environment proxies are ignored (a proxy would resolve the
  name again, out of our sight).

``MERCHANT_WEBHOOK_ALLOW_PRIVATE`` (on with ``DEBUG=1``, for local receivers and the test suite)
lifts the address rules and allows http:// to loopback; the name and userinfo rules and the
pinning stay.

Why not a library: ``advocate`` is unmaintained since 2020; ``requests-hardened`` (maintained,
used by Saleor) pins the address the same way but checks only the first address a name resolves
to, blocks a fixed list rather than everything that is not globally routable, and can only
allow loopback, not private ranges. The pinning itself is the same small ``HTTPAdapter``
override (``build_connection_pool_key_attributes``, requests ≥ 2.32.2) either way.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.connection import allowed_gai_family

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses a connection could go to (strings, as getaddrinfo gives them).
Resolver = Callable[[str, int], Sequence[str]]

# Ranges ``ipaddress`` may call global (depending on the Python version) that still lead
# inside a network or embed an IPv4 address a gateway would reach on our behalf.
_NOT_PUBLIC = tuple(
    ipaddress.ip_network(net)
    for net in (
        "100.64.0.0/10",  # shared address space (carrier-grade NAT, some cloud internal ranges)
        "192.0.0.0/24",  # IETF protocol assignments
        "192.88.99.0/24",  # 6to4 relay anycast
        "198.18.0.0/15",  # benchmarking
        "64:ff9b::/96",  # NAT64: the low 32 bits are an IPv4 address
        "64:ff9b:1::/48",  # local-use NAT64
        "2002::/16",  # 6to4: embeds an IPv4 address
        "2001::/32",  # Teredo: embeds an IPv4 address
    )
)

# Names that only mean something inside a network (RFC 6761, RFC 6762, ICANN's .internal).
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")
_HOSTNAME = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*$")


def private_allowed() -> bool:
    """``MERCHANT_WEBHOOK_ALLOW_PRIVATE``, read here for both checks (the URL when it is set, the
    address at delivery)."""
    return bool(getattr(settings, "MERCHANT_WEBHOOK_ALLOW_PRIVATE", False))


class UnsafeDestination(ValueError):
    """A webhook URL or the address it resolves to would reach a non-public network."""


def is_public_address(value: str | IPAddress) -> bool:
    """Whether an address is globally routable: not loopback, private, link-local, multicast,
    reserved, unspecified, shared (100.64/10), nor an IPv4-mapped IPv6 form of one of those."""
    ip = ipaddress.ip_address(value) if isinstance(value, str) else value
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or getattr(ip, "is_site_local", False)
    ):
        return False
    return not any(ip in net for net in _NOT_PUBLIC if net.version == ip.version)


def _ip_literal(host: str) -> IPAddress | None:
    """The address a host names by itself, in any spelling the system resolver accepts
    (``127.1``, ``0x7f000001`` and ``2130706433`` all mean 127.0.0.1 to getaddrinfo)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):  # not an address; ValueError: a NUL character in it
        return None


def _is_local_name(host: str) -> bool:
    return host == "localhost" or host.endswith(_LOCAL_SUFFIXES) or "." not in host


def check_webhook_url(url: str, *, allow_private: bool) -> None:
    """Raise ``UnsafeDestination`` with a sentence for the operator when ``url`` may not be a
    webhook: not https, user:password@, a non-public IP literal or a local name."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port out of range or not a number)
    except ValueError as exc:
        raise UnsafeDestination(f"Not a valid URL: {exc}.") from exc
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("https", "http") or not host:
        raise UnsafeDestination("Must be an https:// URL with a host name.")
    if "@" in parts.netloc:
        raise UnsafeDestination("Must not contain a user name or password (user:password@host).")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        # Judge the name as it will be sent: IDNA maps full-width digits and dots ("１２７。１")
        # to ASCII ones, so the checks below must see the mapped form.
        try:
            host = host.encode("idna").decode("ascii").rstrip(".")
        except UnicodeError as exc:
            raise UnsafeDestination(f"{host!r} is not a valid host name.") from exc
        ip = _ip_literal(host)
        if ip is None and not _HOSTNAME.match(host):
            raise UnsafeDestination(f"{host!r} is not a valid host name.") from None
    if ip is not None:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        local = not is_public_address(ip)
        is_loopback = ip.is_loopback
    else:
        local = _is_local_name(host)
        is_loopback = host == "localhost" or host.endswith(".localhost")
    if parts.scheme == "http" and not (allow_private and is_loopback):
        raise UnsafeDestination(
            "Must be an https:// URL" + (" (http:// only for loopback hosts)." if allow_private else ".")
        )
    if local and not allow_private:
        what = "address" if ip is not None else "host name"
        raise UnsafeDestination(
            f"{host} is a private or local {what}: webhooks go to public https:// endpoints only."
        )


def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (IPv6 only where the host has it)."""
    infos = socket.getaddrinfo(host, port, family=allowed_gai_family(), type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]


def vetted_address(host: str, port: int, *, allow_private: bool, resolve: Resolver = system_resolve) -> str:
    """Resolve ``host`` once and return the address to connect to.

    Refused (``UnsafeDestination``) when *any* address is not public: an attacker's DNS can answer
    with a public and a private address and let the client pick. A name that does not resolve
    raises ``requests.ConnectionError``, a network error like any other (worth a retry).
    """
    try:
        addresses = list(resolve(host, port))
    except (socket.gaierror, UnicodeError) as exc:
        raise requests.ConnectionError(f"Could not resolve {host}: {exc}") from exc
    if not addresses:
        raise requests.ConnectionError(f"Could not resolve {host}: no address")
    if not allow_private:
        refused = [a for a in addresses if not is_public_address(a.split("%", 1)[0])]
        if refused:
            raise UnsafeDestination(
                f"{host} resolves to {', '.join(refused)}, which is not a public address; not connecting."
            )
    return addresses[0]


class _PinnedAdapter(HTTPAdapter):
    """Connects to one vetted address whatever the URL's host resolves to now; TLS still checks
    the certificate against, and sends SNI for, the URL's host name."""

    def __init__(self, host: str, address: str):
        super().__init__(max_retries=0)
        self._host = host
        self._address = f"[{address}]" if ":" in address else address

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if (host_params["host"] or "").rstrip(".") != self._host:
            # Only reachable if requests ever followed a redirect to another host: refuse.
            raise UnsafeDestination(f"{host_params['host']} was not checked; not connecting.")
        host_params["host"] = self._address
        if host_params["scheme"] == "https":
            # urllib3 would otherwise check the certificate against the IP address.
            pool_kwargs["server_hostname"] = self._host
            pool_kwargs["assert_hostname"] = self._host
        return host_params, pool_kwargs

    def get_connection(self, url, proxies=None):  # the pre-2.32.2 path would skip the pin
        raise NotImplementedError("requests >= 2.32.2 is required")


def post(
    url: str,
    *,
    data: bytes,
    headers: dict[str, str],
    timeout: float,
    allow_private: bool,
    resolve: Resolver = system_resolve,
    verify: bool | str = True,
) -> requests.Response:
    """POST ``data`` to ``url`` through the checks above; a 3xx answer is returned, not followed.

    Raises ``UnsafeDestination`` (never worth retrying) or a ``requests.RequestException``.
    """
    check_webhook_url(url, allow_private=allow_private)
    with requests.Session() as session:
        session.trust_env = False  # no HTTP(S)_PROXY, no .netrc: we connect, to what we checked
        request = session.prepare_request(requests.Request("POST", url, data=data, headers=headers))
        # The name as it goes on the wire (an internationalised name is IDNA-encoded by now).
        parts = urlsplit(request.url)
        host = (parts.hostname or "").rstrip(".")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = vetted_address(host, port, allow_private=allow_private, resolve=resolve)
        host_header = f"[{host}]" if ":" in host else host
        request.headers["Host"] = f"{host_header}:{parts.port}" if parts.port is not None else host_header
        session.mount("https://", _PinnedAdapter(host, address))
        session.mount("http://", _PinnedAdapter(host, address))
        return session.send(request, timeout=timeout, allow_redirects=False, verify=verify)
