from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from notifications.selectors import last_seq
from orders.models import Order
from orders.selectors import order_of_customer, orders_of_customer
from orders.services import CancelRefused, order_cancel_by_customer, order_cancellable_by_customer
from support.selectors import conversation_page


@login_required
def order_list(request):
    """My orders, newest first."""
    # Read before the orders: the socket resumes after this seq, so a change that
    # commits while the page renders is replayed rather than missed.
    live_last_seq = last_seq(user_id=request.user.pk)
    orders = Paginator(orders_of_customer(customer=request.user), 20).get_page(request.GET.get("page"))
    return render(request, "orders/order_list.html", {"orders": orders, "live_last_seq": live_last_seq})


@login_required
def order_detail(request, number):
    """One of my orders with its items and status timeline; anyone else's is a 404."""
    live_last_seq = last_seq(user_id=request.user.pk)  # before the order: see order_list
    try:
        order = order_of_customer(customer=request.user, number=number)
    except Order.DoesNotExist:
        raise Http404("No such order.") from None
    context = {
        "order": order,
        "live_last_seq": live_last_seq,
        "cancellable": order_cancellable_by_customer(order),
        "conversation": conversation_page(order_id=order.pk, staff_view=False, limit=settings.CHAT_MAX_BACKLOG),
    }
    return render(request, "orders/order_detail.html", context)


@login_required
@require_POST
def order_cancel(request, number):
    """The customer cancels one of their orders that awaits payment; anyone else's is a 404."""
    try:
        order = order_of_customer(customer=request.user, number=number)
    except Order.DoesNotExist:
        raise Http404("No such order.") from None
    try:
        order_cancel_by_customer(customer=request.user, order=order)
    except CancelRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, f"Order {order.number} is cancelled. Nothing will be charged.")
    return redirect(order)
