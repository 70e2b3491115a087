from django.urls import path, register_converter

from orders import views
from orders.models import ORDER_NUMBER_PATTERN

app_name = "orders"


class OrderNumberConverter:
    """An order number in a URL: anything else (a NUL, a quote, a Unicode digit) is a 404 before any query."""

    regex = ORDER_NUMBER_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(OrderNumberConverter, "order_number")

urlpatterns = [
    path("", views.order_list, name="list"),
    path("<order_number:number>/", views.order_detail, name="detail"),
    path("<order_number:number>/cancel/", views.order_cancel, name="cancel"),
]
