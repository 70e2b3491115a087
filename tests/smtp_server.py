"""A real SMTP server for the tests (aiosmtpd), on a loopback port the OS picks, in a thread and event loop of its own.

It keeps every message it accepted, parsed (email.message_from_bytes), with its envelope. `refuse_with` makes it
answer DATA with a reply of the test's choosing (451, 550); `hold_next` makes it keep the next DATA reply until the
server stops (it has the message and has not said 250: the moment a fault test kills the sender).
"""

import asyncio
import email
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP

START_DEADLINE = 10.0


@dataclass(frozen=True)
class Received:
    """One accepted message: what the envelope said and the message as parsed."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    def text(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()

    def html(self) -> str:
        return self.message.get_body(preferencelist=("html",)).get_content()


class SMTPServer:
    def __init__(self):
        self.received: list[Received] = []
        self.data_commands = 0  # messages offered, accepted or not
        self.refuse_with: str | None = None
        self.hold_next = False
        self.holding = threading.Event()
        self._release = threading.Event()
        self.port = 0

    def start(self) -> "SMTPServer":
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve():
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                self._loop.create_server(lambda: SMTP(self, hostname="smtp.test"), host="127.0.0.1", port=0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="smtp-server", daemon=True)
        self._thread.start()
        assert ready.wait(START_DEADLINE), "the SMTP server did not start"
        return self

    def stop(self) -> None:
        self._release.set()
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_DEADLINE)

    async def handle_DATA(self, server, session, envelope) -> str:
        """aiosmtpd's hook for a message's DATA: accept it (250) or answer as the test asked."""
        self.data_commands += 1
        if self.hold_next:
            self.hold_next = False
            self.holding.set()
            await asyncio.get_running_loop().run_in_executor(None, self._release.wait)
            return "451 4.3.0 Held by the test, never accepted"
        if self.refuse_with:
            return self.refuse_with
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 2.0.0 Accepted"
