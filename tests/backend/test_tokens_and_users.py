"""Tokens and their secret, token redaction in logs, the fleet password hasher, bulk provisioning."""

from __future__ import annotations

import base64
import json
import logging
import logging.config
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import jwt
import pytest
from django.conf import settings
from django.contrib.auth.hashers import check_password, identify_hasher, make_password
from django.contrib.auth.models import User
from django.test import Client

from beacon_backend import config, tokens
from beacon_backend.auth import bearer, identify
from beacon_backend.hashers import FleetPasswordHasher
from beacon_backend.logs import RedactingFormatter, logging_config, redact
from beacon_backend.provision import provision, write_credentials
from tests.backend.fixtures import isolated_logging

FLEET_PREFIX = "beacon_fleet_sha256$"


# -- tokens --------------------------------------------------------------------------------------

def rejection(token: str, expected: tokens.TokenType) -> str:
    with pytest.raises(tokens.TokenRejected) as caught:
        tokens.verify(token, expected)
    reason = caught.value.reason
    assert token not in reason or not token
    return reason


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_verify_accepts_a_fresh_token() -> None:
    before = time.time()
    claims = tokens.verify(tokens.issue(42, "access"), "access")
    assert (claims.user_id, claims.token_type) == (42, "access")
    assert before + settings.BEACON_ACCESS_TTL - 2 <= claims.exp <= time.time() + settings.BEACON_ACCESS_TTL
    assert len(claims.jti) == 32
    assert tokens.verify(tokens.issue(42, "refresh"), "refresh").token_type == "refresh"


@pytest.mark.parametrize(("issued", "expected"), [("access", "refresh"), ("refresh", "access")])
def test_verify_rejects_the_wrong_type(issued: tokens.TokenType, expected: tokens.TokenType) -> None:
    reason = rejection(tokens.issue(42, issued), expected)
    assert reason.startswith("not a") and reason.endswith(f"{expected} token")


@pytest.mark.parametrize("kind", ["access", "refresh"])
def test_verify_rejects_an_expired_token(kind: tokens.TokenType) -> None:
    ttl = settings.BEACON_ACCESS_TTL if kind == "access" else settings.BEACON_REFRESH_TTL
    assert rejection(tokens.issue(42, kind, now=time.time() - ttl - 5), kind) == "token expired"


def test_verify_rejects_a_tampered_payload() -> None:
    header, payload, signature = tokens.issue(42, "access").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = b64(json.dumps({**claims, "user_id": 1}).encode())
    assert rejection(f"{header}.{forged}.{signature}", "access") == "token invalid"


def test_verify_rejects_a_tampered_signature() -> None:
    header, payload, signature = tokens.issue(42, "access").split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0xFF
    assert rejection(f"{header}.{payload}.{b64(bytes(raw))}", "access") == "token invalid"


def test_verify_rejects_other_keys_algorithms_and_shapes() -> None:
    now = int(time.time())
    good = {"token_type": "access", "exp": now + 60, "iat": now, "jti": "x", "user_id": 42}
    other_key = jwt.encode(good, "not-the-secret-key-but-long-enough-32b", algorithm="HS256")
    assert rejection(other_key, "access") == "token invalid"
    none_header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    unsigned = f"{none_header}.{b64(json.dumps(good).encode())}."
    assert rejection(unsigned, "access") == "token invalid"
    missing = {k: v for k, v in good.items() if k != "token_type"}
    assert rejection(jwt.encode(missing, settings.SECRET_KEY, algorithm="HS256"), "access") == "token invalid"
    string_id = jwt.encode({**good, "user_id": "42"}, settings.SECRET_KEY, algorithm="HS256")
    assert rejection(string_id, "access") == "token invalid"
    for garbage in ("", "abc", "a.b.c", "Bearer x"):
        assert rejection(garbage, "access") == "token invalid"


def test_identify_gives_a_reason_without_a_user() -> None:
    assert identify(None).error == "no token"
    assert identify(tokens.issue(42, "refresh")).user is None
    assert identify(tokens.issue(42, "refresh")).error == rejection(tokens.issue(42, "refresh"), "access")
    assert bearer("Bearer abc") == "abc" and bearer("bearer abc") == "abc"
    assert bearer("Basic abc") is None and bearer("Bearer ") is None and bearer(None) is None


# -- logs never contain tokens -------------------------------------------------------------------

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjo0Mn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.mark.parametrize("line", [
    f"GET /ws/user/42/?token={TOKEN}&since=3 HTTP/1.1",
    f"WebSocket /ws/alerts/?token={TOKEN}",
    f'{{"access": "{TOKEN}", "refresh": "{TOKEN}"}}',
    f'{{"token":"{TOKEN}"}}',
    f"Authorization: Bearer {TOKEN}",
    "?token=abc.def.ghi",
])
def test_redact_blanks_tokens(line: str) -> None:
    cleaned = redact(line)
    assert TOKEN not in cleaned and "abc.def.ghi" not in cleaned
    assert "[redacted]" in cleaned


def test_redact_keeps_the_rest_of_the_line() -> None:
    assert redact(f"GET /ws/user/42/?token={TOKEN}&since=3") == "GET /ws/user/42/?token=[redacted]&since=3"
    assert redact(f'{{"access": "{TOKEN}", "user": 7}}') == '{"access": "[redacted]", "user": 7}'
    assert redact(f"Bearer {TOKEN} then") == "Bearer [redacted] then"
    assert redact("nothing secret here") == "nothing secret here"


def test_redact_blanks_a_lowercase_bearer_scheme() -> None:
    # The backend accepts any case of the scheme (auth.bearer), so a logged header may be lowercase.
    assert TOKEN not in redact(f"authorization: bearer {TOKEN}")


def test_redact_blanks_a_python_repr_of_a_token_pair() -> None:
    # log.info("%s", tokens.issue_pair(...)) formats a dict with single quotes.
    assert TOKEN not in redact(str({"access": TOKEN, "refresh": TOKEN}))


def test_the_formatter_redacts_formatted_records() -> None:
    record = logging.LogRecord("beacon", logging.WARNING, __file__, 1, "refused %s for %s",
                               (f"Bearer {TOKEN}", f"/ws/alerts/?token={TOKEN}"), None)
    line = RedactingFormatter("%(levelname)s %(message)s").format(record)
    assert line == "WARNING refused Bearer [redacted] for /ws/alerts/?token=[redacted]"


def raised(message: str) -> tuple[type[BaseException], BaseException, TracebackType | None]:
    try:
        raise ValueError(message)
    except ValueError as error:
        return type(error), error, error.__traceback__


def test_the_formatter_redacts_an_exception_and_its_traceback() -> None:
    """A token in an exception's message (or anywhere in the traceback) is blanked too: the whole
    formatted record is redacted, not just the log message."""
    live = tokens.issue(42, "access")
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "request failed", (),
                               raised(f"bad token {live} in ?token={live}"))
    record.stack_info = f'File "x.py", line 1, in handler\n    check("{live}")'
    line = RedactingFormatter("%(name)s: %(message)s").format(record)
    assert line.startswith("django.request: request failed\nTraceback (most recent call last):")
    assert "ValueError: bad token [redacted] in ?token=[redacted]" in line
    assert live not in line and live.rsplit(".", 1)[1] not in line


@pytest.mark.parametrize("name", ["uvicorn", "uvicorn.error", "django", "django.request", "daphne",
                                  "beacon_backend.consumers.base", "somewhere.else"])
def test_logging_config_sends_every_server_logger_through_the_redacting_formatter(name: str) -> None:
    live = tokens.issue(7, "access")
    with isolated_logging() as captured:
        logging.config.dictConfig(logging_config())
        logger = logging.getLogger(name)
        try:
            raise RuntimeError(f"handshake with ?token={live} failed")
        except RuntimeError:
            logger.exception("refused %s", f"Bearer {live}")
        for handler in {h for n in (name, "") for h in logging.getLogger(n).handlers}:
            handler.flush()
    output = captured.getvalue()
    assert f"{name}: refused Bearer [redacted]" in output, output
    assert "RuntimeError: handshake with ?token=[redacted] failed" in output
    assert live not in output and live.rsplit(".", 1)[1] not in output
    assert output.count("refused Bearer") == 1, "the record must be printed once (no propagation twice)"


def test_logging_config_keeps_the_access_log_quiet_and_the_level_at_warning() -> None:
    settings_config = logging_config()
    assert settings_config["loggers"]["uvicorn.access"]["level"] == "CRITICAL"
    for name in ("django", "uvicorn", "daphne"):
        assert settings_config["loggers"][name]["handlers"] == ["console"]
    assert settings_config["handlers"]["console"]["formatter"] == "redacted"
    assert settings_config["formatters"]["redacted"]["()"] == "beacon_backend.logs.RedactingFormatter"
    assert settings_config == settings.LOGGING  # what Django applies at setup


# -- the token secret ----------------------------------------------------------------------------

def python(code: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BEACON_", "DJANGO_"))}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                          env={**clean, **env}, cwd=Path(__file__).resolve().parents[2])


def test_reading_the_secret_never_writes_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BEACON_SECRET_KEY", raising=False)
    empty = tmp_path / "empty"
    first = config.secret_key(empty)
    second = config.secret_key(empty, create=False)
    assert len(first) >= 32 and len(second) >= 32
    assert first != second  # a throwaway key each time: nothing was kept
    assert not empty.exists()
    empty.mkdir()
    config.secret_key(empty)
    assert list(empty.iterdir()) == []


def test_loading_the_settings_alone_writes_nothing(tmp_path: Path) -> None:
    """A type checker or an import of the settings (no configure()) must not create a secret."""
    data = tmp_path / "data"
    done = python("import importlib, beacon_backend.config as c, beacon_backend.settings as s; "
                  "importlib.reload(c); importlib.reload(s); print(len(s.SECRET_KEY))",
                  env={"BEACON_DATA_DIR": str(data)})
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 32
    assert not data.exists()
    data.mkdir()
    assert python("import beacon_backend.settings", env={"BEACON_DATA_DIR": str(data)}).returncode == 0
    assert list(data.iterdir()) == []


def test_configure_creates_the_secret_once_and_every_process_shares_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    show = ("import sys; from beacon_backend.deployment import configure; configure(sys.argv[1]); "
            "from django.conf import settings; print(settings.SECRET_KEY)")
    first = python(show, str(data), env={})
    assert first.returncode == 0, first.stderr
    secret = data / "secret_key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.read_text().strip() == first.stdout.strip()
    second = python(show, str(data), env={})
    assert second.stdout == first.stdout  # a second worker reads the same key
    settings_only = python("import beacon_backend.settings as s; print(s.SECRET_KEY)",
                           env={"BEACON_DATA_DIR": str(data)})
    assert settings_only.stdout == first.stdout  # and so does a bare settings import, once it exists


def test_an_explicit_secret_is_used_and_nothing_is_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    show = ("import sys; from beacon_backend.deployment import configure; configure(sys.argv[1]); "
            "from django.conf import settings; print(settings.SECRET_KEY)")
    done = python(show, str(data), env={"BEACON_SECRET_KEY": "explicit-secret-long-enough-for-hs256-0123"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "explicit-secret-long-enough-for-hs256-0123"
    assert not (data / "secret_key").exists()


# -- the fleet hasher ----------------------------------------------------------------------------

def test_fleet_hasher_verifies_only_the_right_password() -> None:
    hasher = FleetPasswordHasher()
    encoded = hasher.encode("open sesame", hasher.salt())
    assert encoded.startswith(FLEET_PREFIX)
    assert hasher.verify("open sesame", encoded) and not hasher.verify("open sesamE", encoded)
    assert check_password("open sesame", encoded) and not check_password("wrong", encoded)
    assert isinstance(identify_hasher(encoded), FleetPasswordHasher)
    assert hasher.encode("x", "salt1") != hasher.encode("x", "salt2")
    with pytest.raises(ValueError):
        hasher.encode("x", "a$b")
    assert "open sesame" not in str(hasher.safe_summary(encoded))


def test_the_default_hasher_is_pbkdf2() -> None:
    assert make_password("whatever-123").startswith("pbkdf2_sha256$")


def test_register_stores_pbkdf2(db: None) -> None:
    response = Client().post("/api/auth/register/", data={
        "username": "dora", "password": "long-enough-1", "password2": "long-enough-1"},
        content_type="application/json")
    assert response.status_code == 201
    assert User.objects.get(username="dora").password.startswith("pbkdf2_sha256$")


def test_login_does_not_rehash_a_fleet_password(db: None) -> None:
    entry = provision(1, 0, prefix="keep")["phones"][0]
    before = User.objects.get(pk=entry["id"]).password
    assert before.startswith(FLEET_PREFIX)
    response = Client().post("/api/auth/login/", data={
        "username": entry["username"], "password": entry["password"]}, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["user"]["id"] == entry["id"]
    assert User.objects.get(pk=entry["id"]).password == before


# -- provisioning --------------------------------------------------------------------------------

def logs_in(username: str, password: str) -> bool:
    response = Client().post("/api/auth/login/", data={"username": username, "password": password},
                             content_type="application/json")
    return bool(response.status_code == 200)


def test_provision_creates_phones_and_staff_operators(db: None) -> None:
    creds = provision(4, 2, prefix="t")
    assert set(creds) == {"phones", "operators"}
    assert [p["username"] for p in creds["phones"]] == [f"t-phone-0000{i}" for i in range(1, 5)]
    assert [o["username"] for o in creds["operators"]] == ["t-operator-001", "t-operator-002"]
    assert User.objects.count() == 6
    for entry in creds["phones"] + creds["operators"]:
        assert set(entry) == {"id", "username", "password"}
        user = User.objects.get(pk=entry["id"])
        assert user.username == entry["username"] and user.is_active
        assert user.is_staff == entry["username"].startswith("t-operator")
        assert user.password.startswith(FLEET_PREFIX)
        assert check_password(entry["password"], user.password)
    assert len({e["password"] for e in creds["phones"] + creds["operators"]}) == 6
    assert logs_in(creds["operators"][0]["username"], creds["operators"][0]["password"])


def test_provision_again_resets_passwords_without_duplicates(db: None) -> None:
    first = provision(3, 1, prefix="same")
    User.objects.filter(username="same-phone-00001").update(is_active=False, is_staff=True)
    second = provision(3, 1, prefix="same")
    assert User.objects.count() == 4
    assert [e["id"] for e in second["phones"]] == [e["id"] for e in first["phones"]]
    assert second["operators"][0]["id"] == first["operators"][0]["id"]
    for old, new in zip(first["phones"] + first["operators"], second["phones"] + second["operators"],
                        strict=True):
        assert old["password"] != new["password"]
        assert not logs_in(old["username"], old["password"])
        assert logs_in(new["username"], new["password"])
    reset = User.objects.get(username="same-phone-00001")
    assert reset.is_active and not reset.is_staff


def test_provision_more_with_the_same_prefix_adds_the_missing_ones(db: None) -> None:
    first = provision(2, 1, prefix="grow")
    second = provision(5, 1, prefix="grow")
    assert User.objects.count() == 6
    assert [e["id"] for e in second["phones"][:2]] == [e["id"] for e in first["phones"]]
    assert len({e["id"] for e in second["phones"]}) == 5


def test_provision_with_another_prefix_creates_new_users(db: None) -> None:
    first = provision(2, 1, prefix="one")
    second = provision(2, 1, prefix="two")
    assert User.objects.count() == 6
    first_ids = {e["id"] for e in first["phones"] + first["operators"]}
    assert first_ids.isdisjoint(e["id"] for e in second["phones"] + second["operators"])
    assert logs_in(first["phones"][0]["username"], first["phones"][0]["password"])


def test_provision_nothing(db: None) -> None:
    assert provision(0, 0) == {"phones": [], "operators": []}
    assert User.objects.count() == 0


def test_provisioning_thousands_uses_the_fleet_hasher(db: None) -> None:
    creds = provision(2000, 10, prefix="big")
    assert len(creds["phones"]) == 2000 and len(creds["operators"]) == 10
    assert User.objects.count() == 2010
    assert not User.objects.exclude(password__startswith=FLEET_PREFIX).exists()
    ids = dict(User.objects.values_list("username", "id"))
    assert all(ids[e["username"]] == e["id"] for e in creds["phones"] + creds["operators"])
    assert creds["phones"][-1]["username"] == "big-phone-02000"


def test_write_credentials_writes_owner_only_json(tmp_path: Path) -> None:
    creds = {"phones": [{"id": 1, "username": "f-phone-00001", "password": "pw1"}],
             "operators": [{"id": 2, "username": "f-operator-001", "password": "pw2"}]}
    out = tmp_path / "deep" / "er" / "creds.json"
    write_credentials(creds, out)
    assert json.loads(out.read_text()) == creds
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sorted(p.name for p in out.parent.iterdir()) == ["creds.json"]


def test_write_credentials_tightens_an_existing_file(tmp_path: Path) -> None:
    out = tmp_path / "creds.json"
    out.write_text("old")
    out.chmod(0o644)
    write_credentials({"phones": [], "operators": []}, out)
    assert json.loads(out.read_text()) == {"phones": [], "operators": []}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_write_credentials_of_a_real_provision(db: None, tmp_path: Path) -> None:
    creds = provision(2, 1, prefix="file")
    out = tmp_path / "c.json"
    write_credentials(creds, out)
    stored = json.loads(out.read_text())
    assert stored == creds
    assert {e["id"] for e in stored["phones"]} == set(
        User.objects.filter(is_staff=False).values_list("id", flat=True))
