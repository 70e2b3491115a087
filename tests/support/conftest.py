"""The support tests' helpers: chat over a real socket, and messages posted as another process would."""

import uuid

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from support.services import message_post
from tests.notifications.conftest import listen  # noqa: F401 (the fixture: real groups on the real layer)


@pytest.fixture(autouse=True)
def _chat_send_unlimited(settings):
    """Tests send in bursts; the limit itself has its own test."""
    settings.CHAT_SEND_RATE_LIMIT = "1000/second"


def send_frame(order_id, body="Where is my parcel?", client_id=None, **fields) -> dict:
    return {"type": "chat.send", "order": order_id, "body": body, "client_id": str(client_id or uuid.uuid4()), **fields}


def post(author, order, body="Hello", *, internal=False, client_id=None):
    """A message posted outside any socket (another web process, say), published on commit."""
    return message_post(
        author=author, order_id=order.pk, body=body, client_id=client_id or uuid.uuid4(), internal=internal
    ).message


def post_without_publishing(author, order, body="Lost", *, client_id=None):
    """A message that commits but whose publish never happens, as if its process died in between."""
    with transaction.atomic():
        message = post(author, order, body, client_id=client_id)
        transaction.get_connection().run_on_commit.clear()
    return message


apost = sync_to_async(post)
