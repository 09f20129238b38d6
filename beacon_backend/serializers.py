"""Records as the JSON the protocol speaks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, User

from beacon_backend.models import Alert, ChatMessage, LocationUpdate


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def user_dict(user: User | AbstractBaseUser) -> dict[str, Any]:
    assert isinstance(user, User)
    return {
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_staff": user.is_staff,
    }


def alert_dict(alert: Alert) -> dict[str, Any]:
    return {
        "id": str(alert.id),
        "user": alert.user_id,
        "alert_type": alert.alert_type,
        "status": alert.status,
        "priority": alert.priority,
        "latitude": float(alert.latitude),
        "longitude": float(alert.longitude),
        "location_accuracy": alert.location_accuracy,
        "provider": alert.provider,
        "battery_level": alert.battery_level,
        "description": alert.description,
        "is_silent": alert.is_silent,
        "device_info": alert.device_info,
        "network_info": alert.network_info,
        "assigned_operator": alert.assigned_operator_id,
        "notes": alert.notes,
        "created_at": iso(alert.created_at),
        "updated_at": iso(alert.updated_at),
        "acknowledged_at": iso(alert.acknowledged_at),
        "resolved_at": iso(alert.resolved_at),
        "is_active": alert.is_active,
        "client_msg_id": alert.client_msg_id,
    }


def location_dict(location: LocationUpdate) -> dict[str, Any]:
    return {
        "id": location.pk,
        "latitude": float(location.latitude),
        "longitude": float(location.longitude),
        "accuracy": location.accuracy,
        "altitude": location.altitude,
        "speed": location.speed,
        "heading": location.heading,
        "provider": location.provider,
        "battery_level": location.battery_level,
        "timestamp": location.client_timestamp or None,
        "client_msg_id": location.client_msg_id,
        "via": location.via,
        "created_at": iso(location.created_at),
    }


def chat_dict(chat: ChatMessage) -> dict[str, Any]:
    return {
        "id": chat.pk,
        "message": chat.message,
        "sender": chat.sender.get_username(),
        "sender_id": chat.sender_id,
        "is_staff": chat.is_staff,
        "timestamp": iso(chat.created_at),
        "client_msg_id": chat.client_msg_id,
    }
