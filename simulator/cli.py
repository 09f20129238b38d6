"""``beacon-fleet``: the command line.

Mistakes the user can fix (a busy port, a bad URL, an unreachable Redis) end with one line on stderr
and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from simulator import __version__

if TYPE_CHECKING:
    from simulator.live import LiveFeed, LiveServer
    from simulator.result import RunResult

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


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


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
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
    serve.add_argument("--ws-ping-interval", type=_seconds, default=20.0, metavar="S",
                       help="send a WebSocket ping every S seconds (default %(default)s)")
    serve.add_argument("--ws-ping-timeout", type=_seconds, default=20.0, metavar="S",
                       help="drop a socket whose pong is S seconds late (default %(default)s)")
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
    _simulate_command(commands)
    _run_command(commands)
    _report_command(commands)
    _compare_command(commands)
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
    from django.core.exceptions import ImproperlyConfigured
    from django.db import Error as DatabaseError

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        configure(data_dir, redis_url=redis_url)
        migrate()
    except ConfigError as error:
        raise UsageError(str(error)) from None
    except (DatabaseError, ImproperlyConfigured) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"the database cannot be used: {first_line}") from None
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
    keepalive = server.Keepalive(args.ws_ping_interval, args.ws_ping_timeout)
    return server.run(listener, args.server, args.workers, keepalive)


def _provision(args: argparse.Namespace) -> int:
    from django.db import Error as DatabaseError

    from beacon_backend.provision import partial_path, provision, stage_credentials

    _configure(args.data_dir)
    try:
        provision(args.phones, args.operators, prefix=args.prefix,
                  before_commit=lambda credentials: stage_credentials(credentials, args.out))
        partial_path(args.out).replace(args.out)
    except OSError as error:
        raise UsageError(f"--out {args.out}: {error.strerror or error}") from None
    except DatabaseError as error:
        partial_path(args.out).unlink(missing_ok=True)
        raise UsageError(f"provisioning failed, nothing changed: {error}") from None
    print(f"provisioned {args.phones} phone(s) and {args.operators} operator(s); "
          f"credentials in {args.out}")
    return 0


# -- simulate -------------------------------------------------------------------------------------

def _duration(text: str) -> float:
    from simulator.profile import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 s, got {text!r}")
    return value


def _simulate_command(commands: argparse._SubParsersAction[Parser]) -> None:
    simulate = commands.add_parser(
        "simulate", help="run a fleet in virtual time against the modelled backend; judge the claims",
        description="Run PROFILE's fleet of phones and operators in virtual time, as fast as the CPU "
                    "allows, against a modelled Beacon backend; judge every claim and write the "
                    "report folder (report.json, junit.xml, report.html, ledger.jsonl.gz). Exit "
                    "status: 0 every verdict passed, 1 one failed (with --strict, also one not "
                    "measured), 2 the run could not be done, 130 interrupted (a partial report is "
                    "still written).")
    simulate.add_argument("profile", metavar="PROFILE",
                          help="a profile file, or the name of one in profiles/ (e.g. ci-smoke, "
                               "city-commute, stadium, rural-hiker)")
    _fleet_options(simulate, "simulated time, e.g. 600, 90s, 15m, 2h, 1h30m (default: the profile's)")
    _report_options(simulate)
    simulate.set_defaults(handler=_simulate)


def _fleet_options(parser: argparse.ArgumentParser, duration_help: str) -> None:
    """The profile overrides that `simulate` and `run` share."""
    from simulator.protocol.policies import POLICIES

    parser.add_argument("--devices", type=_positive, help="phones (default: the profile's)")
    parser.add_argument("--operators", type=_count, help="operators (default: the profile's)")
    parser.add_argument("--duration", type=_duration, help=duration_help)
    parser.add_argument("--seed", type=_count, help="run seed (default: the profile's)")
    parser.add_argument("--policy", choices=sorted(POLICIES), help="client policy (default: the profile's)")


def _report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="report folder (default: reports/<profile>-<UTC timestamp>/)")
    parser.add_argument("--strict", action="store_true",
                        help="a claim that could not be measured fails the run (CI)")
    parser.add_argument("--no-progress", action="store_true", help="no progress display on stderr")


def _report_dir(out: Path | None, profile: str) -> Path:
    """The report folder, created now so that an unusable path fails before the run."""
    if out is None:
        from datetime import UTC, datetime

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out = Path("reports") / f"{profile}-{stamp}"
        suffix = 2
        while out.exists():
            out = Path("reports") / f"{profile}-{stamp}-{suffix}"
            suffix += 1
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out {out}: {error.strerror or error}") from None
    return out


def _simulate(args: argparse.Namespace) -> int:
    import dataclasses
    import signal

    from simulator.checks import exit_code
    from simulator.profile import ProfileError, load
    from simulator.progress import ProgressWriter, clock
    from simulator.report import write_report
    from simulator.simulate import Progress, simulate

    try:
        config = load(args.profile, devices=args.devices, operators=args.operators,
                      duration_s=args.duration, seed=args.seed, policy=args.policy)
    except ProfileError as error:
        raise UsageError(str(error)) from None
    out = _report_dir(args.out, config.name)
    writer = ProgressWriter(sys.stderr, tty=sys.stderr.isatty()) if not args.no_progress else None
    stop = {"asked": False}
    last: list[Progress] = []

    def on_progress(progress: Progress) -> None:
        last[:] = [progress]
        if writer is not None:
            writer(progress)
        if stop["asked"]:  # between two slices of model time: a clean place to stop
            raise KeyboardInterrupt

    def on_sigint(signum: int, frame: object) -> None:
        if stop["asked"]:
            raise KeyboardInterrupt
        stop["asked"] = True
        message = "stopping: the partial run will be judged and written (Ctrl-C again to stop at once)"
        if writer is not None:
            writer.note(message)
        else:
            print(message, file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result, ledger = simulate(config, on_progress, strict=args.strict, profile_name=config.name)
    finally:
        signal.signal(signal.SIGINT, previous)
        if writer is not None:
            writer.close()
    # Short of the end means a Ctrl-C stopped the model; one after the end changes nothing.
    interrupted = not last or last[0].model_s < last[0].end_s
    if interrupted:
        reached = last[0].model_s if last else 0.0
        end = config.duration_s + config.drain_s
        result = dataclasses.replace(result, warnings=(
            *result.warnings,
            f"interrupted (Ctrl-C) at {clock(reached)} of {clock(end)} model time "
            f"({'run' if reached < config.duration_s else 'drain'} phase): a partial run, not fully "
            f"drained; messages still in flight count as lost"))
    try:
        write_report(result, ledger, out)
    except OSError as error:
        raise UsageError(f"--out {out}: {error.strerror or error}") from None
    _show(result, out, args.strict)
    if interrupted:
        return EXIT_INTERRUPTED
    return exit_code(result, args.strict)


# -- run ------------------------------------------------------------------------------------------

def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _run_command(commands: argparse._SubParsersAction[Parser]) -> None:
    run = commands.add_parser(
        "run", help="run a fleet in wall-clock time against a real backend; judge the claims",
        description="Run PROFILE's fleet of phones and operators in wall-clock time (x --speed) over "
                    "real WebSockets and HTTP. With no --url, start the reference backend on a free "
                    "loopback port with a fresh data directory, provision its users, and stop it at "
                    "the end; with --url, drive that deployment with the users in --creds (the file "
                    "`backend provision` writes). Then drain, read what the backend stored, judge "
                    "every claim and write the report folder. Exit status: 0 every verdict passed, "
                    "1 one failed (with --strict, also one not measured), 2 the run could not be "
                    "done, 130 interrupted (a partial report is still written).")
    run.add_argument("profile", metavar="PROFILE", nargs="?", default="first-look",
                     help="a profile file, or the name of one in profiles/ (default %(default)s)")
    _fleet_options(run, "model time, e.g. 600, 90s, 15m, 1h30m (default: the profile's)")
    run.add_argument("--speed", type=_speed, default=1.0,
                     help="model seconds per wall second (default %(default)s; timing verdicts "
                          "hold only at 1)")
    run.add_argument("--url", help="an existing backend, e.g. http://127.0.0.1:8000/ "
                                   "(default: start the reference backend)")
    run.add_argument("--creds", type=Path, metavar="F",
                     help="credentials file for --url, as `backend provision` writes it")
    run.add_argument("--origin", help="Origin header for WebSocket handshakes")
    _report_options(run)
    run.add_argument("--live", type=_port, nargs="?", const=0, default=None, metavar="PORT",
                     help="while the run goes on, serve a live view (the phones on a map, alerts, chat, "
                          "the fleet timeline, the verdicts filling in) at http://127.0.0.1:PORT/, "
                          "loopback only; no PORT picks a free one")
    run.add_argument("--live-hold", type=_hold_seconds, metavar="SECONDS",
                     help="after the run, keep the live view up this long (default: until Enter on a "
                          "terminal, not at all otherwise)")
    run.set_defaults(handler=_run)


def _hold_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


def _run(args: argparse.Namespace) -> int:
    """``run``; with ``--live``, its live view is served from before the run until after it."""
    if args.live is None:
        return _run_fleet(args, None)
    from simulator.live import LiveFeed, LiveServer, hold

    feed = LiveFeed()
    server = LiveServer(args.live, feed.snapshot)
    try:
        code = _run_fleet(args, (feed, server))
        if code != EXIT_INTERRUPTED:
            hold(args.live_hold)
        return code
    finally:
        server.stop()


def _run_fleet(args: argparse.Namespace, live: tuple[LiveFeed, LiveServer] | None) -> int:
    import dataclasses

    from simulator.checks import exit_code
    from simulator.profile import ProfileError, load
    from simulator.progress import ProgressWriter, clock
    from simulator.report import write_report
    from simulator.run import RunError, run

    if args.url is not None and args.creds is None:
        raise UsageError("--url needs --creds (a credentials file from `backend provision`)")
    if args.url is None and args.creds is not None:
        raise UsageError("--creds goes with --url (without --url the fleet provisions its own users)")
    if args.url is not None and not args.url.startswith(("http://", "https://")):
        raise UsageError(f"--url {args.url}: expected http://host:port/ or https://...")
    try:
        config = load(args.profile, devices=args.devices, operators=args.operators,
                      duration_s=args.duration, seed=args.seed, policy=args.policy)
    except ProfileError as error:
        raise UsageError(str(error)) from None
    if live is not None:  # before the report folder: a port in use leaves nothing behind
        from simulator.live import LiveError, fan_out

        live[0].targets, live[0].title = config.targets, config.name
        try:
            live[1].start()
        except LiveError as error:
            raise UsageError(str(error)) from None
    existed = args.out is not None and args.out.exists()
    out = _report_dir(args.out, config.name)
    writer = None if args.no_progress else ProgressWriter(
        sys.stderr, tty=sys.stderr.isatty(), tally=None if live is None else live[0].tally)
    try:
        outcome = run(config, speed=args.speed, url=args.url, creds_path=args.creds,
                      origin=args.origin, on_progress=writer if live is None else fan_out(writer, live[0]),
                      strict=args.strict, profile_name=config.name)
    except RunError as error:
        if not existed:  # no run, no report: do not leave the empty folder made for it
            with contextlib.suppress(OSError):
                out.rmdir()
        raise UsageError(str(error)) from None
    finally:
        if writer is not None:
            writer.close()
    result = outcome.result
    if outcome.interrupted:
        result = dataclasses.replace(result, warnings=(
            *result.warnings,
            f"interrupted (Ctrl-C) at {clock(outcome.reached_s)} of {clock(outcome.end_s)} model "
            f"time: a partial run, not drained; messages still in flight count as lost"))
    if live is not None:
        live[0].finish(result)
    try:
        write_report(result, outcome.ledger, out)
        if outcome.backend_log is not None:
            (out / "backend.log").write_text(outcome.backend_log)
    except OSError as error:
        raise UsageError(f"--out {out}: {error.strerror or error}") from None
    problems = ", ".join(f"{cause} x{n}" for cause, n in outcome.problems.most_common())
    _show(result, out, args.strict, f"backend problems: {problems}" if problems else None)
    if outcome.failure is not None:
        print(f"beacon-fleet: the fleet itself failed ({outcome.failure}); the partial run is judged "
              f"in {out}{os.sep} and its traceback is on stderr above", file=sys.stderr)
        return EXIT_USAGE
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    return exit_code(result, args.strict)


# -- report ---------------------------------------------------------------------------------------

def _report_command(commands: argparse._SubParsersAction[Parser]) -> None:
    report = commands.add_parser(
        "report", help="judge a stored run again from its ledger and re-render its outputs",
        description="Read RUN_DIR (a report folder of `simulate` or `run`), judge its ledger "
                    "(ledger.jsonl.gz) again with this version's checker, and rewrite report.json, "
                    "junit.xml and report.html there. What the ledger cannot tell (what was run, "
                    "the targets, the generator's figures) comes from the stored report.json. Exit "
                    "status: as the run's (0 every verdict passed, 1 one failed), 2 not a readable "
                    "run folder.")
    report.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a run's report folder")
    report.add_argument("--strict", action="store_true", default=None,
                        help="a claim that could not be measured fails the run (default: as the run "
                             "was judged)")
    report.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from simulator.checks import exit_code
    from simulator.report.rerender import RerenderError, rerender

    try:
        result = rerender(args.run_dir, args.strict)
    except RerenderError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"{args.run_dir}: {error.strerror or error}") from None
    _show(result, args.run_dir, result.strict)
    return exit_code(result, result.strict)


# -- compare --------------------------------------------------------------------------------------

def _compare_command(commands: argparse._SubParsersAction[Parser]) -> None:
    compare = commands.add_parser(
        "compare", help="stored runs side by side: verdicts, messages, distributions overlaid",
        description="Read two run folders or more (report folders of `simulate` or `run`) and show "
                    "them side by side, without judging again: a verdict table on stdout (one "
                    "column per run, rows whose verdicts differ marked), and compare.json and "
                    "compare.html (verdicts, messages per kind, latency, delivery delay, "
                    "connection and battery distributions overlaid) in --out. Runs are labelled by "
                    "what differs between them (the policy, else the profile, the backend, ..., "
                    "else the folder) unless --label names them. Exit status: 0 every run passed, "
                    "1 a run has a failing verdict, 2 a folder is not a readable run.")
    compare.add_argument("runs", metavar="RUN_DIR", type=Path, nargs="+",
                         help="run report folders, two or more (the first is the baseline)")
    compare.add_argument("--out", type=Path, metavar="DIR",
                         help="where to write compare.json and compare.html "
                              "(default: reports/compare-<UTC timestamp>/)")
    compare.add_argument("--label", dest="labels", action="append", metavar="NAME",
                         help="a run's label, once per run in the order of the folders "
                              "(default: derived from what differs between the runs)")
    compare.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from simulator.report import compare as comparison

    try:
        runs = comparison.load_runs(args.runs, args.labels)
    except comparison.CompareError as error:
        raise UsageError(str(error)) from None
    out = _report_dir(args.out, "compare")
    try:
        comparison.write_compare(runs, out)
    except OSError as error:
        raise UsageError(f"--out {out}: {error.strerror or error}") from None
    sys.stdout.write(comparison.render_compare_console(
        runs, colour=sys.stdout.isatty() and "NO_COLOR" not in os.environ))
    print(f"compare: {out / comparison.COMPARE_HTML}")
    return comparison.exit_code(runs)


def _show(result: RunResult, out: Path, strict: bool, extra: str | None = None) -> None:
    """The verdict table on stdout (coloured on a terminal, not with NO_COLOR), the page to open,
    then the folder."""
    from simulator.report import REPORT_HTML
    from simulator.report.console import render_console

    sys.stdout.write(render_console(result, colour=sys.stdout.isatty() and "NO_COLOR" not in os.environ,
                                    strict=strict))
    if extra:
        print(extra)
    print(f"open in a browser: {out / REPORT_HTML}")
    print(f"report: {out}{os.sep}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_bare_live(list(sys.argv[1:] if argv is None else argv)))
    try:
        return int(args.handler(args))
    except UsageError as error:
        print(f"beacon-fleet: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _bare_live(argv: list[str]) -> list[str]:
    """``run --live PROFILE ...``: a ``--live`` followed by a word that is not a port takes no port
    (argparse would read the profile's name as the port and refuse it)."""
    if not argv or argv[0] != "run":
        return argv
    return [("--live=0" if token == "--live" and i + 1 < len(argv) and not argv[i + 1].isdigit()
             and not argv[i + 1].startswith("-") else token) for i, token in enumerate(argv)]


if __name__ == "__main__":
    sys.exit(main())
