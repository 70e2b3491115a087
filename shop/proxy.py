"""Forwarded headers, believed only from the proxies named in TRUSTED_PROXIES.

daphne's `--proxy-headers` believed `X-Forwarded-For` and `X-Forwarded-Proto` from any client and took the
leftmost address, which the client writes: anyone could pick the address the login lockout is keyed on, and
the scheme (docs/reliability.md, attack 1). This ASGI middleware wraps the whole application instead:

- from a peer in TRUSTED_PROXIES, the client is the rightmost `X-Forwarded-For` entry that is not itself a
  trusted proxy (the address the nearest untrusted hop connected from, which our proxy appended), and the
  scheme is the proxy's `X-Forwarded-Proto` (http/https, ws/wss for a WebSocket);
- from any other peer, nothing changes except that every forwarded header is dropped from the scope, so
  nothing downstream (Django, django-axes, a consumer) can read what the client wrote there.
"""

import ipaddress
from collections.abc import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Headers a client could use to claim another address, scheme or host; only our proxy may set them.
FORWARDED_HEADERS = frozenset(
    {b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port",
     b"x-forwarded-ssl", b"x-real-ip"}
)  # fmt: skip
SECURE_SCHEMES = {"http": "https", "ws": "wss"}
PLAIN_SCHEMES = {"https": "http", "wss": "ws"}


def proxy_networks_parse(*, entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """TRUSTED_PROXIES' entries (addresses or CIDR blocks) as networks; a bad entry raises ValueError."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


class TrustedProxyMiddleware:
    """Sets the scope's client and scheme from a trusted proxy's headers; drops them from anyone else."""

    def __init__(self, app, trusted_proxies: Iterable[str]):
        self.app = app
        self.trusted = proxy_networks_parse(entries=trusted_proxies)

    def is_trusted(self, address: IPAddress | None) -> bool:
        """Whether `address` is one of the configured proxies."""
        return address is not None and any(address in network for network in self.trusted)

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            scope = self.resolve(scope)
        return await self.app(scope, receive, send)

    def resolve(self, scope: dict) -> dict:
        """The scope as the application should see it: the real client and scheme, no forwarded headers."""
        forwarded: dict[bytes, list[str]] = {}
        kept = []
        for name, value in scope.get("headers", []):
            if name.lower() in FORWARDED_HEADERS:
                # Several header lines of one name are one comma-separated list (RFC 9110, 5.3).
                forwarded.setdefault(name.lower(), []).append(value.decode("latin-1"))
            else:
                kept.append((name, value))
        client = scope.get("client")
        trusted = bool(client) and self.is_trusted(_address(client[0]))
        if not forwarded and not trusted:
            # Nothing to drop or believe: the server's own scope, not a copy that every socket would keep for life.
            return scope
        scope = {**scope, "headers": kept}
        if not trusted:
            return scope
        real_client = self.forwarded_client(",".join(forwarded.get(b"x-forwarded-for", [])))
        if real_client is not None:
            scope["client"] = (real_client, 0)  # the client's port is the proxy's to know
        proto = ",".join(forwarded.get(b"x-forwarded-proto", [])).split(",")[-1].strip().lower()
        scheme = scope.get("scheme") or ("ws" if scope["type"] == "websocket" else "http")
        if proto == "https":
            scope["scheme"] = SECURE_SCHEMES.get(scheme, scheme)
        elif proto == "http":
            scope["scheme"] = PLAIN_SCHEMES.get(scheme, scheme)
        return scope

    def forwarded_client(self, chain: str) -> str | None:
        """The rightmost address in `chain` that is not a trusted proxy; None if the chain names none.

        Entries left of it were written by whoever connected to that hop and prove nothing. An entry that is
        not an address ends the walk at the last trusted hop before it, never at what lies beyond.
        """
        nearest = None
        for entry in reversed([part for part in chain.split(",") if part.strip()]):
            address = _address(entry)
            if address is None:
                return nearest
            if not self.is_trusted(address):
                return str(address)
            nearest = str(address)
        return nearest
