"""The packages whose private internals the shop relies on, pinned, and checked at start-up.

An upgrade of one of them may change what those files reach into without any error until
production traffic finds it, so every process refuses to start on other versions than the ones
the files were written against (the web entry point, and `ShopConfig.ready()` for daphne's
application, Celery and manage.py alike). To upgrade one: revisit the files named, then change
its pin here and in requirements.in / requirements.txt together.
"""

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Reliance:
    """A package pinned at `version` because `files` use its private internals (`what`)."""

    version: str
    files: tuple[str, ...]
    what: str


RELIANCES = {
    "daphne": Reliance(
        "4.2.3",
        ("shop/web.py", "shop/drain.py"),
        "Server's connection table, its two checker timers, http_factory/ws_factory made in run(), "
        "kill_all_applications as the before-shutdown trigger, listen_success given the port, handle_reply, "
        "application_checker's body; WebSocketProtocol.application_type; CommandLineInterface's parser and "
        "server_class; WebRequest's upgrade, which leaves the request in its channel's requests",
    ),
    "autobahn": Reliance(
        "26.10.2",
        ("shop/web.py", "shop/drain.py"),
        "WebSocketServerProtocol copying CONFIG_ATTRS from its factory per connection; sendCloseFrame (any code) "
        "and the state it leaves (STATE_CLOSING), sendMessage raising once not STATE_OPEN; is_closed resolved with "
        "the protocol itself",
    ),
    "twisted": Reliance(
        "26.10.0",
        ("shop/web.py",),
        "twisted.web.http._GenericHTTPChannelProtocol and HTTPChannel's allHeadersReceived/requestDone hooks; "
        "HTTPChannel.requests, which keeps an upgraded request",
    ),
    "channels": Reliance(
        "4.3.2",
        ("notifications/consumers.py",),
        "AsyncConsumer.dispatch, replaced without its aclose_old_connections(); get_handler_name",
    ),
    "channels-redis": Reliance(
        "4.3.0",
        ("notifications/layer_watch.py", "shop/redis_config.py", "shop/channel_layers.py"),
        "RedisPubSubChannelLayer._layers, RedisPubSubLoopLayer._shards, _get_shard, _get_group_channel_name and the "
        "shard's _pubsub; RedisChannelLayer.consistent_hash as the one shard choice of its send, receive and groups; "
        "utils.create_pool, how a host dict (an address, or sentinels and a master_name) becomes a pool",
    ),
    "redis": Reliance(
        "7.4.1",
        ("notifications/layer_watch.py",),
        "PubSub.connection's register_connect_callback, called on reconnects before resubscribing",
    ),
}


def internals_mismatches(installed: Callable[[str], str] | None = None) -> list[str]:
    """One line for each relied-on package whose installed version is not its pin (`installed`: name -> version)."""
    installed = installed or metadata.version
    mismatches = []
    for package, reliance in RELIANCES.items():
        try:
            version = installed(package)
        except metadata.PackageNotFoundError:
            version = "not installed"
        if version != reliance.version:
            mismatches.append(
                f"{package} {version} is installed, not {reliance.version}: revisit {', '.join(reliance.files)}, "
                f"written against its private internals ({reliance.what}), then update its pin in shop/internals.py, "
                f"requirements.in and requirements.txt"
            )
    return mismatches


def internals_check(installed: Callable[[str], str] | None = None) -> None:
    """Refuse to start on versions of the relied-on packages other than the pinned ones."""
    mismatches = internals_mismatches(installed)
    if mismatches:
        raise ImproperlyConfigured("\n".join(mismatches))
