"""The turnstile: admit one person, refuse, call a steward, and free everyone on a fire alarm.

``Turnstile`` owns the gpiozero devices of one gate (portique.hardware.devices) and is safe to use
from several threads: ``admit`` blocks its caller (a worker thread) until the person has
passed, the time is up or a fire alarm frees the gate, while the inputs are handled on
gpiozero's own callback threads. Fire-alarm handling therefore never waits for the caller:
the moment the loop opens, the callback releases the lock itself and latches free egress,
which only ``acknowledge_fire_alarm`` ends, and only once the loop is closed again.

Safety notes:

* The lock relay rests de-energised in the ``on_stop`` state (portique.hardware.config): ``close()``
  de-energises it, and so do a crash and a power cut, given the wiring of docs/wiring.md.
* A fire loop that reads open when the turnstile starts latches free egress at once.
  gpiozero's simulated pins rest at their pull, so on the mock factory the loop reads open
  until something drives it low.
* Listeners (``subscribe``) run on the thread where the event happened, after the pins have
  been set; they must return quickly. An exception in a listener is logged and ignored.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from portique.hardware.config import HardwareConfig, RedLight, SignalPattern, StopState
from portique.hardware.devices import TurnstileDevices, open_devices
from portique.hardware.errors import TurnstileBusyError, TurnstileClosedError
from portique.hardware.pins import open_pin_factory

log = logging.getLogger(__name__)


class PassageOutcome(enum.StrEnum):
    PASSED = "passed"
    """The passage sensor counted one person through; the lock has closed again."""
    TIMED_OUT = "timed_out"
    """Nobody passed before the timeout; the lock has closed again (void the admission)."""
    FIRE_ALARM = "fire_alarm"
    """Free egress is latched: the lock is open for everyone, nobody was counted for this."""


class EventKind(enum.StrEnum):
    FIRE_ALARM_RAISED = "fire_alarm_raised"
    """The fire loop opened: the lock is released and free egress latched."""
    FIRE_LOOP_CLOSED = "fire_loop_closed"
    """The fire loop closed again; free egress stays until a steward acknowledges."""
    FREE_EGRESS_ENDED = "free_egress_ended"
    """A steward acknowledged the alarm with the loop closed: the gate is locked, in service."""
    PASSAGE = "passage"
    """The passage sensor counted one person (admitted, or during free egress)."""
    PASSAGE_WITHOUT_ADMIT = "passage_without_admit"
    """The passage sensor counted a person while the gate was locked (forced or tailgating)."""
    FAULT = "fault"
    """A fault was recorded (see ``TurnstileEvent.fault`` and ``Turnstile.faults``)."""


class FaultKind(enum.StrEnum):
    RELAY_FEEDBACK_MISMATCH = "relay_feedback_mismatch"
    """The lock relay's feedback contact disagrees with the command after the settle time."""


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    message: str
    at: float
    """Wall-clock time (Unix seconds) when the fault was seen."""


@dataclass(frozen=True, slots=True)
class TurnstileEvent:
    kind: EventKind
    at: float
    """Wall-clock time (Unix seconds)."""
    detail: str = ""
    fault: Fault | None = None
    steward_id: str | None = None


Listener = Callable[[TurnstileEvent], None]


class Turnstile:
    """One turnstile's lock relay, lights, buzzer, passage sensor, fire loop and feedback.

    `pin_factory` is a gpiozero pin factory; when it is None, the factory the config names
    is opened (hardware.pins.open_pin_factory) and closed with the turnstile. It is never
    gpiozero's process-wide default, which may fall back to other pin libraries.
    """

    def __init__(self, config: HardwareConfig, *, pin_factory: Any = None) -> None:
        self._config = config
        self._owned_factory = open_pin_factory(config.pin_factory) if pin_factory is None \
            else None
        factory = pin_factory if pin_factory is not None else self._owned_factory
        self._cond = threading.Condition(threading.RLock())
        self._listeners: list[Listener] = []
        self._faults: list[Fault] = []
        self._closed = False
        self._admitting = False
        self._passed = False
        self._passages = 0
        self._feedback_ok = True
        self._feedback_timer: threading.Timer | None = None
        self._passage_timer: threading.Timer | None = None
        self._passage_last_edge = 0.0
        locked_energised = config.relay_energised_when_locked
        try:
            self._devices: TurnstileDevices = open_devices(
                config, factory,
                lock_energised=lambda loop_closed: locked_energised if loop_closed
                else not locked_energised)
        except BaseException:
            if self._owned_factory is not None:
                with contextlib.suppress(Exception):
                    self._owned_factory.close()
            raise
        d = self._devices
        self._latched = not d.fire_loop.is_active
        self._passage_level = bool(d.passage.is_active)
        if self._latched:
            d.green.on()
            log.critical("fire loop open at start: lock released, free egress latched "
                         "until the loop is closed and a steward acknowledges",
                         extra={"event": EventKind.FIRE_ALARM_RAISED.value})
        d.fire_loop.when_deactivated = self._on_loop_open
        d.fire_loop.when_activated = self._on_loop_closed
        d.passage.when_activated = self._on_passage_edge
        d.passage.when_deactivated = self._on_passage_edge
        if d.relay_feedback is not None:
            d.relay_feedback.when_activated = self._on_feedback_edge
            d.relay_feedback.when_deactivated = self._on_feedback_edge
        with self._cond:
            self._schedule_feedback_check()
        if not self._latched and not d.fire_loop.is_active:
            self._on_loop_open()  # opened between the first read and the callbacks
        atexit.register(self.close)
        log.info("turnstile ready on_stop=%s locked=%s", config.on_stop.value, self.is_locked,
                 extra={"event": "turnstile_ready"})

    # --- what the gate asks -----------------------------------------------------------

    def admit(self, timeout: float | None = None, *, accessible: bool = False
              ) -> PassageOutcome:
        """Unlock and light green for one person; block until they pass or time is up.

        `timeout` defaults to the config's open_timeout_s. `accessible`: the accessible
        lane's opening, with the `accessible` buzzer pattern as the lock opens (the caller
        gives its longer timeout). Call it from a worker thread:
        a fire alarm ends the wait at once with FIRE_ALARM. Raises TurnstileBusyError if
        another admission cycle is open, TurnstileClosedError if the turnstile is or gets
        closed.
        """
        limit = self._config.open_timeout_s if timeout is None else timeout
        if not isinstance(limit, int | float) or not math.isfinite(limit) or limit <= 0:
            raise ValueError(f"admit: timeout must be a positive number of seconds, "
                             f"got {timeout!r}")
        with self._cond:
            self._check_open("admit")
            if self._latched:
                log.info("admit skipped: free egress latched", extra={"event": "admit_skipped"})
                return PassageOutcome.FIRE_ALARM
            if self._admitting:
                raise TurnstileBusyError("admit: an admission cycle is already open")
            self._admitting, self._passed = True, False
            try:
                self._stop_signals()
                self._set_locked(False)
                self._devices.green.on()
                if accessible:
                    pattern = self._config.accessible
                    self._devices.buzzer.beep(on_time=pattern.on_ms / 1000,
                                              off_time=pattern.off_ms / 1000,
                                              n=pattern.beeps, background=True)
                log.info("admit opened timeout_s=%.1f accessible=%s", limit, accessible,
                         extra={"event": "admit_opened"})
                outcome = self._wait_for_passage(time.monotonic() + limit)
            finally:
                self._admitting = False
                if not self._latched and not self._closed:
                    self._close_lane()
        log.info("admit ended outcome=%s", outcome.value, extra={"event": "admit_ended",
                                                                  "outcome": outcome.value})
        return outcome

    def refuse(self) -> float:
        """Red light and the refuse buzzer pattern, lock closed; returns its length in seconds.

        Returns at once (the pattern plays in the background). Nothing is shown while free
        egress is latched (0.0 is returned).
        """
        return self._play("refuse", self._config.refuse)

    def call_steward(self) -> float:
        """The steward pattern (red light and buzzer); returns its length in seconds."""
        return self._play("call_steward", self._config.steward)

    def acknowledge_fire_alarm(self, steward_id: str) -> bool:
        """End free egress for `steward_id`: only once the fire loop is closed again.

        True if the gate is now in normal service (locked), also when nothing was latched;
        False if the loop is still open (free egress goes on).
        """
        if not steward_id:
            raise ValueError("acknowledge_fire_alarm: steward_id must not be empty")
        events: list[TurnstileEvent] = []
        with self._cond:
            self._check_open("acknowledge_fire_alarm")
            if not self._latched:
                return True
            if not self._devices.fire_loop.is_active:
                log.warning("fire alarm acknowledge refused: loop still open steward=%s",
                            steward_id, extra={"event": "fire_ack_refused",
                                               "steward_id": steward_id})
                return False
            self._latched = False
            self._close_lane()
            log.warning("free egress ended: acknowledged by steward=%s, lock closed",
                        steward_id, extra={"event": EventKind.FREE_EGRESS_ENDED.value,
                                           "steward_id": steward_id})
            events.append(self._event(EventKind.FREE_EGRESS_ENDED, steward_id=steward_id))
        self._dispatch(events)
        return True

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every TurnstileEvent from now on; returns an unsubscribe."""
        with self._cond:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._cond, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def close(self) -> None:
        """Stop: lights and buzzer off, lock relay de-energised (the config's on_stop state).

        Safe to call more than once and from any thread; an admit waiting in another thread
        raises TurnstileClosedError.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            for timer in (self._feedback_timer, self._passage_timer):
                if timer is not None:
                    timer.cancel()
            d = self._devices
            if self._latched and self._config.on_stop is StopState.FAIL_SECURE:
                log.error("stopping during free egress: fail_secure locks the turnstile",
                          extra={"event": "stop_during_fire_alarm"})
            with contextlib.suppress(Exception):
                self._stop_signals()
                d.green.off()
            with contextlib.suppress(Exception):
                d.lock.off()
            self._cond.notify_all()
        d.close()
        if self._owned_factory is not None:
            with contextlib.suppress(Exception):
                self._owned_factory.close()
        atexit.unregister(self.close)
        log.info("turnstile stopped on_stop=%s", self._config.on_stop.value,
                 extra={"event": "turnstile_stopped"})

    def __enter__(self) -> Turnstile:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- what the gate reads ----------------------------------------------------------

    @property
    def fire_alarm_active(self) -> bool:
        """True while the fire loop reads open (alarm, or a cut wire)."""
        with self._cond:
            self._check_open("fire_alarm_active")
            return not self._devices.fire_loop.is_active

    @property
    def free_egress_latched(self) -> bool:
        """True from the loop opening until a steward acknowledges with the loop closed."""
        with self._cond:
            return self._latched

    @property
    def is_locked(self) -> bool:
        """True while the lock relay is commanded to hold the turnstile."""
        with self._cond:
            self._check_open("is_locked")
            energised = bool(self._devices.lock.value)
            return energised == self._config.relay_energised_when_locked

    @property
    def relay_feedback_agrees(self) -> bool | None:
        """Whether the lock relay's feedback contact agreed with the command at its last
        check; None when no feedback contact is wired (hardware.pins.relay_feedback)."""
        with self._cond:
            if self._devices.relay_feedback is None:
                return None
            return self._feedback_ok

    @property
    def passages(self) -> int:
        """People the passage sensor counted since start (after debouncing)."""
        with self._cond:
            return self._passages

    @property
    def faults(self) -> tuple[Fault, ...]:
        """Every fault seen since start, oldest first."""
        with self._cond:
            return tuple(self._faults)

    # --- inside (callers hold self._cond) ---------------------------------------------

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise TurnstileClosedError(f"{what}: the turnstile is closed")

    def _wait_for_passage(self, deadline: float) -> PassageOutcome:
        while not (self._passed or self._latched or self._closed):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        if self._closed:
            raise TurnstileClosedError("admit: the turnstile was closed during the "
                                       "admission; nobody was seen passing")
        if self._latched:
            return PassageOutcome.FIRE_ALARM
        return PassageOutcome.PASSED if self._passed else PassageOutcome.TIMED_OUT

    def _set_locked(self, locked: bool) -> None:
        self._devices.lock.value = locked == self._config.relay_energised_when_locked
        self._schedule_feedback_check()

    def _close_lane(self) -> None:
        self._set_locked(True)
        self._devices.green.off()

    def _stop_signals(self) -> None:
        self._devices.red.off()
        self._devices.buzzer.off()

    def _play(self, what: str, pattern: SignalPattern) -> float:
        with self._cond:
            self._check_open(what)
            if self._latched:
                log.info("%s not shown: free egress latched", what,
                         extra={"event": f"{what}_skipped"})
                return 0.0
            if self._admitting:
                raise TurnstileBusyError(f"{what}: an admission cycle is open")
            on, off = pattern.on_ms / 1000, pattern.off_ms / 1000
            d = self._devices
            self._stop_signals()
            d.buzzer.beep(on_time=on, off_time=off, n=pattern.beeps, background=True)
            if pattern.red is RedLight.BLINK:
                d.red.blink(on_time=on, off_time=off, n=pattern.beeps, background=True)
            else:
                d.red.blink(on_time=pattern.duration_s, off_time=0, n=1, background=True)
            log.info("%s pattern beeps=%d on_ms=%d off_ms=%d red=%s", what, pattern.beeps,
                     pattern.on_ms, pattern.off_ms, pattern.red.value, extra={"event": what})
        return pattern.duration_s

    def _event(self, kind: EventKind, *, detail: str = "", fault: Fault | None = None,
               steward_id: str | None = None) -> TurnstileEvent:
        return TurnstileEvent(kind=kind, at=time.time(), detail=detail, fault=fault,
                              steward_id=steward_id)

    def _dispatch(self, events: list[TurnstileEvent]) -> None:
        """Call the listeners; never with self._cond held by this method's caller."""
        if not events:
            return
        with self._cond:
            listeners = list(self._listeners)
        for event in events:
            for listener in listeners:
                try:
                    listener(event)
                except Exception:
                    log.exception("turnstile listener failed on %s", event.kind.value)

    # --- the fire loop ----------------------------------------------------------------

    def _on_loop_open(self) -> None:
        events: list[TurnstileEvent] = []
        with self._cond:
            if self._closed:
                return
            self._set_locked(False)  # first, before anything else
            self._latched = True
            self._stop_signals()
            self._devices.green.on()
            self._cond.notify_all()
            log.critical("fire loop open: lock released, free egress latched",
                         extra={"event": EventKind.FIRE_ALARM_RAISED.value})
            events.append(self._event(EventKind.FIRE_ALARM_RAISED))
        self._dispatch(events)

    def restore_latch(self, why: str) -> None:
        """Free egress latched before a restart stays latched: free the lane again now.

        Called at start when the record of an unacknowledged alarm survived the restart;
        only a steward's acknowledge (with the loop closed) ends it, as for a live alarm.
        """
        events: list[TurnstileEvent] = []
        with self._cond:
            if self._closed or self._latched:
                return
            self._set_locked(False)
            self._latched = True
            self._stop_signals()
            self._devices.green.on()
            self._cond.notify_all()
            log.critical("free egress restored at start: %s", why,
                         extra={"event": EventKind.FIRE_ALARM_RAISED.value})
            events.append(self._event(EventKind.FIRE_ALARM_RAISED, detail=why))
        self._dispatch(events)

    def _on_loop_closed(self) -> None:
        events: list[TurnstileEvent] = []
        with self._cond:
            if self._closed or not self._latched:
                return
            log.warning("fire loop closed again: free egress stays until a steward "
                        "acknowledges", extra={"event": EventKind.FIRE_LOOP_CLOSED.value})
            events.append(self._event(EventKind.FIRE_LOOP_CLOSED))
        self._dispatch(events)

    # --- the passage sensor -----------------------------------------------------------

    def _on_passage_edge(self) -> None:
        bounce = self._config.passage_bounce_ms / 1000
        if bounce == 0:
            self._settle_passage(None)
            return
        with self._cond:
            if self._closed:
                return
            edge_at = time.monotonic()
            self._passage_last_edge = edge_at
            if self._passage_timer is not None:
                self._passage_timer.cancel()
            timer = threading.Timer(bounce, self._settle_passage, args=(edge_at,))
            timer.daemon = True
            self._passage_timer = timer
            timer.start()

    def _settle_passage(self, edge_at: float | None) -> None:
        """Count a person once the sensor has held the active level for the bounce time."""
        events: list[TurnstileEvent] = []
        with self._cond:
            if self._closed or (edge_at is not None and edge_at != self._passage_last_edge):
                return  # a later edge restarted the bounce time
            active = bool(self._devices.passage.is_active)
            if active == self._passage_level:
                return
            self._passage_level = active
            if active:
                events.append(self._count_passage())
        self._dispatch(events)

    def _count_passage(self) -> TurnstileEvent:
        self._passages += 1
        if self._admitting and not self._passed:
            self._passed = True
            self._close_lane()
            self._cond.notify_all()
            log.info("passage counted: admitted person through, lock closed",
                     extra={"event": EventKind.PASSAGE.value})
            return self._event(EventKind.PASSAGE, detail="admitted")
        if self._latched:
            log.info("passage counted during free egress", extra={"event": "passage"})
            return self._event(EventKind.PASSAGE, detail="free egress")
        log.warning("passage counted while locked: forced or tailgating",
                    extra={"event": EventKind.PASSAGE_WITHOUT_ADMIT.value})
        return self._event(EventKind.PASSAGE_WITHOUT_ADMIT)

    # --- the relay feedback -----------------------------------------------------------

    def _on_feedback_edge(self) -> None:
        with self._cond:
            if not self._closed:
                self._schedule_feedback_check()

    def _schedule_feedback_check(self) -> None:
        if self._devices.relay_feedback is None:
            return
        if self._feedback_timer is not None:
            self._feedback_timer.cancel()
        timer = threading.Timer(self._config.relay_settle_ms / 1000, self._check_feedback)
        timer.daemon = True
        self._feedback_timer = timer
        timer.start()

    def _check_feedback(self) -> None:
        events: list[TurnstileEvent] = []
        with self._cond:
            feedback = self._devices.relay_feedback
            if self._closed or feedback is None:
                return
            commanded = bool(self._devices.lock.value)
            reported = bool(feedback.is_active)
            if commanded == reported:
                if not self._feedback_ok:
                    self._feedback_ok = True
                    log.warning("relay feedback agrees with the command again",
                                extra={"event": "relay_feedback_ok"})
            elif self._feedback_ok:
                self._feedback_ok = False
                meaning = "locked" if commanded == self._config.relay_energised_when_locked \
                    else "unlocked"
                fault = Fault(
                    kind=FaultKind.RELAY_FEEDBACK_MISMATCH,
                    message=(f"lock relay commanded {_energised(commanded)} ({meaning}) but "
                             f"its feedback contact reports {_energised(reported)} after "
                             f"{self._config.relay_settle_ms} ms: check the relay, its supply "
                             "and the feedback wiring"),
                    at=time.time())
                self._faults.append(fault)
                log.error("fault %s: %s", fault.kind.value, fault.message,
                          extra={"event": EventKind.FAULT.value, "fault": fault.kind.value})
                events.append(self._event(EventKind.FAULT, detail=fault.message, fault=fault))
        self._dispatch(events)


def _energised(value: bool) -> str:
    return "energised" if value else "de-energised"
