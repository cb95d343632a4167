"""Forwarding headers (RFC 7239 ``Forwarded``, ``X-Forwarded-Proto/-Host``): parsed only from a
trusted peer, a chain walked back through trusted hops, junk values ignored."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from slotline.agent.server.forwarded import (
    Origin,
    is_loopback,
    is_trusted,
    origin_of,
    trusted_networks,
)

LOOPBACK = trusted_networks(("127.0.0.1", "::1"))
OWN = Origin("http", "127.0.0.1:8080")


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_x_forwarded_proto_from_loopback_keeps_the_host_header() -> None:
    own = Origin("http", "abc.ngrok.app")  # ngrok passes the public Host through
    got = origin_of("127.0.0.1", headers(("X-Forwarded-Proto", "https"),
                                         ("X-Forwarded-For", "203.0.113.7")), LOOPBACK, own)
    assert got == Origin("https", "abc.ngrok.app")


def test_x_forwarded_host_and_proto() -> None:
    got = origin_of("::1", headers(("X-Forwarded-Proto", "HTTPS"),
                                   ("X-Forwarded-Host", "calls.example.com")), LOOPBACK, OWN)
    assert got == Origin("https", "calls.example.com")


def test_rfc7239_forwarded_with_quoted_values() -> None:
    value = 'for="[2001:db8::1]:4711";proto=https;host="calls.example.com:8443";by=_caddy'
    got = origin_of("127.0.0.1", headers(("Forwarded", value)), LOOPBACK, OWN)
    assert got == Origin("https", "calls.example.com:8443")


def test_forwarded_wins_over_x_forwarded() -> None:
    got = origin_of("127.0.0.1", headers(("X-Forwarded-Proto", "http"),
                                         ("Forwarded", "proto=https;host=a.example")),
                    LOOPBACK, OWN)
    assert got == Origin("https", "a.example")


@pytest.mark.parametrize("peer", ["203.0.113.9", "10.0.0.1", "", None, "unknown"])
def test_untrusted_peer_is_ignored(peer: str | None) -> None:
    sent = headers(("Forwarded", "proto=https;host=evil.example"),
                   ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example"))
    assert origin_of(peer, sent, LOOPBACK, OWN) == OWN


def test_cidr_trust_and_ipv4_mapped_peers() -> None:
    lan = trusted_networks(("10.0.0.0/8",))
    sent = headers(("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "lb.example"))
    assert origin_of("10.1.2.3", sent, lan, OWN) == Origin("https", "lb.example")
    assert origin_of("::ffff:10.1.2.3", sent, lan, OWN) == Origin("https", "lb.example")
    assert origin_of("127.0.0.1", sent, lan, OWN) == OWN  # loopback not listed: not trusted
    assert origin_of("127.0.0.1", sent, trusted_networks(()), OWN) == OWN


def test_the_last_hop_is_our_peers_unless_its_client_is_trusted_too() -> None:
    # client → CDN (198.51.100.5) → Caddy on loopback → us
    chain = headers(("Forwarded", "for=203.0.113.7;proto=https;host=public.example"),
                    ("Forwarded", "for=198.51.100.5;proto=http;host=internal.example"))
    assert origin_of("127.0.0.1", chain, LOOPBACK, OWN) == Origin("http", "internal.example")
    with_cdn = trusted_networks(("127.0.0.1", "198.51.100.0/24"))
    assert origin_of("127.0.0.1", chain, with_cdn, OWN) == Origin("https", "public.example")


def test_x_forwarded_lists_align_from_their_ends() -> None:
    sent = headers(("X-Forwarded-For", "203.0.113.7, 198.51.100.5"),
                   ("X-Forwarded-Proto", "https, http"))
    assert origin_of("127.0.0.1", sent, LOOPBACK, OWN) == Origin("http", OWN.host)
    with_cdn = trusted_networks(("127.0.0.1", "198.51.100.5"))
    assert origin_of("127.0.0.1", sent, with_cdn, OWN) == Origin("https", OWN.host)


@pytest.mark.parametrize("bad", [
    ("X-Forwarded-Proto", "gopher"),
    ("X-Forwarded-Host", "evil.example/path"),
    ("X-Forwarded-Host", "a b"),
    ("Forwarded", 'host="x\\"y"'),
])
def test_junk_values_fall_back_to_what_the_socket_saw(bad: tuple[str, str]) -> None:
    assert origin_of("127.0.0.1", headers(bad), LOOPBACK, OWN) == OWN


def test_no_forwarding_headers_is_the_socket_origin() -> None:
    assert origin_of("127.0.0.1", headers(("Host", "x")), LOOPBACK, OWN) == OWN


def test_address_helpers() -> None:
    assert is_trusted("[::1]", LOOPBACK) and not is_trusted("::2", LOOPBACK)
    assert is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("example.com")


def test_setting_takes_cidrs_a_comma_list_and_rejects_junk() -> None:
    from slotline.agent.config import ServerSettings, load_settings
    from slotline.providers.errors import ConfigError

    assert ServerSettings().trusted_proxies == ("127.0.0.1", "::1")
    env = {"SLOTLINE_SERVER__TRUSTED_PROXIES": "10.0.0.0/8, ::1"}
    assert load_settings(None, env).server.trusted_proxies == ("10.0.0.0/8", "::1")
    with pytest.raises(ConfigError, match="not an IP address or CIDR"):
        load_settings(None, {"SLOTLINE_SERVER__TRUSTED_PROXIES": "proxy.example"})
