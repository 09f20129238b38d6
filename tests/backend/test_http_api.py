"""The HTTP API end to end through Django's test client: auth, alerts, the status machine, lists."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from typing import Any, NamedTuple

import httpx
import jwt
import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from beacon_backend import tokens
from beacon_backend.asgi import application
from beacon_backend.hashers import FleetPasswordHasher
from beacon_backend.models import Alert, ChatMessage, ClientMessage, LocationUpdate, StreamEvent
from tests.backend.fixtures import access_token, communicator, make_user

LOGIN = "/api/auth/login/"
REFRESH = "/api/token/refresh/"
REGISTER = "/api/auth/register/"
CREATE = "/api/auth/panic/create/"
ALERTS = "/api/auth/alerts/"
SPOT = {"latitude": 52.52, "longitude": 13.405, "accuracy": 12.5}
PASSWORD = "correct-horse-9"


def alert_url(alert_id: str, action: str = "") -> str:
    return f"{ALERTS}{alert_id}/" + (f"{action}/" if action else "")


class Party(NamedTuple):
    user: User
    token: str


class People(NamedTuple):
    alice: Party
    bob: Party
    op: Party


def party(username: str, staff: bool = False) -> Party:
    """A user whose password is stored with the cheap fleet hasher (PBKDF2 would slow every test)."""
    encoded = FleetPasswordHasher().encode(PASSWORD, "testsalt")
    user = User.objects.create(username=username, password=encoded, is_staff=staff)
    return Party(user, access_token(user))


@pytest.fixture
def http() -> Client:
    return Client()


@pytest.fixture
def people(db: None) -> People:
    return People(party("alice"), party("bob"), party("op", staff=True))


def auth(token: str | None) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}


def post(http: Client, path: str, data: Any = None, token: str | None = None,
         raw: str | bytes | None = None) -> Any:
    payload = raw if raw is not None else ("" if data is None else json.dumps(data))
    return http.post(path, data=payload, content_type="application/json", **auth(token))


def get(http: Client, path: str, token: str | None = None) -> Any:
    return http.get(path, **auth(token))


def create(http: Client, token: str, **extra: Any) -> dict[str, Any]:
    response = post(http, CREATE, {**SPOT, **extra}, token)
    assert response.status_code == 201, response.content
    return dict(response.json())


def refused(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    data = dict(response.json())
    assert data["success"] is False
    assert data["code"] == code
    return data


# -- auth ----------------------------------------------------------------------------------------

def test_login_returns_tokens_and_the_user(http: Client, people: People) -> None:
    response = post(http, LOGIN, {"username": "op", "password": PASSWORD})
    assert response.status_code == 200
    data = response.json()
    assert data["success"] is True
    assert set(data["tokens"]) == {"access", "refresh"}
    assert data["user"] == {"id": people.op.user.pk, "username": "op", "email": "", "first_name": "",
                            "last_name": "", "is_staff": True}
    access = jwt.decode(data["tokens"]["access"], settings.SECRET_KEY, algorithms=["HS256"])
    refresh = jwt.decode(data["tokens"]["refresh"], settings.SECRET_KEY, algorithms=["HS256"])
    assert access["token_type"] == "access" and refresh["token_type"] == "refresh"
    assert access["user_id"] == refresh["user_id"] == people.op.user.pk
    assert access["exp"] - access["iat"] == settings.BEACON_ACCESS_TTL == 3600
    assert refresh["exp"] - refresh["iat"] == settings.BEACON_REFRESH_TTL
    assert abs(access["iat"] - time.time()) < 60
    assert access["jti"] and access["jti"] != refresh["jti"]


@pytest.mark.parametrize(("username", "password"), [("alice", "wrong-password"), ("nobody", PASSWORD),
                                                     ("bob", PASSWORD)])
def test_login_refuses_bad_credentials_with_401(http: Client, people: People, username: str,
                                                password: str) -> None:
    User.objects.filter(pk=people.bob.user.pk).update(is_active=False)
    response = post(http, LOGIN, {"username": username, "password": password})
    assert response.status_code == 401
    data = response.json()
    assert data["success"] is False and data["error"] and "tokens" not in data


def test_refresh_returns_a_new_working_pair(http: Client, people: People) -> None:
    old = post(http, LOGIN, {"username": "alice", "password": PASSWORD}).json()["tokens"]
    response = post(http, REFRESH, {"refresh": old["refresh"]})
    assert response.status_code == 200
    pair = response.json()
    assert set(pair) >= {"access", "refresh"}
    new_refresh = tokens.verify(pair["refresh"], "refresh")
    assert new_refresh.jti != tokens.verify(old["refresh"], "refresh").jti
    assert tokens.verify(pair["access"], "access").user_id == people.alice.user.pk
    assert get(http, ALERTS, pair["access"]).status_code == 200


@pytest.mark.parametrize("kind", ["access", "garbage", "expired", "empty", "deleted user"])
def test_refresh_refuses_anything_but_a_live_refresh_token(http: Client, people: People,
                                                           kind: str) -> None:
    uid = people.alice.user.pk
    token = {
        "access": tokens.issue(uid, "access"),
        "garbage": "not.a.token",
        "expired": tokens.issue(uid, "refresh", now=time.time() - settings.BEACON_REFRESH_TTL - 60),
        "empty": "",
        "deleted user": tokens.issue(people.bob.user.pk, "refresh"),
    }[kind]
    people.bob.user.delete()
    response = post(http, REFRESH, {"refresh": token})
    assert response.status_code == 401
    assert response.json()["success"] is False and response.json()["code"] == "token_not_valid"
    assert "access" not in response.json()


def test_register_creates_a_user_who_can_then_log_in(http: Client, db: None) -> None:
    response = post(http, REGISTER, {"username": "carol", "password": "s3cret-pass",
                                     "password2": "s3cret-pass", "email": "c@example.org"})
    assert response.status_code == 201
    data = response.json()
    assert data["success"] is True and "tokens" not in data
    assert data["user"]["username"] == "carol" and data["user"]["is_staff"] is False
    assert User.objects.get(username="carol").email == "c@example.org"
    login = post(http, LOGIN, {"username": "carol", "password": "s3cret-pass"})
    assert login.status_code == 200 and login.json()["user"]["id"] == data["user"]["id"]


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"username": "carol", "password": "s3cret-pass", "password2": "s3cret-pazz"}, "invalid_field",
     "password2"),
    ({"username": "carol", "password": "short", "password2": "short"}, "invalid_field", "password"),
    ({"username": "alice", "password": "s3cret-pass", "password2": "s3cret-pass"}, "username_taken",
     "alice"),
    ({"username": "   ", "password": "s3cret-pass", "password2": "s3cret-pass"}, "invalid_field",
     "username"),
    ({"password": "s3cret-pass", "password2": "s3cret-pass"}, "invalid_field", "username"),
])
def test_register_refuses_bad_input_with_400(http: Client, people: People, body: dict[str, Any],
                                             code: str, field: str) -> None:
    users = User.objects.count()
    data = refused(post(http, REGISTER, body), 400, code)
    assert field in data["error"]
    assert User.objects.count() == users


# -- creating alerts -----------------------------------------------------------------------------

def test_create_returns_201_with_the_alert_and_defaults(http: Client, people: People) -> None:
    data = create(http, people.alice.token)
    assert data["success"] is True and data["repeated"] is False
    alert = data["alert"]
    assert (alert["id"], alert["user"]) == (data["alert_id"], people.alice.user.pk)
    assert (alert["alert_type"], alert["priority"]) == ("panic_button", 4)
    assert alert["status"] == "active" and alert["is_active"] is True
    assert (alert["latitude"], alert["longitude"], alert["location_accuracy"]) == (52.52, 13.405, 12.5)
    row = Alert.objects.get(pk=data["alert_id"])
    assert (row.user_id, row.priority, row.alert_type) == (people.alice.user.pk, 4, "panic_button")


def test_create_keeps_the_optional_fields(http: Client, people: People) -> None:
    alert = create(http, people.alice.token, alert_type="medical", priority=2, description="help",
                   is_silent=True, device_info={"model": "X"}, provider="gps",
                   battery_level=40)["alert"]
    assert (alert["alert_type"], alert["priority"], alert["description"]) == ("medical", 2, "help")
    assert alert["is_silent"] is True and alert["device_info"] == {"model": "X"}
    assert (alert["provider"], alert["battery_level"]) == ("gps", 40.0)


@pytest.mark.parametrize(("body", "field"), [
    ({"longitude": 13.4}, "latitude"),
    ({"latitude": 52.5}, "longitude"),
    ({"latitude": "north", "longitude": 13.4}, "latitude"),
    ({"latitude": 91, "longitude": 13.4}, "latitude"),
    ({"latitude": 52.5, "longitude": -180.5}, "longitude"),
    ({"latitude": True, "longitude": 13.4}, "latitude"),
    ({"latitude": [1], "longitude": 13.4}, "latitude"),
    ({"latitude": 52.5, "longitude": 13.4, "priority": 9}, "priority"),
    ({"latitude": 52.5, "longitude": 13.4, "is_silent": "yes"}, "is_silent"),
])
def test_create_refuses_bad_coordinates_and_fields(http: Client, people: People,
                                                   body: dict[str, Any], field: str) -> None:
    data = refused(post(http, CREATE, body, people.alice.token), 400, "invalid_field")
    assert data["error"].startswith(f"{field}:")
    assert Alert.objects.count() == 0


def test_create_with_a_huge_integer_coordinate_is_a_400_not_a_500(people: People) -> None:
    client = Client(raise_request_exception=False)
    body = '{"latitude": 1' + "0" * 400 + ', "longitude": 13.4}'
    data = refused(post(client, CREATE, raw=body, token=people.alice.token), 400, "invalid_field")
    assert data["error"].startswith("latitude:")
    assert Alert.objects.count() == 0


def test_create_rounds_coordinates_to_seven_places(http: Client, people: People) -> None:
    data = create(http, people.alice.token, latitude=12.34567891, longitude=-100.12345675)
    row = Alert.objects.get(pk=data["alert_id"])
    assert row.latitude == Decimal("12.3456789")
    assert row.longitude == Decimal("-100.1234568")  # half-even on the decimal the client sent
    assert (data["alert"]["latitude"], data["alert"]["longitude"]) == (12.3456789, -100.1234568)


def test_create_is_idempotent_per_client_msg_id(http: Client, people: People) -> None:
    first = create(http, people.alice.token, client_msg_id="phone-a:1")
    again = create(http, people.alice.token, client_msg_id="phone-a:1")
    assert again["repeated"] is True and first["repeated"] is False
    assert again["alert_id"] == first["alert_id"] and again["alert"] == first["alert"]
    assert Alert.objects.count() == 1
    assert ClientMessage.objects.filter(client_msg_id="phone-a:1").count() == 1
    # The id is scoped to its sender: another phone with the same id gets its own alert.
    other = create(http, people.bob.token, client_msg_id="phone-a:1")
    assert other["repeated"] is False and other["alert_id"] != first["alert_id"]
    assert Alert.objects.count() == 2
    # Reused for another kind of message: refused, nothing stored.
    response = post(http, alert_url(first["alert_id"], "location"),
                    {**SPOT, "client_msg_id": "phone-a:1"}, people.alice.token)
    refused(response, 409, "client_msg_id_reused")
    assert LocationUpdate.objects.count() == 0


# -- locations -----------------------------------------------------------------------------------

def test_http_location_appends_a_record(http: Client, people: People) -> None:
    alert_id = create(http, people.alice.token)["alert_id"]
    response = post(http, alert_url(alert_id, "location"),
                    {"latitude": 52.6, "longitude": 13.5, "accuracy": 4, "provider": "gps",
                     "battery_level": 55}, people.alice.token)
    assert response.status_code == 200
    assert response.json()["success"] is True and response.json()["repeated"] is False
    row = LocationUpdate.objects.get(alert_id=alert_id)
    assert row.pk == response.json()["location_id"]
    assert (row.via, row.latitude, row.accuracy, row.provider) == ("http", Decimal("52.6"), 4.0, "gps")
    # Over HTTP the accuracy is required.
    response = post(http, alert_url(alert_id, "location"), {"latitude": 1, "longitude": 2},
                    people.alice.token)
    assert refused(response, 400, "invalid_field")["error"].startswith("accuracy:")
    assert LocationUpdate.objects.count() == 1


def test_http_location_is_idempotent(http: Client, people: People) -> None:
    alert_id = create(http, people.alice.token)["alert_id"]
    body = {**SPOT, "client_msg_id": "a:7"}
    first = post(http, alert_url(alert_id, "location"), body, people.alice.token).json()
    again = post(http, alert_url(alert_id, "location"), body, people.alice.token).json()
    assert again["repeated"] is True and again["location_id"] == first["location_id"]
    assert LocationUpdate.objects.count() == 1


def test_http_location_only_from_the_owner_and_only_while_open(http: Client, people: People) -> None:
    alert_id = create(http, people.alice.token)["alert_id"]
    for token in (people.bob.token, people.op.token):
        refused(post(http, alert_url(alert_id, "location"), SPOT, token), 403, "forbidden")
    assert post(http, alert_url(alert_id, "cancel"), {}, people.alice.token).status_code == 200
    refused(post(http, alert_url(alert_id, "location"), SPOT, people.alice.token), 409, "alert_closed")
    assert LocationUpdate.objects.count() == 0


# -- the status machine --------------------------------------------------------------------------

OPEN = ("active", "acknowledged", "responding")
CLOSED = ("resolved", "canceled", "false_alarm")
ACTIONS = {"acknowledge": "acknowledged", "respond": "responding", "resolve": "resolved",
           "false-alarm": "false_alarm", "cancel": "canceled"}
# PROTOCOL: active -> acknowledged -> (responding) -> resolved; false_alarm (staff) and cancel (owner)
# from any open status; closed alerts never reopen.
LEGAL = [("active", "acknowledge"), ("active", "respond"), ("acknowledged", "respond"),
         ("acknowledged", "resolve"), ("responding", "resolve")] + [
    (start, action) for start in OPEN for action in ("false-alarm", "cancel")]
ILLEGAL = [("acknowledged", "acknowledge"), ("responding", "acknowledge"), ("responding", "respond"),
           ("active", "resolve")] + [(start, action) for start in CLOSED for action in ACTIONS]


def actor(people: People, action: str) -> str:
    return people.alice.token if action == "cancel" else people.op.token


def alert_in(people: People, status: str) -> Alert:
    return Alert.objects.create(user=people.alice.user, latitude=1, longitude=2, status=status)


@pytest.mark.parametrize(("start", "action"), LEGAL)
def test_legal_transitions(http: Client, people: People, start: str, action: str) -> None:
    alert = alert_in(people, start)
    response = post(http, alert_url(str(alert.id), action), {"notes": "done"}, actor(people, action))
    assert response.status_code == 200, response.content
    assert response.json()["alert"]["status"] == ACTIONS[action]
    alert.refresh_from_db()
    assert alert.status == ACTIONS[action]
    if action == "acknowledge":
        assert alert.assigned_operator_id == people.op.user.pk and alert.acknowledged_at is not None
    if action in ("resolve", "false-alarm"):
        assert alert.resolved_at is not None and alert.notes == "done"


def test_detail_lists_every_status_entered_in_order(http: Client, people: People) -> None:
    alert_id = create(http, people.alice.token)["alert_id"]
    assert get(http, alert_url(alert_id), people.op.token).json()["status_history"] == []
    for action in ("acknowledge", "respond", "resolve"):
        assert post(http, alert_url(alert_id, action), {}, people.op.token).status_code == 200
    refused(post(http, alert_url(alert_id, "cancel"), {}, people.alice.token), 409, "invalid_transition")
    history = get(http, alert_url(alert_id), people.alice.token).json()["status_history"]
    assert [entry["status"] for entry in history] == ["acknowledged", "responding", "resolved"]
    assert [entry["seq"] for entry in history] == sorted(entry["seq"] for entry in history)
    assert all(entry["at"] for entry in history)


@pytest.mark.parametrize(("start", "action"), ILLEGAL)
def test_illegal_transitions_are_409_and_change_nothing(http: Client, people: People, start: str,
                                                        action: str) -> None:
    alert = alert_in(people, start)
    before = Alert.objects.filter(pk=alert.pk).values().get()
    response = post(http, alert_url(str(alert.id), action), {}, actor(people, action))
    refused(response, 409, "invalid_transition")
    assert Alert.objects.filter(pk=alert.pk).values().get() == before
    assert StreamEvent.objects.count() == 0


@pytest.mark.parametrize("action", ["acknowledge", "respond", "resolve", "false-alarm"])
def test_staff_actions_are_refused_to_phones_even_the_owner(http: Client, people: People,
                                                            action: str) -> None:
    alert = alert_in(people, "active")
    for token in (people.alice.token, people.bob.token):
        refused(post(http, alert_url(str(alert.id), action), {}, token), 403, "forbidden")
    alert.refresh_from_db()
    assert alert.status == "active" and StreamEvent.objects.count() == 0


def test_cancel_is_for_the_owner_only(http: Client, people: People) -> None:
    alert = alert_in(people, "active")
    for token in (people.bob.token, people.op.token):
        refused(post(http, alert_url(str(alert.id), "cancel"), {}, token), 403, "forbidden")
    alert.refresh_from_db()
    assert alert.status == "active"
    assert post(http, alert_url(str(alert.id), "cancel"), {}, people.alice.token).status_code == 200
    assert Alert.objects.get(pk=alert.pk).status == "canceled"


def test_cancel_is_idempotent_per_client_msg_id(http: Client, people: People) -> None:
    alert_id = create(http, people.alice.token)["alert_id"]
    body = {"client_msg_id": "a:cancel"}
    first = post(http, alert_url(alert_id, "cancel"), body, people.alice.token)
    again = post(http, alert_url(alert_id, "cancel"), body, people.alice.token)
    assert first.status_code == again.status_code == 200
    assert again.json()["repeated"] is True and again.json()["alert"] == first.json()["alert"]
    assert ClientMessage.objects.filter(client_msg_id="a:cancel").count() == 1
    # Without the id, a second cancel is an illegal transition.
    refused(post(http, alert_url(alert_id, "cancel"), {}, people.alice.token), 409, "invalid_transition")


# -- reading -------------------------------------------------------------------------------------

def bulk_alerts(owner: User, count: int, status: str = "active") -> None:
    Alert.objects.bulk_create(Alert(user=owner, latitude=1, longitude=2, status=status)
                              for _ in range(count))


def test_list_is_paginated_and_scoped(http: Client, people: People) -> None:
    bulk_alerts(people.alice.user, 52)
    bulk_alerts(people.bob.user, 3)
    page1 = get(http, ALERTS, people.alice.token).json()
    assert (page1["count"], len(page1["results"]), page1["previous"]) == (52, 50, None)
    assert page1["next"] == f"{ALERTS}?page=2"
    page2 = get(http, page1["next"], people.alice.token).json()
    assert (len(page2["results"]), page2["next"], page2["previous"]) == (2, None, f"{ALERTS}?page=1")
    ids = [a["id"] for a in page1["results"] + page2["results"]]
    assert len(set(ids)) == 52
    assert {a["user"] for a in page1["results"] + page2["results"]} == {people.alice.user.pk}
    bob = get(http, ALERTS, people.bob.token).json()
    assert bob["count"] == 3 and bob["next"] is None
    staff = get(http, ALERTS, people.op.token).json()
    assert staff["count"] == 55 and len(staff["results"]) == 50


def test_list_filters_by_status_on_every_page(http: Client, people: People) -> None:
    bulk_alerts(people.alice.user, 51)
    bulk_alerts(people.alice.user, 5, status="resolved")
    first = get(http, f"{ALERTS}?status=active", people.alice.token).json()
    assert first["count"] == 51 and first["next"] is not None
    second = get(http, first["next"], people.alice.token).json()
    assert second["count"] == 51
    assert [a["status"] for a in second["results"]] == ["active"]


@pytest.mark.parametrize("page", ["0", "-1", "two", "1.5", "²"])
def test_list_refuses_a_bad_page(people: People, page: str) -> None:
    client = Client(raise_request_exception=False)
    data = refused(get(client, f"{ALERTS}?page={page}", people.alice.token), 400, "invalid_field")
    assert data["error"].startswith("page:")


def test_detail_locations_and_messages(http: Client, people: People) -> None:
    alert_id = create(http, people.alice.token)["alert_id"]
    for lat in (1.5, 2.5):
        post(http, alert_url(alert_id, "location"), {**SPOT, "latitude": lat}, people.alice.token)
    ChatMessage.objects.create(alert_id=alert_id, sender=people.op.user, message="on our way",
                               is_staff=True)
    for token in (people.alice.token, people.op.token):
        detail = get(http, alert_url(alert_id), token)
        assert detail.status_code == 200
        assert detail.json()["id"] == alert_id
        assert [loc["latitude"] for loc in detail.json()["location_history"]] == [1.5, 2.5]
        locations = get(http, alert_url(alert_id, "locations"), token).json()
        assert locations["count"] == 2 and [loc["via"] for loc in locations["results"]] == ["http"] * 2
        messages = get(http, alert_url(alert_id, "messages"), token).json()
        assert messages["count"] == 1
        assert messages["results"][0]["message"] == "on our way"
        assert messages["results"][0]["sender"] == "op" and messages["results"][0]["is_staff"] is True


@pytest.mark.parametrize("suffix", ["", "locations", "messages"])
def test_reading_someone_elses_or_an_unknown_alert(http: Client, people: People, suffix: str) -> None:
    alert_id = create(http, people.alice.token)["alert_id"]
    refused(get(http, alert_url(alert_id, suffix), people.bob.token), 403, "forbidden")
    refused(get(http, alert_url(str(uuid.uuid4()), suffix), people.alice.token), 404, "not_found")


# -- auth and malformed requests -----------------------------------------------------------------

@pytest.mark.parametrize("header", ["", "Bearer", "Bearer garbage", "Token abc", "expired", "refresh",
                                    "deleted user"])
def test_missing_or_bad_bearer_is_401(http: Client, people: People, header: str) -> None:
    uid = people.alice.user.pk
    if header == "expired":
        header = "Bearer " + tokens.issue(uid, "access", now=time.time() - 7200)
    elif header == "refresh":
        header = "Bearer " + tokens.issue(uid, "refresh")
    elif header == "deleted user":
        header = "Bearer " + people.bob.token
        people.bob.user.delete()
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    refused(http.get(ALERTS, **extra), 401, "unauthenticated")
    refused(http.post(CREATE, data=json.dumps(SPOT), content_type="application/json", **extra),
            401, "unauthenticated")
    assert Alert.objects.count() == 0


@pytest.mark.parametrize(("raw", "code"), [
    ("{not json", "invalid_json"), (b"\xff\xfe{", "invalid_json"), ("[1, 2]", "invalid_message"),
    ('"text"', "invalid_message"), ("null", "invalid_message"),
])
def test_malformed_bodies_are_400(http: Client, people: People, raw: str | bytes, code: str) -> None:
    refused(post(http, CREATE, raw=raw, token=people.alice.token), 400, code)
    refused(post(http, LOGIN, raw=raw), 400, code)
    assert Alert.objects.count() == 0


def test_wrong_methods_are_405_and_health_is_200(http: Client, people: People) -> None:
    assert get(http, CREATE, people.alice.token).status_code == 405
    assert get(http, LOGIN).status_code == 405
    assert post(http, ALERTS, {}, people.alice.token).status_code == 405
    health = http.get("/api/health/")
    assert health.status_code == 200 and health.json() == {"status": "ok"}


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("get", LOGIN, "POST"), ("get", REFRESH, "POST"), ("put", REGISTER, "POST"),
    ("get", CREATE, "POST"), ("post", ALERTS, "GET"), ("delete", ALERTS, "GET"),
    ("post", "/api/health/", "GET"), ("post", alert_url("{alert}"), "GET"),
    ("get", alert_url("{alert}", "cancel"), "POST"), ("get", alert_url("{alert}", "location"), "POST"),
    ("post", alert_url("{alert}", "messages"), "GET"), ("patch", alert_url("{alert}", "resolve"), "POST"),
])
def test_a_wrong_method_is_a_json_405_with_an_allow_header(http: Client, people: People, method: str,
                                                           path: str, allowed: str) -> None:
    alert = alert_in(people, "active")
    before = Alert.objects.filter(pk=alert.pk).values().get()
    response = getattr(http, method)(path.format(alert=alert.id), **auth(people.op.token))
    data = refused(response, 405, "method_not_allowed")
    assert response["Content-Type"] == "application/json"
    assert response["Allow"] == allowed
    assert isinstance(data["error"], str) and data["error"]
    assert Alert.objects.filter(pk=alert.pk).values().get() == before


@pytest.mark.parametrize("path", ["/api/no-such-page/", "/", "/api/auth/", "/api/auth/alerts/x/y/z/",
                                  "/api/health", "/ws/user/1/", "/admin/"])
def test_an_unknown_path_is_a_json_404(http: Client, people: People, path: str) -> None:
    for response in (get(http, path, people.alice.token), post(http, path, {}, people.alice.token)):
        data = refused(response, 404, "not_found")
        assert response["Content-Type"] == "application/json"
        assert isinstance(data["error"], str) and data["error"]


# -- deeply nested JSON, NUL and lone surrogates ----------------------------------------------------

DEEP = {"open-arrays": "[" * 20000, "open-objects": '{"a":' * 4000,
        "closed-arrays": "[" * 10000 + "]" * 10000}


@pytest.mark.parametrize("raw", list(DEEP.values()), ids=list(DEEP))
def test_deeply_nested_json_is_a_400_not_a_500(people: People, raw: str) -> None:
    client = Client(raise_request_exception=False)
    assert len(raw.encode()) >= 20000
    refused(post(client, CREATE, raw=raw, token=people.alice.token), 400, "invalid_json")
    refused(post(client, LOGIN, raw=raw), 400, "invalid_json")
    assert Alert.objects.count() == 0


@pytest.mark.parametrize("bad", ["a\x00b", "\x00", "\ud800", "x\udfffy", "\udc00\ud800"])
def test_nul_and_lone_surrogates_in_text_fields_are_400(people: People, bad: str) -> None:
    """JSON carries both as escapes (json.dumps writes \\u0000 and \\ud800); neither can be stored
    faithfully, so both are refused and nothing is stored."""
    client = Client(raise_request_exception=False)
    response = post(client, CREATE, {"latitude": 1, "longitude": 2, "description": bad}, people.alice.token)
    assert refused(response, 400, "invalid_field")["error"].startswith("description:")
    alert_id = create(client, people.alice.token)["alert_id"]
    response = post(client, alert_url(alert_id, "location"),
                    {"latitude": 1, "longitude": 2, "accuracy": 3, "provider": bad}, people.alice.token)
    assert refused(response, 400, "invalid_field")["error"].startswith("provider:")
    response = post(client, alert_url(alert_id, "false-alarm"), {"notes": bad}, people.op.token)
    assert refused(response, 400, "invalid_field")["error"].startswith("notes:")
    response = post(client, REGISTER, {"username": f"u{bad}", "password": "s3cret-pass",
                                       "password2": "s3cret-pass"})
    assert refused(response, 400, "invalid_field")["error"].startswith("username:")
    assert Alert.objects.count() == 1 and LocationUpdate.objects.count() == 0
    assert Alert.objects.get().status == "active"
    assert User.objects.count() == 3
    assert StreamEvent.objects.count() == 1  # the one good alert's new_alert


@pytest.mark.parametrize("bad", ["a\x00b", "\ud800"])
def test_nul_and_lone_surrogates_in_ids_and_timestamps_are_400(people: People, bad: str) -> None:
    client = Client(raise_request_exception=False)
    response = post(client, CREATE, {**SPOT, "client_msg_id": bad}, people.alice.token)
    refused(response, 400, "invalid_field")
    response = post(client, CREATE, {**SPOT, "device_info": {"model": bad}}, people.alice.token)
    refused(response, 400, "invalid_field")
    assert Alert.objects.count() == 0
    alert_id = create(client, people.alice.token)["alert_id"]
    response = post(client, alert_url(alert_id, "location"), {**SPOT, "timestamp": bad}, people.alice.token)
    refused(response, 400, "invalid_field")


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": "x"}
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.mark.parametrize("field", ["device_info", "network_info"])
def test_json_fields_are_checked_all_the_way_down(people: People, field: str) -> None:
    """Objects stored as JSON: every key and string inside is storable, and nesting is bounded."""
    client = Client(raise_request_exception=False)
    for bad in ({"\x00": 1}, {"k": ["ok", "\ud800"]}, nested(30)):
        response = post(client, CREATE, {**SPOT, field: bad}, people.alice.token)
        assert refused(response, 400, "invalid_field")["error"].startswith(f"{field}:")
    assert Alert.objects.count() == 0
    create(client, people.alice.token, **{field: nested(5)})
    assert getattr(Alert.objects.get(), field) == nested(5)


# -- broadcasts from HTTP ------------------------------------------------------------------------

async def test_http_create_reaches_the_operator_console(db: None) -> None:
    op = await database_sync_to_async(make_user)("op", staff=True)
    phone = await database_sync_to_async(make_user)("alice")
    console = communicator("/ws/alerts/", access_token(op))
    assert (await console.connect())[0]
    snapshot = await console.receive_json_from(timeout=5)
    assert (snapshot["type"], snapshot["count"]) == ("active_alerts", 0)
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post(CREATE, json=SPOT,
                                     headers={"Authorization": f"Bearer {access_token(phone)}"})
    assert response.status_code == 201
    event = await console.receive_json_from(timeout=5)
    assert event["type"] == "new_alert" and event["seq"] == 1
    assert event["alert"]["id"] == response.json()["alert_id"]
    assert event["alert"]["user"] == phone.pk
    await console.disconnect()


async def test_http_acknowledge_reaches_the_console_and_the_phone(db: None) -> None:
    op = await database_sync_to_async(make_user)("op", staff=True)
    phone = await database_sync_to_async(make_user)("alice")
    alert = await database_sync_to_async(Alert.objects.create)(user=phone, latitude=1, longitude=2)
    console = communicator("/ws/alerts/", access_token(op))
    user_channel = communicator(f"/ws/user/{phone.pk}/", access_token(phone))
    assert (await console.connect())[0] and (await user_channel.connect())[0]
    assert (await console.receive_json_from(timeout=5))["count"] == 1
    response = await sync_to_async(post)(Client(), alert_url(str(alert.id), "acknowledge"), {},
                                         access_token(op))
    assert response.status_code == 200
    event = await console.receive_json_from(timeout=5)
    assert event["type"] == "alert_acknowledged" and event["operator"]["id"] == op.pk
    assert event["alert"]["status"] == "acknowledged"
    update = await user_channel.receive_json_from(timeout=5)
    assert update["type"] == "alert_status_update" and update["alert"]["id"] == str(alert.id)
    await console.disconnect()
    await user_channel.disconnect()


async def test_an_http_repeat_republishes_what_a_lost_broadcast_never_delivered(
        db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from beacon_backend import streams

    op = await database_sync_to_async(make_user)("op", staff=True)
    phone = await database_sync_to_async(make_user)("alice")
    console = communicator("/ws/alerts/", access_token(op))
    assert (await console.connect())[0]
    assert (await console.receive_json_from(timeout=5))["type"] == "active_alerts"
    headers = {"Authorization": f"Bearer {access_token(phone)}"}
    body = {**SPOT, "client_msg_id": "alice:1"}
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        publish = streams.publish_sync
        monkeypatch.setattr(streams, "publish_sync", lambda events: None)  # the broadcast is lost
        first = await client.post(CREATE, json=body, headers=headers)
        assert await console.receive_nothing(timeout=0.3)
        monkeypatch.setattr(streams, "publish_sync", publish)
        again = await client.post(CREATE, json=body, headers=headers)
    assert again.json()["repeated"] is True and again.json()["alert_id"] == first.json()["alert_id"]
    event = await console.receive_json_from(timeout=5)
    assert (event["type"], event["seq"], event["alert"]["id"]) == ("new_alert", 1, first.json()["alert_id"])
    await console.disconnect()
