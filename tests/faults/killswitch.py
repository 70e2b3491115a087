"""Faults injected into a server process: it dies the instant a commit would be published.

Installed only through tests.faults.settings_kill_before_publish (notifications) or
tests.faults.settings_kill_before_chat_publish (chat messages), in a process that a fault test
starts; never in the shop itself. FAULT_KILL_AT_PUBLISH=<n> (default 1) lets the first n - 1
such publishes through and dies at the n-th, so a stream can be cut in the middle.
"""

import itertools
import os
import signal

from django.apps import AppConfig


def _killing_at_the_nth(publish, *, counts=lambda *args, **kwargs: True):
    """`publish`, except that the FAULT_KILL_AT_PUBLISH-th call that `counts` SIGKILLs the process instead."""
    kill_at = int(os.environ.get("FAULT_KILL_AT_PUBLISH", "1"))
    number = itertools.count(1)

    def publish_or_die(*args, **kwargs):
        if counts(*args, **kwargs) and next(number) == kill_at:
            # Called from transaction.on_commit: the change and its rows are committed, the publish has
            # not happened. SIGKILL: no cleanup, no goodbye.
            os.kill(os.getpid(), signal.SIGKILL)
        return publish(*args, **kwargs)

    return publish_or_die


class KillBeforePublishConfig(AppConfig):
    """Dies at a notification's publish (every publish, of one change, of a batch or the sweeper's, ends there)."""

    name = "tests.faults"
    label = "faults_killswitch"

    def ready(self):
        from notifications import services

        services.notifications_send = _killing_at_the_nth(services.notifications_send)


def _carries_a_chat_message(messages) -> bool:
    return any(message["type"] == "chat.message" for _, message in messages)


class KillBeforeChatPublishConfig(AppConfig):
    """Dies at a chat message's live publish: the hook group_send_on_commit registers (a read mark's goes through)."""

    name = "tests.faults"
    label = "faults_chat_killswitch"

    def ready(self):
        from notifications import services

        # Looked up by name when group_send_on_commit registers the hook, so replacing it here catches every one.
        send = services._group_sends_quietly
        services._group_sends_quietly = _killing_at_the_nth(send, counts=_carries_a_chat_message)
