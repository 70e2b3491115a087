"""The shop's URLs, plus two views that fail on purpose, so the tests reach the 403 and 500 pages by real requests."""

from django.core.exceptions import PermissionDenied
from django.urls import path

from shop.urls import urlpatterns as shop_urlpatterns


def forbidden(request):
    raise PermissionDenied("internal reason the page must not show")


def broken(request):
    raise RuntimeError("internal detail the page must not show")


urlpatterns = [path("forbidden/", forbidden), path("broken/", broken), *shop_urlpatterns]
