"""The notification centre page and its plain-form mark-read fallback."""

import pytest
from django.urls import reverse

from orders.models import OrderStatus
from tests.factories import place_order

pytestmark = pytest.mark.django_db


def test_centre_lists_my_notifications_newest_first_with_unread_marked(customer_client, customer, other_customer):
    order = place_order(customer=customer, status=OrderStatus.SHIPPED)
    place_order(customer=other_customer, status=OrderStatus.PAID)
    customer.notifications.filter(seq=1).update(read_at="2026-01-01T00:00Z")

    response = customer_client.get(reverse("notifications:list"))

    shown = list(response.context["notifications"])
    assert [n.seq for n in shown] == [3, 2, 1]
    assert {n.recipient_id for n in shown} == {customer.pk}
    content = response.content.decode()
    assert f"Order {order.number} has shipped" in content
    assert content.count('class="notification unread"') == 2


def test_centre_requires_login(client):
    response = client.get(reverse("notifications:list"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_mark_one_read_by_form(customer_client, customer):
    place_order(customer=customer, status=OrderStatus.PROCESSING)
    response = customer_client.post(reverse("notifications:mark_read"), {"seq": 2})
    assert response.status_code == 302
    assert list(customer.notifications.filter(read_at=None).values_list("seq", flat=True)) == [1]


def test_mark_all_read_by_form(customer_client, customer):
    place_order(customer=customer, status=OrderStatus.PROCESSING)
    customer_client.post(reverse("notifications:mark_read"))
    assert not customer.notifications.filter(read_at=None).exists()


@pytest.mark.parametrize("seq", ["abc", "-1", "0"])
def test_mark_read_with_a_bad_seq_changes_nothing(customer_client, customer, seq):
    place_order(customer=customer, status=OrderStatus.PAID)
    customer_client.post(reverse("notifications:mark_read"), {"seq": seq})
    assert customer.notifications.filter(read_at=None).count() == 1


def test_marking_read_never_touches_another_customers_notifications(customer_client, other_customer):
    place_order(customer=other_customer, status=OrderStatus.PAID)
    customer_client.post(reverse("notifications:mark_read"), {"seq": 1})
    customer_client.post(reverse("notifications:mark_read"))
    assert other_customer.notifications.get().read_at is None


def test_every_page_carries_the_live_client_and_the_users_last_seq(customer_client, customer):
    place_order(customer=customer, status=OrderStatus.PROCESSING)
    content = customer_client.get(reverse("shop:home")).content.decode()
    assert '<meta name="live-last-seq" content="2">' in content
    assert "js/live.js" in content
    assert 'id="unread-badge"' in content


def test_anonymous_pages_do_not_open_a_socket(client):
    content = client.get(reverse("shop:home")).content.decode()
    assert "live.js" not in content


def test_admin_pages_carry_the_live_client_for_staff(staff_client):
    content = staff_client.get(reverse("admin:orders_order_changelist")).content.decode()
    assert "js/live.js" in content
    assert "css/admin-live.css" in content
