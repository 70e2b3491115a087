"""The soak's verdict: memory and keys judged after the warm-up only, and any delivery fault fails it."""

import pytest

from bench.soak import deliveries_check, slope_per_10_minutes, verdict, warmup_minutes

SOCKETS = 100


def _sample(minute: float, rss_mb: float, keys: int = 110, socket_keys: int = SOCKETS) -> dict:
    return {"minute": minute, "rss_mb": rss_mb, "redis_used_memory_mb": 2.0, "redis_keys": keys,
            "redis_user_socket_keys": socket_keys, "client_open": SOCKETS, "ws_connections": SOCKETS}  # fmt: skip


def _result(samples: list[dict], **delivery) -> dict:
    exact = {"users": SOCKETS, "users_exact": SOCKETS, **delivery}
    return {"samples": samples, "delivery": exact, "foreign_frames": 0, "generators": {"resets": 0}}


def _judge(result: dict) -> dict:
    return verdict(result, SOCKETS, warmup=5, max_rss_growth=5.0, max_key_growth=0)


def test_the_warm_up_is_as_asked_but_at_most_a_third_of_the_run():
    assert warmup_minutes(asked=5, minutes=30) == 5
    assert warmup_minutes(asked=5, minutes=3) == 1


def test_the_slope_is_per_10_minutes_and_needs_two_distinct_minutes():
    assert slope_per_10_minutes([(0, 100.0), (1, 100.5), (2, 101.0)]) == pytest.approx(5.0)
    assert slope_per_10_minutes([(3, 100.0)]) is None


def test_memory_that_grows_only_during_the_warm_up_passes():
    samples = [_sample(m, 100 + 20 * m if m < 5 else 200 + 0.1 * m) for m in range(31)]
    outcome = _judge(_result(samples))
    assert outcome["passed"], outcome
    assert outcome["rss_mb_per_10_minutes"] == pytest.approx(1.0)


def test_memory_that_keeps_growing_after_the_warm_up_fails():
    outcome = _judge(_result([_sample(m, 100 + 0.6 * m) for m in range(31)]))
    assert outcome["checks"] == {"rss": False, "redis_keys": True, "delivery": True, "sockets": True}


def test_users_socket_keys_may_wobble_with_the_churn_but_other_keys_must_not_grow():
    wobbling = [_sample(m, 100, keys=105 + m % 3, socket_keys=95 + m % 3) for m in range(31)]
    assert _judge(_result(wobbling))["checks"]["redis_keys"]
    leaking = [_sample(m, 100, keys=110 + m, socket_keys=SOCKETS) for m in range(31)]
    assert not _judge(_result(leaking))["checks"]["redis_keys"]
    more_socket_keys_than_sockets = [_sample(m, 100, keys=120, socket_keys=SOCKETS + 1) for m in range(31)]
    assert not _judge(_result(more_socket_keys_than_sockets))["checks"]["redis_keys"]


def test_one_customer_short_of_an_exact_sequence_fails():
    outcome = _judge(_result([_sample(m, 100) for m in range(31)], users_exact=SOCKETS - 1))
    assert not outcome["passed"] and not outcome["checks"]["delivery"]


@pytest.mark.django_db
def test_deliveries_are_checked_against_the_notifications_stored_for_each_user():
    from notifications.models import Notification
    from tests.factories import UserFactory

    first, second = UserFactory(), UserFactory()
    stored = [
        Notification(recipient=user, seq=seq, kind="test", payload={}) for user in (first, second) for seq in (1, 2, 3)
    ]
    Notification.objects.bulk_create(stored)

    figures = deliveries_check({first.pk: [1, 2, 3], second.pk: [1, 3, 2, 3]}, [first.pk, second.pk])

    assert figures == {"users": 2, "users_exact": 1, "notifications": 6, "received": 7, "lost": 0, "duplicates": 1,
                       "out_of_order": 1, "unknown": 0}  # fmt: skip
