"""The HTTP API: auth, alerts and their locations, chat history, health.

Every endpoint speaks JSON. Errors are ``{"success": false, "code", "error"}`` with a fitting
status; a malformed body is a 400, never a 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import User
from django.core.paginator import EmptyPage, Paginator
from django.db import IntegrityError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from beacon_backend import services, streams, tokens
from beacon_backend.auth import bearer, identify
from beacon_backend.errors import Refused, bad_field, forbidden
from beacon_backend.models import Alert
from beacon_backend.serializers import alert_dict, chat_dict, location_dict, user_dict
from beacon_backend.validation import json_object, text

PAGE_SIZE = 50
DIGITS = re.compile(r"[0-9]+")
View = TypeVar("View", bound=Callable[..., HttpResponse])


def refusal(refused: Refused) -> JsonResponse:
    return JsonResponse({"success": False, "code": refused.code, "error": refused.message},
                        status=refused.http_status)


def body(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        return json_object(json.loads(request.body))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise Refused("invalid_json", "the request body is not valid JSON (or nested too deeply)") from None


def api(method: str) -> Callable[[View], View]:
    """A JSON endpoint for one HTTP method: CSRF-exempt; refusals and wrong methods become JSON."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method != method:
                response = JsonResponse({"success": False, "code": "method_not_allowed",
                                         "error": f"use {method}"}, status=405)
                response["Allow"] = method
                return response
            try:
                return view(request, *args, **kwargs)
            except Refused as refused:
                return refusal(refused)

        return wrapper  # type: ignore[return-value]

    return decorate


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return JsonResponse({"success": False, "code": "not_found", "error": "no such endpoint"},
                        status=404)


def signed_in(request: HttpRequest) -> User:
    identity = identify(bearer(request.headers.get("Authorization")))
    if identity.user is None:
        raise Refused("unauthenticated", identity.error or "not signed in", 401)
    return identity.user


# -- auth ----------------------------------------------------------------------------------------

@api("POST")
def login(request: HttpRequest) -> HttpResponse:
    data = body(request)
    username = text(data, "username", max_len=150, required=True)
    password = text(data, "password", max_len=4096, required=True)
    user = User.objects.filter(username=username, is_active=True).first()
    # check_password without a setter: never re-hash (and slow down) fleet users on login.
    if user is None or not check_password(password, user.password):
        return JsonResponse({"success": False, "error": "Invalid credentials"}, status=401)
    return JsonResponse({"success": True, "tokens": tokens.issue_pair(user.pk),
                         "user": user_dict(user)})


@api("POST")
def refresh(request: HttpRequest) -> HttpResponse:
    data = body(request)
    token = text(data, "refresh", max_len=4096, required=True)
    try:
        claims = tokens.verify(token, "refresh")
    except tokens.TokenRejected as rejected:
        return JsonResponse({"success": False, "code": "token_not_valid", "error": rejected.reason},
                            status=401)
    if not User.objects.filter(pk=claims.user_id, is_active=True).exists():
        return JsonResponse({"success": False, "code": "token_not_valid",
                             "error": "unknown or inactive user"}, status=401)
    return JsonResponse(tokens.issue_pair(claims.user_id))


@api("POST")
def register(request: HttpRequest) -> HttpResponse:
    data = body(request)
    username = text(data, "username", max_len=150, required=True).strip()
    password = text(data, "password", max_len=4096, required=True)
    password2 = text(data, "password2", max_len=4096, required=True)
    email = text(data, "email", max_len=254)
    if not username:
        raise bad_field("username", "is empty")
    if len(password) < 8:
        raise bad_field("password", "must be at least 8 characters")
    if password != password2:
        raise bad_field("password2", "does not match password")
    try:
        user = User.objects.create_user(username=username, password=password, email=email)
    except IntegrityError:
        raise Refused("username_taken", f"username {username!r} is taken", 400) from None
    return JsonResponse({"success": True, "user": user_dict(user)}, status=201)


# -- alerts --------------------------------------------------------------------------------------

def _published(outcome: services.Outcome, status: int = 200) -> JsonResponse:
    # A repeat republishes what the first request stored: a listener that lost it gets it now.
    events = streams.stored_events(outcome.reply.get("seqs", {})) if outcome.repeated else outcome.events
    streams.publish_sync(events)
    return JsonResponse({"success": True, "repeated": outcome.repeated, **outcome.reply},
                        status=status)


@api("POST")
def create_alert(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    return _published(services.create_alert(user, body(request)), status=201)


def _page(request: HttpRequest, query: QuerySet[Any], render: Callable[[Any], dict[str, Any]]
          ) -> JsonResponse:
    raw = request.GET.get("page", "1")
    if not DIGITS.fullmatch(raw) or int(raw) < 1:
        raise bad_field("page", "must be a positive integer")
    paginator = Paginator(query, PAGE_SIZE)
    number = int(raw)
    try:
        page = paginator.page(number)
    except EmptyPage:
        page = None
    results = [render(item) for item in page.object_list] if page else []
    return JsonResponse({
        "count": paginator.count,
        "next": _page_link(request, number + 1) if page and page.has_next() else None,
        "previous": _page_link(request, number - 1) if number > 1 else None,
        "results": results,
    })


def _page_link(request: HttpRequest, number: int) -> str:
    """The same query (filters kept) at another page."""
    query = request.GET.copy()
    query["page"] = str(number)
    return f"{request.path}?{query.urlencode()}"


@api("GET")
def list_alerts(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    query = Alert.objects.all() if user.is_staff else Alert.objects.filter(user=user)
    status = request.GET.get("status")
    if status:
        query = query.filter(status=status)
    return _page(request, query.order_by("-created_at", "id"), alert_dict)


def _visible_alert(user: User, alert_id: str) -> Alert:
    alert = services.find_alert(alert_id)
    if not services.may_view(user, alert):
        raise forbidden("not a party to this alert")
    return alert


@api("GET")
def alert_detail(request: HttpRequest, alert_id: str) -> HttpResponse:
    user = signed_in(request)
    alert = _visible_alert(user, alert_id)
    history = [location_dict(loc) for loc in alert.locations.all()]
    # status_history: an extension of this backend (every status the alert entered, in order), so
    # a fleet can tell a status that was stored and then left from one that never arrived.
    return JsonResponse({**alert_dict(alert), "location_history": history,
                         "status_history": streams.status_history(alert.id)})


@api("GET")
def alert_locations(request: HttpRequest, alert_id: str) -> HttpResponse:
    user = signed_in(request)
    alert = _visible_alert(user, alert_id)
    return _page(request, alert.locations.all(), location_dict)


@api("GET")
def alert_messages(request: HttpRequest, alert_id: str) -> HttpResponse:
    user = signed_in(request)
    alert = _visible_alert(user, alert_id)
    return _page(request, alert.chat_messages.select_related("sender"), chat_dict)


@api("POST")
def post_location(request: HttpRequest, alert_id: str) -> HttpResponse:
    user = signed_in(request)
    return _published(services.add_location(user, alert_id, body(request), "http"))


def status_view(target: str) -> Callable[..., HttpResponse]:
    @api("POST")
    def view(request: HttpRequest, alert_id: str) -> HttpResponse:
        user = signed_in(request)
        return _published(services.change_status(user, alert_id, target, body(request)))

    view.__name__ = f"set_{target}"
    return view


@api("GET")
def health(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})
