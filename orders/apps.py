from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders"

    def ready(self):
        from notifications.groups import STAFF_GROUP, audience_register
        from notifications.kinds import notification_kind_register
        from orders import signals  # noqa: F401  (connects the pre_save guard and the post_save handler)
        from orders.notifications import ORDER_STATUS_CHANGED, staff_member

        notification_kind_register(ORDER_STATUS_CHANGED)
        # Staff sockets hear every order's change (the kind's fan-out).
        audience_register(STAFF_GROUP, staff_member)
