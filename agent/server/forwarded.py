"""Where a request really came in: the scheme and host a client used in front of a proxy.

Behind ngrok, Caddy or a load balancer, TLS ends in front of us: the request reaches us as plain
HTTP from the proxy, and Twilio signed — and must be sent back — the public ``https://`` URL. The
proxy says what it received in ``Forwarded`` (RFC 7239) or ``X-Forwarded-Proto`` /
``X-Forwarded-Host``. Anyone can send those headers, so they count only when the TCP peer is a
proxy we trust (``server.trusted_proxies``; loopback by default, where ngrok and a local Caddy
connect from). Pure functions: no I/O, tested without a server.

A chain of proxies appends one entry per hop; the last entry is the one our peer wrote. When the
client that peer names is itself trusted (a CDN in front of a local Caddy, both listed), we step
back one hop, and so on: the answer is what the first untrusted hop's proxy received.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from multidict import MultiMapping

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

# A host as it may appear in a URL we hand to Twilio: a name or IPv4 address, or a bracketed
# IPv6 address, each with an optional port. Anything else (spaces, paths, quotes) is ignored.
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$"
)
_SCHEMES = frozenset({"http", "https"})


@dataclass(frozen=True, slots=True)
class Origin:
    """The scheme (``http`` or ``https``) and host (with port, if any) a client asked for."""

    scheme: str
    host: str


@dataclass(frozen=True, slots=True)
class _Hop:
    """One proxy's account of the request it received (one ``Forwarded`` element)."""

    client: str | None
    scheme: str | None
    host: str | None


@functools.lru_cache(maxsize=16)
def trusted_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """``("127.0.0.1", "10.0.0.0/8")`` → networks; cached: the setting is read per request."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def is_trusted(address: str | None, networks: Sequence[Network]) -> bool:
    """Whether ``address`` (an IP, maybe bracketed or IPv4-mapped) lies in one of ``networks``."""
    if not address:
        return False
    text = address.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    try:
        ip = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:  # "unknown", an obfuscated identifier ("_hidden"), a name
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d
    return any(ip in network for network in networks)


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.x.x.x`` or ``::1``: a bind address only this machine reaches."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def origin_of(
    peer: str | None,
    headers: MultiMapping[str],
    networks: Sequence[Network],
    default: Origin,
) -> Origin:
    """The origin the client used: from the forwarding headers if ``peer`` is trusted, else
    ``default`` (what this server itself saw). ``Forwarded`` wins over ``X-Forwarded-*``."""
    if not is_trusted(peer, networks):
        return default
    hops = _forwarded_hops(headers) or _x_forwarded_hops(headers)
    if not hops:
        return default
    index = len(hops) - 1
    while index > 0 and is_trusted(hops[index].client, networks):
        index -= 1
    hop = hops[index]
    scheme = hop.scheme.lower() if hop.scheme else None
    host = hop.host if hop.host and _HOST.match(hop.host) else None
    return Origin(
        scheme if scheme in _SCHEMES else default.scheme,
        host if host is not None else default.host,
    )


def _forwarded_hops(headers: MultiMapping[str]) -> list[_Hop]:
    """RFC 7239: ``for=…;proto=…;host=…`` elements, comma-separated, over one or more lines."""
    hops: list[_Hop] = []
    for line in headers.getall("Forwarded", []):
        for element in _split(line, ","):
            pairs: dict[str, str] = {}
            for pair in _split(element, ";"):
                name, sep, value = pair.partition("=")
                if sep:
                    pairs[name.strip().lower()] = _unquote(value.strip())
            hops.append(_Hop(pairs.get("for"), pairs.get("proto"), pairs.get("host")))
    return hops


def _x_forwarded_hops(headers: MultiMapping[str]) -> list[_Hop]:
    """``X-Forwarded-For/-Proto/-Host`` lists, aligned from their ends (the nearest hop last);
    a list shorter than the others leaves the earlier hops' field unknown."""
    columns = [
        [v.strip() for line in headers.getall(name, []) for v in line.split(",") if v.strip()]
        for name in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host")
    ]
    depth = max(len(column) for column in columns)

    def at(column: list[str], index: int) -> str | None:
        shifted = index - (depth - len(column))
        return column[shifted] if shifted >= 0 else None

    return [_Hop(*(at(column, i) for column in columns)) for i in range(depth)]


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double quotes (a quoted value may contain it)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value
