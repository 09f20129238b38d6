"""The five Beacon WebSocket routes: who may connect, which stream they follow, what they handle."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from beacon_backend import services, streams
from beacon_backend.consumers.base import BeaconSocket, Handler, alert_id_field
from beacon_backend.errors import bad_field, forbidden
from beacon_backend.models import Alert
from beacon_backend.serializers import alert_dict

MAX_USER_ID = 2**63 - 1  # a bigger id names no user (and would overflow a group name)


class UserChannel(BeaconSocket):
    """``/ws/user/{user_id}/``: the phone's own channel (status updates, operator messages)."""

    async def authorize(self) -> None:
        owner = int(self.scope["url_route"]["kwargs"]["user_id"])
        if owner > MAX_USER_ID or (owner != self.user.pk and not self.user.is_staff):
            raise forbidden("not your user channel")
        self.stream = streams.user_stream(owner)

    def handlers(self) -> dict[str, Handler]:
        return {"ping": self.ping}


class OperatorConsole(BeaconSocket):
    """``/ws/alerts/``: the operators' console; staff only."""

    async def authorize(self) -> None:
        if not self.user.is_staff:
            raise forbidden("operators only")
        self.stream = streams.CONSOLE

    async def snapshot(self) -> dict[str, Any]:
        alerts = await database_sync_to_async(services.active_alerts)()
        return {"type": "active_alerts", "alerts": alerts, "count": len(alerts)}

    def handlers(self) -> dict[str, Handler]:
        return {
            "ping": self.ping,
            "get_active_alerts": self.get_active_alerts,
            "acknowledge_alert": self.status_action("acknowledged", "Alert acknowledged"),
            "respond_alert": self.status_action("responding", "Alert marked responding"),
            "resolve_alert": self.status_action("resolved", "Alert resolved"),
            "false_alarm": self.status_action("false_alarm", "Alert closed as a false alarm"),
        }

    async def get_active_alerts(self, data: dict[str, Any]) -> None:
        await self.reply(await self.snapshot())

    def status_action(self, target: str, message: str) -> Handler:
        async def handle(data: dict[str, Any]) -> None:
            alert_id = alert_id_field(data)
            outcome = await database_sync_to_async(services.change_status)(
                self.user, alert_id, target, data)
            await self.confirm(data, outcome, message)
        return handle


class AlertChannel(BeaconSocket):
    """``/ws/alerts/{alert_id}/``: one alert's status, for its owner and operators."""

    alert: Alert

    async def authorize(self) -> None:
        self.alert = await self.load_alert()
        self.stream = streams.alert_stream(self.alert.id)

    async def snapshot(self) -> dict[str, Any]:
        alert = await database_sync_to_async(services.find_alert)(self.alert.id)
        return {"type": "alert_status", "alert": alert_dict(alert)}

    def handlers(self) -> dict[str, Handler]:
        return {"ping": self.ping, "get_status": self.get_status, "cancel_alert": self.cancel_alert}

    async def get_status(self, data: dict[str, Any]) -> None:
        await self.reply(await self.snapshot())

    async def cancel_alert(self, data: dict[str, Any]) -> None:
        outcome = await database_sync_to_async(services.change_status)(
            self.user, self.alert.id, "canceled", data)
        await self.confirm(data, outcome, "Alert canceled")


class LocationChannel(BeaconSocket):
    """``/ws/location/{alert_id}/``: the owner sends positions, operators listen."""

    alert: Alert

    async def authorize(self) -> None:
        self.alert = await self.load_alert()
        self.stream = streams.location_stream(self.alert.id)

    def follows_stream(self) -> bool:
        return bool(self.user.is_staff) and self.alert.user_id != self.user.pk

    async def snapshot(self) -> dict[str, Any] | None:
        location = await database_sync_to_async(services.last_location)(self.alert)
        if location is None:
            return None
        return {"type": "last_location", "alert_id": str(self.alert.id), "location": location}

    def handlers(self) -> dict[str, Handler]:
        return {"ping": self.ping, "location_update": self.location_update}

    async def location_update(self, data: dict[str, Any]) -> None:
        location = data.get("location")
        if not isinstance(location, dict):
            raise bad_field("location", "must be an object")
        # The idempotency key is the message's own (top level), never one inside the location.
        fields = {**location, "timestamp": data.get("timestamp", location.get("timestamp")),
                  "client_msg_id": data.get("client_msg_id")}
        outcome = await database_sync_to_async(services.add_location)(
            self.user, self.alert.id, fields, "ws")
        await self.confirm(data, outcome, "Location updated")


class ChatChannel(BeaconSocket):
    """``/ws/chat/{alert_id}/``: the conversation between the phone and the operators."""

    alert: Alert

    async def authorize(self) -> None:
        self.alert = await self.load_alert()
        self.stream = streams.chat_stream(self.alert.id)

    def handlers(self) -> dict[str, Handler]:
        return {"ping": self.ping, "chat_message": self.chat_message}

    async def chat_message(self, data: dict[str, Any]) -> None:
        outcome = await database_sync_to_async(services.send_chat)(self.user, self.alert.id, data)
        await self.confirm(data, outcome, "Message sent")
