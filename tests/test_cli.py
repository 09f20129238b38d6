"""``beacon-fleet`` as a user runs it: help, provision, and one-line refusals of bad input."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backend.fixtures import cli, free_port

USAGE = 2


def one_line_refusal(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit status 2, exactly one line on stderr naming the problem, and no traceback."""
    assert done.returncode == USAGE, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


def provision_args(data_dir: Path, out: Path, phones: str = "3", operators: str = "1") -> list[str]:
    return ["backend", "provision", "--data-dir", str(data_dir), "--phones", phones,
            "--operators", operators, "--out", str(out)]


@pytest.fixture
def regular_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain-file"
    path.write_text("not a directory\n")
    return path


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


# -- help ----------------------------------------------------------------------------------------

def test_help_lists_the_backend_command() -> None:
    done = cli("--help")
    assert done.returncode == 0, done.stderr
    assert "backend" in done.stdout and "usage: beacon-fleet" in done.stdout


def test_backend_help_lists_serve_and_provision() -> None:
    done = cli("backend", "--help")
    assert done.returncode == 0, done.stderr
    assert "serve" in done.stdout and "provision" in done.stdout


def test_version() -> None:
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.startswith("beacon-fleet ")


# -- provision -----------------------------------------------------------------------------------

def test_provision_on_a_fresh_then_existing_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    out = tmp_path / "c.json"
    assert not data_dir.exists()
    done = cli(*provision_args(data_dir, out))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "provisioned 3 phone(s) and 1 operator(s)" in done.stdout
    assert (data_dir / "beacon.sqlite3").is_file()
    first = json.loads(out.read_text())
    assert [p["username"] for p in first["phones"]] == [f"fleet-phone-0000{i}" for i in (1, 2, 3)]
    assert [o["username"] for o in first["operators"]] == ["fleet-operator-001"]
    assert all(set(e) == {"id", "username", "password"} for e in first["phones"] + first["operators"])
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    again = cli(*provision_args(data_dir, out))
    assert again.returncode == 0, again.stderr
    second = json.loads(out.read_text())
    assert [p["id"] for p in second["phones"]] == [p["id"] for p in first["phones"]]
    assert second["phones"][0]["password"] != first["phones"][0]["password"]


def test_provision_with_a_prefix_and_nested_out(tmp_path: Path) -> None:
    out = tmp_path / "creds" / "nested" / "ops.json"
    done = cli(*provision_args(tmp_path / "data", out, phones="0", operators="2"), "--prefix", "night")
    assert done.returncode == 0, done.stderr
    creds = json.loads(out.read_text())
    assert creds["phones"] == []
    assert [o["username"] for o in creds["operators"]] == ["night-operator-001", "night-operator-002"]


# -- bad input: exit 2, one line, no traceback ----------------------------------------------------

def test_negative_phones(tmp_path: Path) -> None:
    done = cli(*provision_args(tmp_path / "data", tmp_path / "c.json", phones="-1"))
    one_line_refusal(done, "--phones")
    assert not (tmp_path / "c.json").exists()


def test_port_out_of_range(tmp_path: Path) -> None:
    done = cli("backend", "serve", "--data-dir", str(tmp_path / "data"), "--port", "70000")
    one_line_refusal(done, "--port", "65535")


def test_several_workers_need_redis(tmp_path: Path) -> None:
    done = cli("backend", "serve", "--data-dir", str(tmp_path / "data"), "--port", "0",
               "--workers", "2", env={"BEACON_REDIS_URL": ""})
    one_line_refusal(done, "redis")


def test_unreachable_redis(tmp_path: Path) -> None:
    port = free_port()
    done = cli("backend", "serve", "--data-dir", str(tmp_path / "data"), "--port", "0",
               "--redis-url", f"redis://127.0.0.1:{port}/0", timeout=30)
    one_line_refusal(done, "not reachable", str(port))


@pytest.mark.parametrize("command", ["provision", "serve"])
def test_data_dir_is_a_regular_file(tmp_path: Path, regular_file: Path, command: str) -> None:
    extra = (["--phones", "1", "--operators", "0", "--out", str(tmp_path / "c.json")]
             if command == "provision" else ["--port", "0"])
    done = cli("backend", command, "--data-dir", str(regular_file), *extra)
    one_line_refusal(done, "--data-dir", "not a directory")
    assert regular_file.read_text() == "not a directory\n"


def test_data_dir_under_a_regular_file(tmp_path: Path, regular_file: Path) -> None:
    done = cli(*provision_args(regular_file / "data", tmp_path / "c.json"))
    one_line_refusal(done, "--data-dir")
    assert not (tmp_path / "c.json").exists()


def test_unsupported_database_url(tmp_path: Path) -> None:
    done = cli(*provision_args(tmp_path / "data", tmp_path / "c.json"),
               env={"BEACON_DATABASE_URL": "mysql://x/y"})
    one_line_refusal(done, "BEACON_DATABASE_URL", "unsupported scheme", "mysql")
    assert not (tmp_path / "c.json").exists()


def test_out_that_cannot_be_created(tmp_path: Path, regular_file: Path) -> None:
    out = regular_file / "sub" / "c.json"
    done = cli(*provision_args(tmp_path / "data", out))
    one_line_refusal(done, "--out", "not a directory")


def test_serve_on_a_busy_port(tmp_path: Path, busy_port: int) -> None:
    done = cli("backend", "serve", "--data-dir", str(tmp_path / "data"), "--port", str(busy_port),
               timeout=30)
    one_line_refusal(done, "cannot listen", str(busy_port))


# -- ports out of range, unusable databases: exit 2, one line, no traceback ------------------------

def test_redis_url_with_a_port_out_of_range(tmp_path: Path) -> None:
    done = cli("backend", "serve", "--data-dir", str(tmp_path / "data"), "--port", "0",
               "--redis-url", "redis://127.0.0.1:99999/0", timeout=30)
    one_line_refusal(done, "--redis-url", "port")


@pytest.mark.parametrize("command", ["provision", "serve"])
def test_database_url_with_a_port_out_of_range(tmp_path: Path, command: str) -> None:
    done = cli(*command_args(command, tmp_path),
               env={"BEACON_DATABASE_URL": "postgresql://u@127.0.0.1:99999/db"}, timeout=30)
    one_line_refusal(done, "BEACON_DATABASE_URL", "port")
    assert not (tmp_path / "c.json").exists()


@pytest.mark.parametrize("command", ["provision", "serve"])
def test_unreachable_postgresql(tmp_path: Path, command: str) -> None:
    port = free_port()
    done = cli(*command_args(command, tmp_path),
               env={"BEACON_DATABASE_URL": f"postgresql://u@127.0.0.1:{port}/db"}, timeout=60)
    one_line_refusal(done, "database", str(port))
    assert not (tmp_path / "c.json").exists()


@pytest.mark.parametrize("command", ["provision", "serve"])
def test_a_database_file_that_is_a_directory(tmp_path: Path, command: str) -> None:
    (tmp_path / "data" / "beacon.sqlite3").mkdir(parents=True)
    done = cli(*command_args(command, tmp_path), timeout=30)
    one_line_refusal(done, "database")
    assert list((tmp_path / "data" / "beacon.sqlite3").iterdir()) == []
    assert not (tmp_path / "c.json").exists()


def command_args(command: str, tmp_path: Path) -> list[str]:
    if command == "provision":
        return provision_args(tmp_path / "data", tmp_path / "c.json")
    return ["backend", "serve", "--data-dir", str(tmp_path / "data"), "--port", "0"]


# -- provision --out that cannot be written: nothing changes ---------------------------------------

LOGINS = (
    "import json, sys\n"
    "from beacon_backend.deployment import configure\n"
    "configure(sys.argv[1])\n"
    "from django.contrib.auth import authenticate\n"
    "creds = json.load(open(sys.argv[2]))\n"
    "entries = creds['phones'] + creds['operators']\n"
    "ok = [authenticate(username=e['username'], password=e['password']) is not None for e in entries]\n"
    "print(sum(ok), len(ok))\n"
)


def logins(data_dir: Path, credentials: Path) -> tuple[int, int]:
    """How many of the file's accounts log in to the data dir's database (and how many there are)."""
    done = subprocess.run([sys.executable, "-c", LOGINS, str(data_dir), str(credentials)],
                          capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if not k.startswith("BEACON_")})
    assert done.returncode == 0, done.stderr
    good, total = done.stdout.split()
    return int(good), int(total)


def test_provision_into_an_existing_directory_changes_no_password(tmp_path: Path) -> None:
    data_dir, first = tmp_path / "data", tmp_path / "c.json"
    assert cli(*provision_args(data_dir, first)).returncode == 0
    assert logins(data_dir, first) == (4, 4)
    before = first.read_text()

    target = tmp_path / "creds-dir"
    target.mkdir()
    done = cli(*provision_args(data_dir, target))
    one_line_refusal(done, "--out", str(target))
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "creds-dir", "data"]  # no .partial
    assert first.read_text() == before
    assert logins(data_dir, first) == (4, 4), "the failed run changed the passwords"

    again = tmp_path / "c2.json"  # the same run with a usable --out does reset them
    assert cli(*provision_args(data_dir, again)).returncode == 0
    assert logins(data_dir, again) == (4, 4)
    assert logins(data_dir, first) == (0, 4)
