from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("", views.notification_list, name="list"),
    path("read/", views.notification_mark_read, name="mark_read"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("preferences/", views.notification_preferences, name="preferences"),
    path("push/subscription/", views.push_subscription, name="push_subscription"),
]
