"""`session_authenticates`: the consumer's re-check of its own session once it has joined its groups."""

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from accounts.selectors import session_authenticates
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def session_key_of(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def delete(key, user):
    Session.objects.filter(session_key=key).delete()


def expire(key, user):
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))


def change_password(key, user):
    user.set_password("a-brand-new-phrase")
    user.save()


def deactivate(key, user):
    user.is_active = False
    user.save()


def delete_user(key, user):
    user.delete()


@pytest.mark.parametrize("end", [delete, expire, change_password, deactivate, delete_user])
def test_a_session_that_ended_no_longer_authenticates(end):
    user = UserFactory()
    key = session_key_of(user)
    user_id = user.pk
    end(key, user)
    assert session_authenticates(session_key=key, user_id=user_id) is False


def test_a_live_session_authenticates_its_user_in_one_query(django_assert_num_queries):
    user = UserFactory()
    key = session_key_of(user)
    with django_assert_num_queries(1):
        assert session_authenticates(session_key=key, user_id=user.pk) is True


def test_a_session_does_not_authenticate_another_user():
    user, other = UserFactory(), UserFactory()
    assert session_authenticates(session_key=session_key_of(user), user_id=other.pk) is False
