"""``beacon-fleet``: the command line.

Mistakes the user can fix (a busy port, a bad URL, an unreachable Redis) end with one line on stderr
and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from simulator import __version__

EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line."""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _port(text: str) -> int:
    value = _count(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {value}")
    return value


class Parser(argparse.ArgumentParser):
    """Option mistakes end in one line on stderr (status 2), pointing at ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="beacon-fleet",
        description="A fleet of virtual phones that checks the Beacon panic-alert system's "
                    "reliability claims.",
    )
    parser.add_argument("--version", action="version", version=f"beacon-fleet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    backend = commands.add_parser(
        "backend", help="the reference Beacon backend (Django + Channels): serve, provision",
        description="The reference Beacon backend: the fleet's default system under test.")
    backend_commands = backend.add_subparsers(dest="backend_command", metavar="ACTION",
                                              required=True)

    serve = backend_commands.add_parser(
        "serve", help="migrate and serve the backend on loopback until Ctrl-C",
        description="Apply migrations, then serve HTTP and WebSocket on HOST:PORT until SIGINT or "
                    "SIGTERM. Prints the URL once listening; GET /api/health/ answers 200 when "
                    "ready. Storage: SQLite in --data-dir unless BEACON_DATABASE_URL names a "
                    "PostgreSQL database. Channel layer: in-memory unless --redis-url (or "
                    "BEACON_REDIS_URL) is given, which --workers above 1 requires.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    serve.add_argument("--port", type=_port, default=8000,
                       help="port to listen on; 0 picks a free one (default %(default)s)")
    _data_dir_option(serve)
    serve.add_argument("--workers", type=_positive, default=1,
                       help="server processes sharing the port (default %(default)s; above 1 needs Redis)")
    serve.add_argument("--server", choices=("uvicorn", "daphne"), default="uvicorn",
                       help="ASGI server (default %(default)s)")
    serve.add_argument("--redis-url", default=os.environ.get("BEACON_REDIS_URL"),
                       help="redis://host:port/db for the channels_redis layer "
                            "(default: $BEACON_REDIS_URL, else in-memory)")
    serve.set_defaults(handler=_serve)

    provision = backend_commands.add_parser(
        "provision", help="create phone and operator users fast and write their credentials",
        description="Create (or reset the passwords of) N phone users and M operator users in the "
                    "backend's database, migrating it first if needed (safe while a server runs), "
                    "and write {\"phones\": [{id, username, password}], \"operators\": [...]} to --out.")
    _data_dir_option(provision)
    provision.add_argument("--phones", type=_count, required=True, help="phone users to create")
    provision.add_argument("--operators", type=_count, required=True, help="operator (staff) users")
    provision.add_argument("--out", type=Path, required=True, help="credentials file to write")
    provision.add_argument("--prefix", default="fleet",
                           help="username prefix, e.g. fleet-phone-00001 (default %(default)s)")
    provision.set_defaults(handler=_provision)
    return parser


def _data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("BEACON_DATA_DIR", "beacon-data")),
                        help="where the SQLite database and token secret live "
                             "(default: $BEACON_DATA_DIR or ./%(default)s)")


def _configure(data_dir: Path, redis_url: str | None = None) -> None:
    from beacon_backend.config import ConfigError
    from beacon_backend.deployment import configure, migrate

    if data_dir.exists() and not data_dir.is_dir():
        raise UsageError(f"--data-dir {data_dir}: exists and is not a directory")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        configure(data_dir, redis_url=redis_url)
        migrate()
    except ConfigError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"--data-dir {data_dir}: {error.strerror or error}") from None


def _serve(args: argparse.Namespace) -> int:
    from beacon_backend import server

    if args.workers > 1 and not args.redis_url:
        raise UsageError("--workers above 1 needs the Redis channel layer: pass --redis-url "
                         "redis://127.0.0.1:6379/0 (or set BEACON_REDIS_URL)")
    try:
        if args.redis_url:
            server.check_redis(args.redis_url)
        _configure(args.data_dir, args.redis_url)
        listener = server.bind(args.host, args.port)
    except server.ServeError as error:
        raise UsageError(str(error)) from None
    layer = "redis" if args.redis_url else "in-memory"
    print(f"Beacon backend on {listener.url} ({args.server}, {args.workers} worker(s), "
          f"{layer} channel layer, data in {args.data_dir})", flush=True)
    return server.run(listener, args.server, args.workers)


def _provision(args: argparse.Namespace) -> int:
    from beacon_backend.provision import provision, write_credentials

    _configure(args.data_dir)
    credentials = provision(args.phones, args.operators, prefix=args.prefix)
    try:
        write_credentials(credentials, args.out)
    except OSError as error:
        raise UsageError(f"--out {args.out}: {error.strerror}") from None
    print(f"provisioned {args.phones} phone(s) and {args.operators} operator(s); "
          f"credentials in {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except UsageError as error:
        print(f"beacon-fleet: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
