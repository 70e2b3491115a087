"""Changing the shop's data from the test process while a browser is open.

Publishing a notification calls `async_to_sync(group_send)`, which refuses to run in
a thread whose event loop is marked running, and Playwright's sync API marks its
loop running between calls. A change whose publish failed would still be stored
(and reach the page only on its next reconnect, or after the sweeper), so anything
that publishes runs in a thread of its own, as a server process would.
"""

from orders.transitions import order_transition
from tests.factories import place_order
from tests.live.servers import in_own_thread


def transition(order, to_status: str, **kwargs):
    """The order moves on, as a task or the payment provider would move it (actor: the system)."""
    return in_own_thread(order_transition, order_id=order.pk, to_status=to_status, **kwargs)


def place(**kwargs):
    """An order placed through checkout and moved to `status` (see tests.factories.place_order)."""
    return in_own_thread(place_order, **kwargs)
