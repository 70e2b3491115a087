"""Socket message types owned by other apps: registered from their `AppConfig.ready()`, like kinds and audiences.

The consumer knows the protocol's own types (ping, ack, mark_read…); an app adds the client messages it answers
(`chat.send`) and the channel-layer messages it delivers (`chat.message`), each with an async handler that gets
the socket and the message. The consumer parses, rate-limits and error-handles them as it does its own; the app
keeps whatever it needs per socket in `socket.extensions[<its name>]`, and may put the socket in groups it names
with `socket.group_join(name)` once it has authorised the user (left again at disconnect), and may run work that
must not hold up the socket with `socket.task_beside(coroutine)` (docs/protocol.md).
An app may also hear of each socket's opening (set up and counted, before its backlog) and closing (however it
ended, after it left its groups), e.g. to keep what it registered for the socket elsewhere in step.
"""

import re
from collections.abc import Awaitable, Callable
from typing import Any

# What a handler gets: the NotificationConsumer (its `user`, `user_id`, `send_json` and `extensions`).
SocketHandler = Callable[[Any, dict], Awaitable[None]]

# A registered type is namespaced by its app ("chat.send"), so it can never be one of the protocol's own.
MESSAGE_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*")

# What a socket's opening or closing is told to: the NotificationConsumer.
SocketHook = Callable[[Any], Awaitable[None]]

_client_messages: dict[str, SocketHandler] = {}
_layer_messages: dict[str, SocketHandler] = {}
_open_hooks: list[SocketHook] = []
_close_hooks: list[SocketHook] = []


def _register(registry: dict[str, SocketHandler], what: str, type_name: str, handler: SocketHandler) -> None:
    if not MESSAGE_TYPE_NAME.fullmatch(type_name):
        raise ValueError(f"A registered {what} type is '<app>.<name>', lowercase: {type_name!r}")
    registered = registry.setdefault(type_name, handler)
    if registered is not handler:
        raise ValueError(f"The {what} type {type_name!r} is already handled by {registered!r}")


def client_message_register(type_name: str, handler: SocketHandler) -> None:
    """Answer client messages of `type_name` with `handler(socket, content)`; the same again is harmless."""
    _register(_client_messages, "client message", type_name, handler)


def layer_message_register(type_name: str, handler: SocketHandler) -> None:
    """Deliver channel-layer messages of `type_name` with `handler(socket, message)`; the same again is harmless."""
    _register(_layer_messages, "channel-layer message", type_name, handler)


def client_message_handler(type_name: str) -> SocketHandler | None:
    return _client_messages.get(type_name)


def layer_message_handler(type_name: str) -> SocketHandler | None:
    return _layer_messages.get(type_name)


def socket_open_register(hook: SocketHook) -> None:
    """Call `hook(socket)` once each authenticated socket is set up; the same again is harmless."""
    if hook not in _open_hooks:
        _open_hooks.append(hook)


def socket_close_register(hook: SocketHook) -> None:
    """Call `hook(socket)` once when a socket that was set up ends, however it ends; the same again is harmless."""
    if hook not in _close_hooks:
        _close_hooks.append(hook)


def socket_open_hooks() -> tuple[SocketHook, ...]:
    return tuple(_open_hooks)


def socket_close_hooks() -> tuple[SocketHook, ...]:
    return tuple(_close_hooks)
