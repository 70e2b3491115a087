"""shop/proxy.py: forwarded headers count only from TRUSTED_PROXIES, and then only what our proxy appended."""

import pytest

from shop.proxy import FORWARDED_HEADERS, TrustedProxyMiddleware, proxy_networks_parse

PROXY = "10.0.0.2"
TRUSTED = ["10.0.0.2", "192.168.10.0/24", "fd00::/64"]


async def scope_seen_by_the_app(*, client, headers, kind="http", scheme=None):
    """Run the middleware on one connection's scope; what the wrapped application received."""
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)

    scope = {"type": kind, "client": client, "headers": [(n.encode(), v.encode()) for n, v in headers]}
    if scheme:
        scope["scheme"] = scheme
    await TrustedProxyMiddleware(app, trusted_proxies=TRUSTED)(scope, None, None)
    return seen


# (peer, X-Forwarded-For sent, client the application sees)
CLIENTS = [
    # Untrusted peers: whatever they write is ignored.
    (("203.0.113.7", 4000), "198.51.100.1", ("203.0.113.7", 4000)),
    (("203.0.113.7", 4000), "198.51.100.1, 10.0.0.2", ("203.0.113.7", 4000)),
    (("10.0.0.3", 4000), "198.51.100.1", ("10.0.0.3", 4000)),
    # A trusted proxy: the rightmost entry that is not itself a trusted proxy.
    ((PROXY, 5000), "198.51.100.1", ("198.51.100.1", 0)),
    ((PROXY, 5000), "6.6.6.6, 198.51.100.1", ("198.51.100.1", 0)),
    ((PROXY, 5000), "6.6.6.6, 198.51.100.1, 192.168.10.9", ("198.51.100.1", 0)),
    ((PROXY, 5000), "2001:db8::1", ("2001:db8::1", 0)),
    (("fd00::5", 5000), "6.6.6.6,2001:db8::1", ("2001:db8::1", 0)),
    # Every hop a trusted proxy: the farthest of them.
    ((PROXY, 5000), "192.168.10.4, 192.168.10.9", ("192.168.10.4", 0)),
    # Not an address: the walk stops at the nearest trusted hop, never beyond it.
    ((PROXY, 5000), "198.51.100.1, garbage", (PROXY, 5000)),
    ((PROXY, 5000), "garbage, 192.168.10.9", ("192.168.10.9", 0)),
    # No header: the proxy itself.
    ((PROXY, 5000), None, (PROXY, 5000)),
]


@pytest.mark.parametrize(("peer", "forwarded_for", "expected"), CLIENTS)
async def test_the_client_is_the_address_the_trusted_proxy_saw_and_nobody_elses_claim(peer, forwarded_for, expected):
    headers = [("x-forwarded-for", forwarded_for)] if forwarded_for else []
    scope = await scope_seen_by_the_app(client=peer, headers=headers)
    assert scope["client"] == expected


async def test_several_forwarded_for_lines_are_one_list():
    headers = [("x-forwarded-for", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.1")]
    scope = await scope_seen_by_the_app(client=(PROXY, 5000), headers=headers)
    assert scope["client"] == ("198.51.100.1", 0)


# (peer, type, scheme daphne set, X-Forwarded-Proto sent, scheme the application sees)
SCHEMES = [
    (("203.0.113.7", 1), "http", "http", "https", "http"),
    (("203.0.113.7", 1), "websocket", "ws", "https", "ws"),
    ((PROXY, 1), "http", "http", "https", "https"),
    ((PROXY, 1), "websocket", "ws", "https", "wss"),
    ((PROXY, 1), "websocket", "wss", "http", "ws"),
    ((PROXY, 1), "http", "http", "http", "http"),
    ((PROXY, 1), "http", "http", "gopher", "http"),
    ((PROXY, 1), "http", "http", "https, http", "http"),
]


@pytest.mark.parametrize(("peer", "kind", "scheme", "proto", "expected"), SCHEMES)
async def test_the_scheme_comes_from_a_trusted_proxy_only(peer, kind, scheme, proto, expected):
    scope = await scope_seen_by_the_app(client=peer, headers=[("x-forwarded-proto", proto)], kind=kind, scheme=scheme)
    assert scope["scheme"] == expected


@pytest.mark.parametrize("peer", [("203.0.113.7", 1), (PROXY, 1)])
async def test_no_forwarded_header_reaches_the_application(peer):
    sent = [(name.decode().upper(), "https" if b"proto" in name else "198.51.100.1") for name in FORWARDED_HEADERS]
    scope = await scope_seen_by_the_app(client=peer, headers=[*sent, ("cookie", "a=b")])
    assert scope["headers"] == [(b"cookie", b"a=b")]


async def test_a_scope_without_a_client_passes_through():
    scope = await scope_seen_by_the_app(client=None, headers=[("x-forwarded-for", "198.51.100.1")])
    assert scope["client"] is None and scope["headers"] == []


def test_trusted_proxies_are_addresses_or_networks_and_nothing_else():
    assert [str(n) for n in proxy_networks_parse(entries=["10.0.0.2", " 172.28.0.0/24 ", "", "fd00::1"])] == [
        "10.0.0.2/32", "172.28.0.0/24", "fd00::1/128"
    ]  # fmt: skip
    with pytest.raises(ValueError):
        proxy_networks_parse(entries=["nginx"])


def test_the_shops_application_is_wrapped_outermost_for_http_and_websocket_alike():
    from channels.routing import ProtocolTypeRouter

    from shop.asgi import application

    assert isinstance(application, TrustedProxyMiddleware)
    assert isinstance(application.app, ProtocolTypeRouter)
    assert {"http", "websocket"} <= set(application.app.application_mapping)


async def test_a_scope_with_nothing_to_drop_or_believe_is_passed_on_as_the_server_made_it():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope)

    scope = {"type": "websocket", "client": ("203.0.113.7", 4000), "headers": [(b"cookie", b"sessionid=x")]}
    await TrustedProxyMiddleware(app, trusted_proxies=TRUSTED)(scope, None, None)
    assert seen[0] is scope  # no copy per socket: one less dict held for the socket's life (docs/performance.md)


async def test_a_scope_with_a_forwarded_header_from_anyone_else_is_a_copy_without_it():
    scope = {"type": "websocket", "client": ("203.0.113.7", 4000), "headers": [(b"x-forwarded-for", b"6.6.6.6")]}
    seen = await scope_seen_by_the_app(client=scope["client"], headers=[("x-forwarded-for", "6.6.6.6")])
    assert seen["headers"] == []
    assert scope["headers"] == [(b"x-forwarded-for", b"6.6.6.6")]  # the server's own scope is left alone
