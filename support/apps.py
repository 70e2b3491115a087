from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "support"
    verbose_name = "Support conversations"

    def ready(self):
        from notifications.kinds import notification_kind_register
        from support.notifications import CHAT_MESSAGE
        from support.socket import support_socket_register

        notification_kind_register(CHAT_MESSAGE)
        support_socket_register()
