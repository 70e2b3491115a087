"""Wires order changes to the notifications service."""

from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from orders.models import Order
from orders.notifications import notification_record_order_status_change
from orders.status_writes import order_save_refuse_status_write


@receiver(post_save, sender=Order, dispatch_uid="orders.notify_status_change")
def notify_status_change(sender, instance: Order, created: bool, raw: bool = False, **kwargs):
    """On a real status change, record the customer's notification (published after commit)."""
    if raw:
        return
    previous_status = instance.loaded_status
    # From now on this instance compares against what is stored: saving it again is not a change.
    instance._loaded_status = instance.status
    # The history entry order_transition wrote for this save (any other status save was refused in pre_save):
    # taken off the instance so it serves this change only (and the order and its event do not keep each other alive).
    event = instance.__dict__.pop("status_change_event", None)
    if created or instance.status == previous_status:
        return  # placement and saves that leave the status alone notify nobody
    notification_record_order_status_change(
        order=instance,
        previous_status=previous_status,
        actor=event.actor,
        # Only the message meant for the customer: the event's internal note stays in the history.
        customer_message=event.customer_message,
    )


@receiver(pre_save, sender=Order, dispatch_uid="orders.refuse_status_write")
def refuse_status_write(sender, instance: Order, raw: bool = False, **kwargs):
    """Refuse, before anything is written, a save that changes the status outside `order_transition`."""
    if not raw:  # loaddata restores fixtures as they are
        order_save_refuse_status_write(instance)
