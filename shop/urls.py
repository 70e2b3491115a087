from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

from notifications.views import service_worker
from shop import views

storefront = [
    path("", views.home, name="home"),
    path("products/<slug:slug>/", views.product_detail, name="product"),
    path("products/<slug:slug>/add/", views.cart_add, name="cart_add"),
    path("cart/", views.cart_detail, name="cart"),
    path("cart/<slug:slug>/", views.cart_update, name="cart_update"),
    path("checkout/", views.checkout, name="checkout"),
]

urlpatterns = [
    path("", include((storefront, "shop"))),
    path("accounts/", include("accounts.urls")),
    path("orders/", include("orders.urls")),
    path("notifications/", include("notifications.urls")),
    # At the root, so the service worker may control every page of the site.
    path("sw.js", service_worker, name="service_worker"),
    path("admin/", admin.site.urls),
]

if settings.SERVE_MEDIA:
    # Product images, for a shop with nothing in front of it; nginx serves them in the deployment (SERVE_MEDIA off).
    media_prefix = settings.MEDIA_URL.strip("/")
    urlpatterns.append(re_path(rf"^{media_prefix}/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}))
