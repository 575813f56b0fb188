"""The gate's clock: when it is trusted, jumps, signed feed time, and the untrusted policy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from portique.devtools.simulation import SimulatedRun
from portique.runtime.clock import ClockConfig, ClockSource, GateClock, journal_clock_events
from portique.runtime.journal import Journal

from .conftest import World, clip


@dataclass
class Hands:
    """A wall clock and a monotonic clock that the test moves by hand."""

    wall: float = 1722877200.0
    mono: float = 1000.0

    def tick(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def clock(hands: Hands, *, os_sync: bool | None, **config: object) -> GateClock:
    return GateClock(ClockConfig(**config),  # type: ignore[arg-type]
                     wall=lambda: hands.wall, monotonic=lambda: hands.mono,
                     os_sync=lambda: os_sync)


def test_os_synchronised_clock_is_trusted_and_unsynchronised_is_not() -> None:
    hands = Hands()
    assert clock(hands, os_sync=True).now().trusted
    assert not clock(hands, os_sync=False).now().trusted
    assert not clock(hands, os_sync=None).now().trusted


class Kernel:
    """The kernel's synchronisation status as adjtimex reports it, set by the test."""

    def __init__(self, synchronised: bool | None) -> None:
        self.synchronised = synchronised
        self.readings = 0

    def __call__(self) -> bool | None:
        self.readings += 1
        return self.synchronised


def test_a_jump_makes_the_clock_untrusted_until_new_evidence() -> None:
    hands, kernel = Hands(), Kernel(True)
    c = GateClock(ClockConfig(tolerance_s=2.0), wall=lambda: hands.wall,
                  monotonic=lambda: hands.mono, os_sync=kernel)
    assert c.now().trusted
    hands.tick(60)  # normal time passing: no jump
    assert c.now().trusted
    hands.wall += 3600  # someone set the clock an hour ahead...
    kernel.synchronised = False  # ...which the kernel marks unsynchronised
    reading = c.now()
    assert not reading.trusted
    state = c.state()
    assert state.jumps == 1 and "jumped" in state.why
    # a signed feed time agreeing with the new clock restores trust
    assert c.feed_time(hands.wall - 30, received_wall=hands.wall)
    assert c.now().trusted


def test_os_synchronisation_after_the_boot_step_restores_trust_and_is_journalled(
        tmp_path: Path) -> None:
    # a Pi without RTC boots on its saved clock, two days behind, not synchronised yet
    hands, kernel = Hands(), Kernel(False)
    journal = Journal(tmp_path / "journal.sqlite", gate_id="1")
    try:
        c = GateClock(ClockConfig(tolerance_s=5.0), wall=lambda: hands.wall,
                      monotonic=lambda: hands.mono, os_sync=kernel,
                      on_event=journal_clock_events(journal))
        assert not c.now().trusted
        hands.tick(30)
        hands.wall += 2 * 86400  # the NTP step
        assert not c.now().trusted  # the step itself is a jump
        assert c.state().jumps == 1 and "jumped" in c.state().why
        kernel.synchronised = True  # timesyncd marks the clock synchronised; no feed at all
        for _ in range(120):  # two minutes of the gate's time at most
            hands.tick(1)
            if c.now().trusted:
                break
        assert c.now().trusted
        assert c.state().why == "synchronised by the operating system"
        events = journal.gate_events()
    finally:
        journal.close()
    assert [(kind, detail) for _, kind, _, detail in reversed(events)] == [
        ("clock_jumped", "the wall clock moved +172800.0 s against the monotonic clock"),
        ("clock_trusted_again",
         "the operating system reports the clock synchronised after the jump"),
    ]


def test_an_os_reading_from_before_the_jump_does_not_restore_trust() -> None:
    hands, kernel = Hands(), Kernel(True)
    c = GateClock(ClockConfig(tolerance_s=5.0), wall=lambda: hands.wall,
                  monotonic=lambda: hands.mono, os_sync=kernel)
    assert c.now().trusted  # "synchronised" read, and kept for a few seconds
    hands.wall += 600
    kernel.synchronised = False
    assert not c.now().trusted  # read again after the jump, not the kept reading
    assert c.state().jumps == 1


def test_signed_feed_time_trusts_the_clock_for_a_while() -> None:
    hands = Hands()
    c = clock(hands, os_sync=False, feed_max_age_s=600.0, source=ClockSource.FEED)
    assert not c.now().trusted
    assert c.feed_time(hands.wall - 60)
    assert c.now().trusted
    hands.tick(599)
    assert c.now().trusted
    hands.tick(2)
    assert not c.now().trusted


@pytest.mark.parametrize("offset", [-3600.0, 7200.0])
def test_feed_time_far_from_the_local_clock_is_disagreement(offset: float) -> None:
    hands = Hands()
    c = clock(hands, os_sync=False, source=ClockSource.FEED)
    assert not c.feed_time(hands.wall + offset)
    assert not c.now().trusted


def _live_code() -> str:
    """A phone code valid right now, from the fixture issuer."""
    import hashlib
    import time

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from portique.ticket import credential
    from portique.ticket.credential import TicketFields

    from .conftest import fixture_key

    issuer = fixture_key("fixture-issuer")
    device = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"live-phone").digest())
    now = int(time.time())
    fields = TicketFields(kid="fixture-issuer", event="PAR24-ATH05", ticket_id="LIVE-1",
                          generation=0, valid_from=now - 3600, valid_until=now + 3600,
                          entrances=frozenset({2}),
                          device_key=device.public_key().public_bytes_raw())
    return credential.dynamic_code(credential.issue(fields, issuer), device,
                                   credential.step_at(now))


@pytest.mark.parametrize(("policy", "verdict"), [("steward", "steward"), ("refuse", "refuse")])
def test_untrusted_clock_follows_the_policy(world: World, policy: str, verdict: str) -> None:
    # signed feed time only, and no feed: the live clock is never trusted
    world.sections["clock"] = {"source": "feed"}
    world.sections["policy"] = {"untrusted_clock": policy}
    with world.running(SimulatedRun(replay=clip("empty"), fast=True)) as app:
        app.daemon.clock = GateClock(world.config().clock)
        app.clock = app.daemon.clock
        event = app.daemon.handle_code(_live_code())
        status = app.status()
    assert (event["verdict"], event["reason"]) == (verdict, "CLOCK_UNTRUSTED")
    assert status["clock"]["trusted"] is False
    assert world.unlocks() == 0
