"""One log line when a socket is accepted and one when it ends, with its close code; its id and user on every line.

ASGI middleware around the consumer (notifications/routing.py) rather than calls inside it: it sees the close
frame that actually went out, whichever way the consumer ended (a close, a lost channel layer, a bug, a
shutdown), and the client's code when the client closed first.
"""

import structlog

from shop.request_logs import request_id_from

logger = structlog.get_logger(__name__)


class SocketLog:
    """Binds `request_id` (from the handshake's X-Request-ID, as for HTTP) and `user_id` for the socket's life."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        user, ticket = scope.get("user"), scope.get("ticket")
        # A ticket's user is checked by the consumer before `socket_connected`; refused, it is logged as the ticket's.
        user_id = ticket.user_id if ticket else (user.pk if user is not None and user.is_authenticated else None)
        request_id = request_id_from(dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1"))
        accepted = False
        close: dict = {}  # the first close: its code, and who sent it

        async def send_logged(message):
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                logger.info("socket_connected", path=scope["path"])
            elif message["type"] == "websocket.close" and not close:
                close.update(code=message.get("code", 1000), by="server")
            await send(message)

        async def receive_logged():
            message = await receive()
            if message["type"] == "websocket.disconnect" and not close:
                close.update(code=message.get("code"), by="client")
            return message

        with structlog.contextvars.bound_contextvars(request_id=request_id, user_id=user_id):
            try:
                await self.app(scope, receive_logged, send_logged)
            finally:
                if accepted:
                    # With no close seen (code null) the server stopped the application: a shutdown's cancellation.
                    logger.info("socket_closed", code=close.get("code"), closed_by=close.get("by", "server"))
