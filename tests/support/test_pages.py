"""The conversation as the pages render it before their socket opens: the order page and the admin change page.

static/js/pages/order-chat.js goes on from what they render (data-last-seq); its browser behaviour is in
tests/browser/test_support_chat.py.
"""

import re

import pytest
from django.utils.html import escape

from orders.models import OrderStatus
from support.selectors import conversation_page
from tests.factories import StaffFactory, place_order
from tests.orders.test_admin import change_url
from tests.support.conftest import post

pytestmark = pytest.mark.django_db

MARKUP = "<img src=x onerror=alert(1)><b>bold</b> & more"
NOTE = "INTERNAL-5c1e: refund already approved"


@pytest.fixture
def order(customer):
    return place_order(customer=customer, status=OrderStatus.SHIPPED)


@pytest.fixture
def staff_member(db):
    return StaffFactory(first_name="Anna")


def rendered_seqs(content: str) -> list[int]:
    return [int(seq) for seq in re.findall(r'<li class="chat-message[^"]*" data-seq="(\d+)"', content)]


def last_seq_attribute(content: str) -> int:
    return int(re.search(r'id="order-chat"[^>]* data-last-seq="(\d+)"', content).group(1))


def test_the_order_page_renders_the_conversation_as_text_without_the_notes(customer_client, customer, order):
    post(customer, order, MARKUP)
    staff = StaffFactory(first_name="Anna")
    post(staff, order, "It is on its way.")
    post(staff, order, NOTE, internal=True)
    content = customer_client.get(order.get_absolute_url()).content.decode()
    assert "Questions about this order?" in content
    assert rendered_seqs(content) == [1, 2]
    assert f'<p class="chat-body">{escape(MARKUP)}</p>' in content
    assert "<img src=x" not in content and "<b>bold</b>" not in content
    assert "INTERNAL-5c1e" not in content and "Internal note" not in content
    assert 'name="chat-internal"' not in content
    # The socket goes on after the last message the customer can see, not the note.
    assert last_seq_attribute(content) == 2
    assert 'data-staff="false"' in content


def test_the_admin_change_page_renders_the_conversation_with_its_notes_labelled(staff_client, customer, order):
    post(customer, order, MARKUP)
    post(StaffFactory(first_name="Anna"), order, NOTE, internal=True)
    content = staff_client.get(change_url(order)).content.decode()
    assert f'data-order-id="{order.pk}"' in content
    assert "Conversation with the customer" in content
    assert rendered_seqs(content) == [1, 2]
    assert f'<p class="chat-body">{escape(MARKUP)}</p>' in content
    assert "<img src=x" not in content
    assert re.search(r'<li class="chat-message from-staff own internal"[^>]*data-internal="true">\s*'
                     r'<p class="chat-label">Internal note</p>', content)  # fmt: skip
    assert NOTE in content
    assert 'name="chat-internal"' in content
    assert last_seq_attribute(content) == 2


def test_an_order_without_messages_invites_a_question_and_goes_on_from_seq_0(customer_client, order):
    content = customer_client.get(order.get_absolute_url()).content.decode()
    assert rendered_seqs(content) == []
    assert last_seq_attribute(content) == 0
    assert "No messages yet: ask us anything about this order" in content


def test_a_page_shows_the_newest_messages_in_order_in_one_query_and_says_older_ones_are_left_out(
    customer, order, django_assert_num_queries
):
    for number in range(5):
        post(customer, order, f"message {number}")
    with django_assert_num_queries(1):
        page = conversation_page(order_id=order.pk, staff_view=False, limit=3)
    assert [message.seq for message in page.messages] == [3, 4, 5]
    assert (page.last_seq, page.truncated) == (5, True)
    assert conversation_page(order_id=order.pk, staff_view=False, limit=5).truncated is False


def test_a_page_names_authors_as_the_frames_do(customer, order, staff_member):
    post(customer, order, "Hello")
    post(staff_member, order, "Hi")
    page = conversation_page(order_id=order.pk, staff_view=False, limit=10)
    assert [(m.author_name, m.from_staff) for m in page.messages] == [
        (customer.get_full_name(), False),
        ("Anna", True),
    ]
