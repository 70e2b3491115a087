"""The WebSocket origin check: only this site's own pages, or an origin CSRF trusts, may open a socket.

A browser sends the cookies of the socket's host whatever page opens it, so the Origin header is all
that tells the customer's own tab from a page elsewhere (cross-site WebSocket hijacking). Channels'
AllowedHostsOriginValidator compares host names only, which let a page on another port of the same host,
or a plain-http page beside the https site, read a customer's notifications. Here the whole origin
(scheme, host and port) must be one of:

- the socket's own site: `http` for a `ws` socket, `https` for `wss` (the scheme from the ASGI scope, which a
  trusted proxy's middleware sets; never from a header), and the Host header, itself in ALLOWED_HOSTS;
- an entry of CSRF_TRUSTED_ORIGINS, with Django's CSRF rules (`https://*.example.com` is the domain and every
  subdomain, on that scheme and port).

Default ports count as written or not (`https://shop.example.com:443` is `https://shop.example.com`). Anything
else is refused with HTTP 403: no Origin or two, `null`, userinfo, a path, uppercase, other ports, other schemes.
"""

import re
from functools import lru_cache
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import is_same_domain, split_domain_port, validate_host

# An origin as browsers serialise it (RFC 6454): lowercase scheme and host, a port only if not the default.
_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<host>[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(?P<port>[1-9][0-9]{0,4}))?")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# The page's scheme for the socket's (ASGI: "ws" or "wss"; http/https if a middleware wrote those).
_PAGE_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}

Origin = tuple[str, str, int]  # scheme, host, port


class SiteOriginValidator:
    """Refuse (HTTP 403) a WebSocket handshake whose Origin is not the site's own or a CSRF-trusted one."""

    def __init__(self, app):
        self.application = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope=scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def origin_allowed(*, scope: dict) -> bool:
    """Whether the handshake in `scope` comes from a page this site trusts."""
    origin = _parse_origin(_only_header(scope, b"origin"))
    if origin is None:
        return False
    return origin == _site_origin(scope) or _trusted(origin, tuple(settings.CSRF_TRUSTED_ORIGINS))


def _only_header(scope: dict, name: bytes) -> str | None:
    """The value of header `name` if it was sent exactly once, else None (two Origins are no origin)."""
    values = [value for key, value in scope.get("headers", []) if key.lower() == name]
    return values[0].decode("latin1") if len(values) == 1 else None


def _parse_origin(text: str | None) -> Origin | None:
    match = _ORIGIN.fullmatch(text or "")
    if match is None:
        return None
    scheme, port = match["scheme"], int(match["port"] or _DEFAULT_PORTS[match["scheme"]])
    return (scheme, match["host"], port) if port <= 65535 else None


def _site_origin(scope: dict) -> Origin | None:
    """The origin of the page that belongs with this socket: its scheme and its Host, if that host is served."""
    scheme = _PAGE_SCHEMES.get(scope.get("scheme", "ws"))
    host = _only_header(scope, b"host")
    if scheme is None or host is None:
        return None
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return None
    return _parse_origin(f"{scheme}://{host.lower()}")


def _allowed_hosts() -> list[str]:
    """ALLOWED_HOSTS, with the same stand-in as Django's HttpRequest.get_host() under DEBUG."""
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return [".localhost", "127.0.0.1", "[::1]"]
    return settings.ALLOWED_HOSTS


def _trusted(origin: Origin, trusted_origins: tuple[str, ...]) -> bool:
    scheme, host, port = origin
    return any(
        (scheme, port) == (trusted_scheme, trusted_port)
        and (is_same_domain(host, trusted_host) if trusted_host.startswith(".") else host == trusted_host)
        for trusted_scheme, trusted_host, trusted_port in _parse_trusted(trusted_origins)
    )


@lru_cache(maxsize=4)
def _parse_trusted(trusted_origins: tuple[str, ...]) -> list[Origin]:
    """CSRF_TRUSTED_ORIGINS as origins; a wildcard `*.example.com` becomes `.example.com`, the domain and its
    subdomains (is_same_domain), as in Django's CSRF check."""
    parsed = []
    for entry in trusted_origins:
        try:
            url = urlsplit(entry.lower())
            # Django's rule: "*" makes "*.example.com" the pattern ".example.com"; without it, the host itself.
            netloc = urlsplit("//" + url.netloc.removeprefix("*"))
            host, port = netloc.hostname, netloc.port or _DEFAULT_PORTS.get(url.scheme)
        except ValueError:
            continue  # malformed: Django's system check reports it
        if not host or not port or host.startswith(".") != url.netloc.startswith("*."):
            continue
        parsed.append((url.scheme, f"[{host}]" if ":" in host else host, port))
    return parsed
