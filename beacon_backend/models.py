"""What the backend stores: alerts, their locations and chat, the event streams, idempotency keys.

Every message a client originates may carry a ``client_msg_id``; :class:`ClientMessage` remembers
each one with the reply it earned, so a repeat is stored once and acknowledged again.
Every server->client broadcast is a :class:`StreamEvent` with a per-stream ``seq``: the history a
reconnecting client replays with ``?since=<seq>``.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models


class AlertStatus(models.TextChoices):
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    RESPONDING = "responding"
    RESOLVED = "resolved"
    CANCELED = "canceled"
    FALSE_ALARM = "false_alarm"


OPEN_STATUSES = (AlertStatus.ACTIVE, AlertStatus.ACKNOWLEDGED, AlertStatus.RESPONDING)


class Alert(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alerts")
    alert_type = models.CharField(max_length=32, default="panic_button")
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.ACTIVE)
    priority = models.PositiveSmallIntegerField(default=4)
    latitude = models.DecimalField(max_digits=10, decimal_places=7)
    longitude = models.DecimalField(max_digits=10, decimal_places=7)
    location_accuracy = models.FloatField(null=True, blank=True)
    provider = models.CharField(max_length=32, blank=True, default="")
    battery_level = models.FloatField(null=True, blank=True)
    description = models.TextField(blank=True, default="")
    is_silent = models.BooleanField(default=False)
    device_info = models.JSONField(default=dict, blank=True)
    network_info = models.JSONField(default=dict, blank=True)
    assigned_operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="assigned_alerts",
    )
    notes = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    client_msg_id = models.CharField(max_length=100, null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status"])]

    @property
    def is_active(self) -> bool:
        return self.status in OPEN_STATUSES


class LocationUpdate(models.Model):
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="locations")
    latitude = models.DecimalField(max_digits=10, decimal_places=7)
    longitude = models.DecimalField(max_digits=10, decimal_places=7)
    accuracy = models.FloatField(null=True, blank=True)
    altitude = models.FloatField(null=True, blank=True)
    speed = models.FloatField(null=True, blank=True)
    heading = models.FloatField(null=True, blank=True)
    provider = models.CharField(max_length=32, blank=True, default="")
    battery_level = models.FloatField(null=True, blank=True)
    client_timestamp = models.CharField(max_length=40, blank=True, default="")
    client_msg_id = models.CharField(max_length=100, null=True, blank=True)
    via = models.CharField(max_length=8, default="ws")  # "ws" or "http"
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]


class ChatMessage(models.Model):
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="chat_messages")
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    message = models.TextField()
    is_staff = models.BooleanField(default=False)
    client_msg_id = models.CharField(max_length=100, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]


class ClientMessage(models.Model):
    """One idempotency key per (sender, client_msg_id) and the reply it was given."""

    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    client_msg_id = models.CharField(max_length=100)
    kind = models.CharField(max_length=32)
    reply = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sender", "client_msg_id"], name="unique_client_msg")
        ]


class StreamHead(models.Model):
    """The last ``seq`` handed out on one stream; locked while the next one is taken."""

    stream = models.CharField(max_length=100, primary_key=True)
    last_seq = models.BigIntegerField(default=0)


class StreamEvent(models.Model):
    stream = models.CharField(max_length=100)
    seq = models.BigIntegerField()
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["stream", "seq"], name="unique_stream_seq")]

    def message(self) -> dict[str, Any]:
        return {**self.payload, "seq": self.seq}
