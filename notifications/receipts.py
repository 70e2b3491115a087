"""Delivery receipts: a page that has shown a user's notifications says so (an `ack` frame, docs/protocol.md).

A web process gathers its sockets' acks and writes them together, one UPDATE per
RECEIPTS_WRITE_INTERVAL for all of them: an ack costs its socket a dict entry, not a
database call of its own (docs/performance.md, "Delivery receipts"). Acks gathered in a
process that dies before writing them are lost; those notifications fall back to the
offline channels as if no page had shown them.
"""

import asyncio
import logging
import weakref

from channels.db import database_sync_to_async
from django.db import connection
from django.utils import timezone

from notifications.metrics import notifications_delivered_count
from notifications.models import Notification

logger = logging.getLogger(__name__)

# How long an ack may wait to be written with the others: far below the offline channels' delays.
RECEIPTS_WRITE_INTERVAL = 0.2


def notifications_mark_delivered(*, up_to_seqs: dict[int, int]) -> int:
    """For each user id, record that their notifications up to its seq reached a page; returns how many.

    One UPDATE for all of them, idempotent: a notification delivered before keeps its first time.
    """
    if not up_to_seqs:
        return 0
    quote = connection.ops.quote_name
    meta = Notification._meta
    recipient, delivered_at = (quote(meta.get_field(name).column) for name in ("recipient", "delivered_at"))
    rows = ", ".join(["(%s::bigint, %s::bigint)"] * len(up_to_seqs))
    created_at = quote(meta.get_field("created_at").column)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(meta.db_table)} AS n SET {delivered_at} = %s"  # names are ours, quoted
            f" FROM (VALUES {rows}) AS acked (user_id, seq)"
            f" WHERE n.{recipient} = acked.user_id AND n.seq <= acked.seq AND n.{delivered_at} IS NULL"
            f" RETURNING n.{created_at}",
            [now, *(value for pair in up_to_seqs.items() for value in pair)],
        )
        created = [row[0] for row in cursor.fetchall()]
    notifications_delivered_count(created=created, delivered_at=now)
    return len(created)


class _Gathered:
    """This event loop's acks not yet written (user id -> highest seq), and the task that will write them."""

    def __init__(self):
        self.up_to_seqs: dict[int, int] = {}
        self.writer: asyncio.Task | None = None


_gathered: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Gathered]" = weakref.WeakKeyDictionary()


def receipt_gather(*, user_id: int, up_to_seq: int) -> None:
    """Take one socket's ack, to be written with this process's others within RECEIPTS_WRITE_INTERVAL."""
    loop = asyncio.get_running_loop()
    gathered = _gathered.get(loop)
    if gathered is None:
        gathered = _gathered[loop] = _Gathered()
    gathered.up_to_seqs[user_id] = max(up_to_seq, gathered.up_to_seqs.get(user_id, 0))
    if gathered.writer is None:
        gathered.writer = loop.create_task(_write_after(gathered))


async def receipts_written() -> None:
    """Wait until the acks this event loop has gathered so far are written."""
    gathered = _gathered.get(asyncio.get_running_loop())
    if gathered is not None and gathered.writer is not None:
        await asyncio.shield(gathered.writer)


async def _write_after(gathered: _Gathered) -> None:
    await asyncio.sleep(RECEIPTS_WRITE_INTERVAL)
    up_to_seqs, gathered.up_to_seqs, gathered.writer = gathered.up_to_seqs, {}, None
    try:
        await database_sync_to_async(notifications_mark_delivered)(up_to_seqs=up_to_seqs)
    except Exception:  # the database is down: these notifications fall back to the offline channels
        logger.exception("Recording %d delivery receipt(s) failed", len(up_to_seqs))
