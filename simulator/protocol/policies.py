"""Client policies as data: how the Beacon app (re)connects, beats, queues and resumes.

``beacon-1.0`` is the app as shipped (PROTOCOL.md, "the Beacon client as shipped"): the user
channel is opened at start and is the only one ever reopened, 5 s after every close, forever (the
attempt counter resets at each connect); pings every 30 s expect nothing back, so a dead link goes
unnoticed until a send fails; alert, location and chat channels open lazily and never reopen; a
send on a closed channel is dropped silently; each location goes both over the socket and to the
HTTP fallback; a failed panic POST is retried without an idempotency key.

``resilient`` is the Part B client: full-jitter exponential backoff with a cap on every channel, two
missed pongs declare the link dead, an outbox keeps every message until its ``ack`` (each carrying
``client_msg_id``), reconnects resume with ``?since=``, connectivity changes are acted on at once,
and locations fall back to HTTP (with the same id) only while the socket is unavailable.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    """Everything that distinguishes one client behaviour from another."""

    name: str
    heartbeat_s: float = 30.0
    expects_pong: bool = False
    missed_pongs_dead: int = 2
    backoff: str = "linear"  # "linear": base * attempt; "full_jitter": U(0, min(cap, base * 2^n))
    backoff_base_s: float = 5.0
    backoff_cap_s: float = 60.0
    attempt_resets_on_connect_try: bool = True  # the shipped bug: the delay never grows
    max_attempts: int | None = 5
    reopen_all_channels: bool = False
    outbox: bool = False
    client_msg_ids: bool = False
    resume_since: bool = False
    watch_connectivity: bool = False
    location_interval_s: float = 30.0
    location_always_http: bool = False  # beacon-1.0 POSTs every fix as well
    http_fallback_after_s: float | None = None  # resilient: POST when the socket is away this long
    create_retry_s: float = 5.0
    create_max_tries: int = 5


BEACON_1_0 = Policy(
    name="beacon-1.0",
    expects_pong=False,
    backoff="linear",
    backoff_base_s=5.0,
    attempt_resets_on_connect_try=True,
    max_attempts=5,
    location_always_http=True,
)

RESILIENT = Policy(
    name="resilient",
    expects_pong=True,
    missed_pongs_dead=2,
    backoff="full_jitter",
    backoff_base_s=0.5,
    backoff_cap_s=30.0,
    attempt_resets_on_connect_try=False,
    max_attempts=None,
    reopen_all_channels=True,
    outbox=True,
    client_msg_ids=True,
    resume_since=True,
    watch_connectivity=True,
    http_fallback_after_s=10.0,
    create_max_tries=1000,
)

POLICIES = {policy.name: policy for policy in (BEACON_1_0, RESILIENT)}


def backoff_delay(policy: Policy, attempt: int, draw: float) -> float:
    """The wait before reconnect attempt ``attempt`` (1-based); ``draw`` is uniform in [0, 1).

    Pure: the caller passes the random draw, so the schedule is reproducible and testable.
    """
    if policy.backoff == "linear":
        effective = 1 if policy.attempt_resets_on_connect_try else attempt
        return policy.backoff_base_s * effective
    ceiling = min(policy.backoff_cap_s, policy.backoff_base_s * float(2 ** min(attempt - 1, 30)))
    return draw * ceiling
