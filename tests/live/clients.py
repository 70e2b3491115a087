"""Clients for the end-to-end tests: a browser over HTTP (httpx) and notification sockets (websockets).

Nothing here reaches into the servers: logging in, the admin form and logging out go
through the same HTTP requests a browser makes, and sockets authenticate with the
session cookie that login set.
"""

import asyncio
import json
import re
from html.parser import HTMLParser

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.factories import DEFAULT_PASSWORD

HTTP_TIMEOUT = 15.0
# How long a frame may take to arrive: far above the normal few milliseconds, so a
# loaded machine does not fail a test, and a lost frame still fails it quickly enough.
FRAME_TIMEOUT = 10.0
# How long "nothing more arrives" is watched for.
QUIET_PERIOD = 1.5


# --- HTTP: a browser -------------------------------------------------------------------------


class FormFields(HTMLParser):
    """The fields a browser would submit for the form with `form_id`, as (name, value) pairs."""

    def __init__(self, form_id: str):
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.in_form = False
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._select_options: list[tuple[str, bool]] = []
        self._textarea: str | None = None
        self._textarea_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id") == self.form_id:
            self.in_form = True
        if not self.in_form:
            return
        name = attrs.get("name")
        if tag == "input" and name and "disabled" not in attrs:
            kind = (attrs.get("type") or "text").lower()
            if kind in ("submit", "button", "image", "reset", "file"):
                return
            if kind in ("checkbox", "radio") and "checked" not in attrs:
                return
            self.fields.append((name, attrs.get("value") or ("on" if kind in ("checkbox", "radio") else "")))
        elif tag == "select" and name:
            self._select, self._select_options = name, []
        elif tag == "option" and self._select is not None:
            self._select_options.append((attrs.get("value", ""), "selected" in attrs))
        elif tag == "textarea" and name:
            self._textarea, self._textarea_text = name, []

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea_text.append(data)

    def handle_endtag(self, tag):
        if tag == "form" and self.in_form:
            self.in_form = False
        elif tag == "select" and self._select is not None:
            chosen = [value for value, selected in self._select_options if selected]
            if chosen or self._select_options:
                self.fields.append((self._select, (chosen or [self._select_options[0][0]])[0]))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.fields.append((self._textarea, "".join(self._textarea_text).removeprefix("\n")))
            self._textarea = None


def form_fields(html: str, form_id: str) -> dict[str, str | list[str]]:
    parser = FormFields(form_id)
    parser.feed(html)
    assert parser.fields, f"no form #{form_id} on the page"
    data: dict[str, str | list[str]] = {}
    for name, value in parser.fields:
        if name in data:
            previous = data[name]
            data[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            data[name] = value
    return data


CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Browser:
    """One browser: its own cookie jar, so two Browsers logging in are two sessions."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.client = httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT, follow_redirects=False)

    async def aclose(self) -> None:
        await self.client.aclose()

    @property
    def session_id(self) -> str | None:
        return self.client.cookies.get("sessionid")

    @property
    def csrf_token(self) -> str | None:
        return self.client.cookies.get("csrftoken")

    async def login(self, username: str, password: str = DEFAULT_PASSWORD) -> "Browser":
        """Log in through the login form: GET it for the CSRF token, POST the credentials."""
        page = await self.client.get("/accounts/login/")
        assert page.status_code == 200, f"login page: HTTP {page.status_code}"
        token = CSRF_INPUT.search(page.text)
        assert token and self.csrf_token, "the login page set no CSRF token"
        response = await self.client.post(
            "/accounts/login/",
            data={"csrfmiddlewaretoken": token.group(1), "username": username, "password": password},
            headers={"Referer": f"{self.base_url}/accounts/login/"},
        )
        assert response.status_code == 302, f"login as {username!r} failed: HTTP {response.status_code}"
        assert self.session_id, "login set no session cookie"
        return self

    async def logout(self) -> None:
        response = await self.client.post(
            "/accounts/logout/", headers={"X-CSRFToken": self.csrf_token or "", "Referer": f"{self.base_url}/"}
        )
        assert response.status_code == 302, f"logout failed: HTTP {response.status_code}"

    async def admin_change_status(
        self, order_id: int, status: str, *, customer_message: str = "", internal_note: str = ""
    ) -> None:
        """Open the order's admin change form, pick `status`, and save, as staff would in a browser."""
        url = f"/admin/orders/order/{order_id}/change/"
        page = await self.client.get(url)
        assert page.status_code == 200, f"admin change form: HTTP {page.status_code}"
        data = form_fields(page.text, "order_form")
        assert {"status", "loaded_version", "items-TOTAL_FORMS", "events-TOTAL_FORMS"} <= set(data), sorted(data)
        data.update(status=status, customer_message=customer_message, internal_note=internal_note, _save="Save")
        response = await self.client.post(url, data=data, headers={"Referer": f"{self.base_url}{url}"})
        if response.status_code != 302:
            errors = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.text, re.S)
            raise AssertionError(f"admin save: HTTP {response.status_code}, errors: {errors}")


# --- WebSocket: notification sockets -------------------------------------------------------


class SocketOpener:
    """Opens notification sockets like the page does, and closes whatever is left open."""

    def __init__(self):
        self.sockets: list[ClientConnection] = []

    async def __call__(
        self, server, browser: Browser | None = None, *, after: int | str | None = None, origin: str | None = None
    ) -> ClientConnection:
        url = server.ws_url + (f"?after={after}" if after is not None else "")
        headers = {"Cookie": f"sessionid={browser.session_id}"} if browser is not None else {}
        socket = await connect(
            url,
            origin=origin or server.origin,
            additional_headers=headers,
            # Only the server's keepalive pings (which the client answers by itself) are in play.
            ping_interval=None,
            open_timeout=FRAME_TIMEOUT,
            close_timeout=2,
        )
        self.sockets.append(socket)
        return socket

    async def aclose(self) -> None:
        for socket in self.sockets:
            await socket.close()


async def receive_frame(socket: ClientConnection, timeout: float = FRAME_TIMEOUT) -> dict:
    """The next frame, decoded; fails if none arrives within `timeout` or the socket closes."""
    try:
        raw = await asyncio.wait_for(socket.recv(), timeout)
    except TimeoutError:
        raise AssertionError(f"no frame within {timeout}s") from None
    except ConnectionClosed as closed:
        raise AssertionError(f"socket closed while waiting for a frame: {closed}") from None
    return json.loads(raw)


async def receive_hello(socket: ClientConnection) -> dict:
    frame = await receive_frame(socket)
    assert frame["type"] == "hello", frame
    return frame


async def receive_notification(socket: ClientConnection, timeout: float = FRAME_TIMEOUT) -> dict:
    frame = await receive_frame(socket, timeout)
    assert frame["type"] == "notification", frame
    return frame


async def assert_no_frame(socket: ClientConnection, within: float = QUIET_PERIOD) -> None:
    """Nothing arrives for `within` seconds, and the socket stays open meanwhile."""
    try:
        raw = await asyncio.wait_for(socket.recv(), within)
    except TimeoutError:
        return  # recv() is cancellation-safe: nothing is lost by timing it out
    except ConnectionClosed as closed:
        raise AssertionError(f"socket closed: {closed}") from None
    raise AssertionError(f"expected no frame within {within}s, got {raw}")


async def closing_code(socket: ClientConnection, timeout: float = FRAME_TIMEOUT) -> int | None:
    """Wait for the server to close the socket; its close code. Fails if a frame arrives first."""
    try:
        raw = await asyncio.wait_for(socket.recv(), timeout)
    except TimeoutError:
        raise AssertionError(f"socket still open after {timeout}s") from None
    except ConnectionClosed:
        return socket.close_code
    raise AssertionError(f"expected the socket to close, got a frame: {raw}")
