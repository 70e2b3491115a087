"""The session store's `after_delete`: what logout's announcement of a session's end waits for."""

import pytest
from asgiref.sync import sync_to_async

from shop.sessions import SessionStore

pytestmark = pytest.mark.django_db(transaction=True)


def saved_session() -> SessionStore:
    session = SessionStore()
    session["cart"] = {"1": 2}
    session.save()
    return session


def test_flush_calls_back_with_the_key_once_the_row_is_gone():
    session, seen = saved_session(), []
    key = session.session_key
    session.after_delete(lambda deleted_key: seen.append((deleted_key, SessionStore().exists(deleted_key))))

    session.flush()

    assert seen == [(key, False)]


async def test_the_async_flush_calls_back_too_once_the_row_is_gone():
    session, seen = await sync_to_async(saved_session)(), []
    key = session.session_key
    session.after_delete(lambda deleted_key: seen.append((deleted_key, SessionStore().exists(deleted_key))))

    await session.aflush()

    assert seen == [(key, False)]


def test_cycling_the_key_does_not_count_as_the_sessions_end():
    session, seen = saved_session(), []
    session.after_delete(seen.append)

    session.cycle_key()

    assert seen == []
    assert SessionStore(session.session_key).load() == {"cart": {"1": 2}}
