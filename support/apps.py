from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "support"
    verbose_name = "Support conversations"

    def ready(self):
        from support.socket import support_socket_register

        support_socket_register()
