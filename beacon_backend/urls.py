"""HTTP routes (every path ends in ``/``)."""

from __future__ import annotations

from django.urls import path

from beacon_backend import views

handler404 = "beacon_backend.views.not_found"

urlpatterns = [
    path("api/health/", views.health),
    path("api/auth/login/", views.login),
    path("api/auth/register/", views.register),
    path("api/token/refresh/", views.refresh),
    path("api/auth/panic/create/", views.create_alert),
    path("api/auth/alerts/", views.list_alerts),
    path("api/auth/alerts/<uuid:alert_id>/", views.alert_detail),
    path("api/auth/alerts/<uuid:alert_id>/locations/", views.alert_locations),
    path("api/auth/alerts/<uuid:alert_id>/messages/", views.alert_messages),
    path("api/auth/alerts/<uuid:alert_id>/location/", views.post_location),
    path("api/auth/alerts/<uuid:alert_id>/cancel/", views.status_view("canceled")),
    path("api/auth/alerts/<uuid:alert_id>/acknowledge/", views.status_view("acknowledged")),
    path("api/auth/alerts/<uuid:alert_id>/respond/", views.status_view("responding")),
    path("api/auth/alerts/<uuid:alert_id>/resolve/", views.status_view("resolved")),
    path("api/auth/alerts/<uuid:alert_id>/false-alarm/", views.status_view("false_alarm")),
]
