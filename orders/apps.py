from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders"

    def ready(self):
        from notifications.kinds import notification_kind_register
        from orders import signals  # noqa: F401  (connects the post_save handler)
        from orders.notifications import ORDER_STATUS_CHANGED

        notification_kind_register(ORDER_STATUS_CHANGED)
