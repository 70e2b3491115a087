"""Kinds of notification belong to the apps that own them: notifications/ delivers any kind registered, names none."""

import ast
import json
import logging
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from notifications.groups import user_group
from notifications.kinds import NotificationKind, UnknownNotificationKind, notification_kind, notification_kind_register
from notifications.models import Notification, NotificationCounter
from notifications.services import notification_record, notifications_publish_pending
from orders.notifications import ORDER_STATUS_CHANGED
from tests.factories import StaffFactory
from tests.notifications.support_replies import SUPPORT_REPLY, notification_record_support_reply
from tests.notifications.test_consumer import frames_until_quiet, make_user, open_socket

ROOT = Path(__file__).resolve().parents[2]
NOTIFICATIONS = ROOT / "notifications"


def imported_modules(source: str) -> set[str]:
    """Every absolute module a piece of code imports, wherever the import is (a function, an `if TYPE_CHECKING`)."""
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules.add(node.module)
    return modules


def is_orders(module: str) -> bool:
    return module == "orders" or module.startswith("orders.")


# --- notifications/ names no app that owns a kind ------------------------------------------


def test_the_import_walk_sees_every_form_of_importing_orders():
    source = (
        "import orders\nimport orders.models as m\nfrom orders import signals\n"
        "def later():\n    from orders.transitions import order_transition\n"
        "import ordersheet\nfrom . import orders\n"
    )
    assert sorted(filter(is_orders, imported_modules(source))) == ["orders", "orders.models", "orders.transitions"]


def test_no_module_under_notifications_imports_orders():
    files = sorted(NOTIFICATIONS.rglob("*.py"))
    assert len(files) > 20, "the walk found the package's modules and migrations"

    importing_orders = {
        str(path.relative_to(ROOT)): sorted(filter(is_orders, imported_modules(path.read_text()))) for path in files
    }

    assert {path: modules for path, modules in importing_orders.items() if modules} == {}


# Django set up without the orders app (nor shop, whose catalog and cart use orders, nor support, whose conversations
# are about orders), then every module of
# notifications/ imported: what orders modules are loaded then came from notifications/ (or what it imports).
WITHOUT_ORDERS = """
import importlib, json, pkgutil, sys
from django.conf import settings
settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app not in ("orders", "shop", "support")]
import django
django.setup()
import notifications
modules = [module.name for module in pkgutil.walk_packages(notifications.__path__, "notifications.")]
for module in modules:
    importlib.import_module(module)
orders = sorted(name for name in sys.modules if name.split(".")[0] == "orders")
print(json.dumps({"imported": modules, "orders": orders}))
"""


def test_every_notifications_module_loads_in_a_django_without_the_orders_app():
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_ORDERS], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr

    loaded = json.loads(result.stdout.strip().splitlines()[-1])

    assert {"notifications.services", "notifications.consumers", "notifications.kinds"} <= set(loaded["imported"])
    assert loaded["orders"] == []


# --- Registering a kind ------------------------------------------------------------------------


def test_the_orders_app_registers_its_status_kind_at_start_up():
    assert notification_kind("order.status_changed") is ORDER_STATUS_CHANGED


def test_registering_a_kind_again_is_harmless_and_another_kind_under_its_name_is_refused():
    assert notification_kind_register(SUPPORT_REPLY) is SUPPORT_REPLY

    with pytest.raises(ValueError, match="'tests.support_reply' is already registered"):
        notification_kind_register(NotificationKind(name=SUPPORT_REPLY.name))

    assert notification_kind(SUPPORT_REPLY.name) is SUPPORT_REPLY


@pytest.mark.parametrize("name", ["", "tests." + "x" * 45])
def test_a_kind_whose_name_the_notification_row_cannot_hold_is_refused(name):
    with pytest.raises(ValueError, match="1 to 50 characters"):
        notification_kind_register(NotificationKind(name=name))

    with pytest.raises(UnknownNotificationKind):
        notification_kind(name)


@pytest.mark.django_db
def test_recording_a_kind_no_app_registered_is_refused_before_anything_is_written(
    customer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        with pytest.raises(UnknownNotificationKind, match=r"'tests.never_registered' \(registered: .*order\.status_"):
            notification_record(recipient_id=customer.pk, kind="tests.never_registered", payload={"title": "?"})

    assert callbacks == []
    assert not Notification.objects.exists()
    assert not NotificationCounter.objects.exists()  # no seq was taken either


# --- A kind of a test app's own, through the whole service -------------------------------------


def record_support_reply(**kwargs) -> Notification:
    with transaction.atomic():
        return notification_record_support_reply(**kwargs)


@pytest.mark.django_db(transaction=True)
async def test_a_kind_registered_by_its_own_app_is_delivered_fanned_out_and_resumed_like_any_other():
    customer, bystander, staff = await make_user(), await make_user(), await sync_to_async(StaffFactory)()
    customer_socket, _ = await open_socket(customer)
    bystander_socket, _ = await open_socket(bystander)
    staff_socket, _ = await open_socket(staff)

    notification = await sync_to_async(record_support_reply)(
        customer_id=customer.pk, reply="Your parcel left our warehouse today.", actor=staff
    )

    created_at = notification.created_at.isoformat(timespec="microseconds")
    delivered = {
        "type": "notification",
        "seq": 1,
        "kind": "tests.support_reply",
        "created_at": created_at,
        "title": "Support answered you",
        "body": "Your parcel left our warehouse today.",
        "url": "/support/",
        "unread": 1,
        "unread_version": 1,
    }
    assert await frames_until_quiet(customer_socket) == [delivered]
    # The kind's own fan-out, forwarded by the consumer as it was built: no handler of its own there.
    assert await frames_until_quiet(staff_socket) == [
        {"type": "support_answered", "customer_id": customer.pk, "created_at": created_at}
    ]
    assert await bystander_socket.receive_nothing(timeout=0.5)
    assert await sync_to_async(lambda: Notification.objects.get(pk=notification.pk).published_at)() is not None

    replaying_socket, hello = await open_socket(customer, query="?after=0")
    assert (hello["last_seq"], hello["unread"]) == (1, 1)
    assert await frames_until_quiet(replaying_socket) == [delivered]

    await customer_socket.send_json_to({"type": "mark_read", "seq": 1})
    for socket in (customer_socket, replaying_socket):
        assert await socket.receive_json_from(timeout=5) == {
            "type": "unread",
            "unread": 0,
            "unread_version": 2,
            "read_seqs": [1],
        }
    for socket in (customer_socket, bystander_socket, staff_socket, replaying_socket):
        await socket.disconnect()


@pytest.mark.django_db
def test_a_stored_row_of_a_kind_this_process_does_not_know_is_left_for_one_that_does_with_no_attempt_counted(
    listen, customer, caplog, django_capture_on_commit_callbacks
):
    """As in a rolling deploy, when a newer version's kind reaches an older sweeper: it sends the rest, and the
    rows of that kind wait, unharmed, for a process that knows it."""
    newer_kind = f"tests.newer_{uuid.uuid4().hex[:8]}"  # unknown kinds are logged once per process: a new name
    with django_capture_on_commit_callbacks(execute=False):  # their publish never ran: the process died
        newer = [record_support_reply(customer_id=customer.pk, reply=f"From a newer version {i}.") for i in (1, 2)]
        record_support_reply(customer_id=customer.pk, reply="Still a kind we have.")
    Notification.objects.filter(pk__in=[notification.pk for notification in newer]).update(kind=newer_kind)
    listener = listen(user_group(customer.pk))

    with caplog.at_level(logging.WARNING, logger="notifications.services"):
        assert notifications_publish_pending(older_than=timedelta(0)) == 1
        assert notifications_publish_pending(older_than=timedelta(0)) == 0

    assert listener.receive()["frame"]["seq"] == 3
    assert listener.receive_nothing()
    left = Notification.objects.filter(kind=newer_kind).values_list(
        "published_at", "publish_attempts", "publish_error", "quarantined_at"
    )
    assert list(left) == [(None, 0, "", None)] * 2
    warnings = [record.getMessage() for record in caplog.records if newer_kind in record.getMessage()]
    assert len(warnings) == 1 and "does not know" in warnings[0]

    # The newer version's process knows the kind: its sweep publishes them.
    notification_kind_register(NotificationKind(name=newer_kind))
    assert notifications_publish_pending(older_than=timedelta(0)) == 2
    assert [listener.receive()["frame"]["seq"] for _ in newer] == [1, 2]
