from django.apps import AppConfig

from shop.internals import internals_check


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Catalog"

    def ready(self):
        """Refuse to run on other versions of the packages whose internals we use (shop/internals.py)."""
        internals_check()
