from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        from accounts import login_limits, signals  # noqa: F401  (counts failed logins; closes sockets when a session ends)
