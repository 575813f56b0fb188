"""The ``[hardware]`` table of the gate config: which pins, which logic levels, which timings.

docs/wiring.md shows the wiring each key describes. Three keys have no default because a
wrong guess is dangerous: ``pin_factory`` (a default could run a real gate on simulated
pins), ``on_stop`` (what the lock does when the gate stops must match its wiring) and
``lock_active_high`` (an inverted relay opens the lock when it should close it).

The lock relay's *rest* state is the ``on_stop`` state: the software de-energises the relay
to stop, and a dead computer, a crashed process and a power cut de-energise it too, so all
four end the same way. Hence ``fail_safe`` means "energise the relay to lock" and
``fail_secure`` means "energise the relay to unlock".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields

from portique.base.configschema import setting
from portique.base.errors import ConfigError

MAX_BCM_PIN = 27
"""Highest BCM GPIO number on the Raspberry Pi's 40-pin header."""


class PinFactoryName(enum.StrEnum):
    LGPIO = "lgpio"
    """The real pins of a Raspberry Pi, through the lgpio library (/dev/gpiochip*)."""
    MOCK = "mock"
    """gpiozero's simulated pins: tests and demos only; nothing is wired."""


class StopState(enum.StrEnum):
    FAIL_SAFE = "fail_safe"
    """Stopped, crashed or unpowered, the lock is free: people can walk through."""
    FAIL_SECURE = "fail_secure"
    """Stopped, crashed or unpowered, the lock holds: nobody passes without a key."""


class RedLight(enum.StrEnum):
    STEADY = "steady"
    """The red light stays on for the whole pattern."""
    BLINK = "blink"
    """The red light blinks in step with the buzzer."""


@dataclass(frozen=True)
class PinsSection:
    lock: int = setting(description="Output to the lock relay's input (BCM GPIO number)",
                        minimum=0, maximum=MAX_BCM_PIN)
    green: int = setting(description="Output to the green light or its relay (BCM GPIO number)",
                         minimum=0, maximum=MAX_BCM_PIN)
    red: int = setting(description="Output to the red light or its relay (BCM GPIO number)",
                       minimum=0, maximum=MAX_BCM_PIN)
    buzzer: int = setting(description="Output to the buzzer or its relay (BCM GPIO number)",
                          minimum=0, maximum=MAX_BCM_PIN)
    passage: int = setting(description="Input from the passage sensor: arm rotation switch "
                           "or beam (BCM GPIO number)", minimum=0, maximum=MAX_BCM_PIN)
    fire_loop: int = setting(description="Input from the fire-alarm loop, normally closed to "
                             "ground; open means alarm (BCM GPIO number)",
                             minimum=0, maximum=MAX_BCM_PIN)
    relay_feedback: int | None = setting(
        None, description="Input from the lock relay's auxiliary contact, closed to ground "
        "(with relay_feedback_pull_up) while the relay is energised; leave out if not wired "
        "(BCM GPIO number)", minimum=0, maximum=MAX_BCM_PIN)

    def __post_init__(self) -> None:
        seen: dict[int, str] = {}
        for spec in fields(self):
            number = getattr(self, spec.name)
            if number is None:
                continue
            if number in seen:
                raise ConfigError(f"hardware.pins.{spec.name}: GPIO{number} is already used "
                                  f"by hardware.pins.{seen[number]}")
            seen[number] = spec.name

    def named(self) -> dict[str, int]:
        """Every wired pin by its key name, in wiring order."""
        return {spec.name: getattr(self, spec.name) for spec in fields(self)
                if getattr(self, spec.name) is not None}


@dataclass(frozen=True)
class SignalPattern:
    beeps: int = setting(description="How many beeps", minimum=1, maximum=10)
    on_ms: int = setting(description="Length of one beep, milliseconds",
                         minimum=20, maximum=5000)
    off_ms: int = setting(description="Silence after each beep, milliseconds",
                          minimum=20, maximum=5000)
    red: RedLight = setting(RedLight.STEADY, description="The red light during the pattern: "
                            "steady (on throughout) or blink (in step with the buzzer)")

    @property
    def duration_s(self) -> float:
        """How long the whole pattern lasts, in seconds."""
        return self.beeps * (self.on_ms + self.off_ms) / 1000


def _refuse_pattern() -> SignalPattern:
    return SignalPattern(beeps=1, on_ms=600, off_ms=900, red=RedLight.STEADY)


def _steward_pattern() -> SignalPattern:
    return SignalPattern(beeps=3, on_ms=150, off_ms=150, red=RedLight.BLINK)


def _accessible_pattern() -> SignalPattern:
    return SignalPattern(beeps=2, on_ms=300, off_ms=200)


@dataclass(frozen=True)
class HardwareConfig:
    pin_factory: PinFactoryName = setting(
        description="lgpio (a Raspberry Pi's real pins) or mock (simulated pins, for tests and "
        "demos only). No default: a gate that cannot open its pins stops, it never simulates")
    on_stop: StopState = setting(
        description="What the lock does when the gate stops, crashes or loses power: "
        "fail_safe (free) or fail_secure (locked). Must match the wiring (docs/wiring.md): "
        "the relay is de-energised in this state")
    lock_active_high: bool = setting(
        description="true if the relay board energises the lock relay on a high pin; false "
        "for the common active-low boards (energised on a low pin)")
    pins: PinsSection = setting(description="Which GPIO each device is wired to")
    signals_active_high: bool = setting(
        True, description="true if the lights and buzzer turn on with a high pin; false if "
        "they hang off an active-low relay board")
    passage_pull_up: bool = setting(
        True, description="true: the passage sensor closes to ground (internal pull-up, "
        "active low); false: it drives the pin high (internal pull-down, active high)")
    passage_bounce_ms: int = setting(
        20, description="The passage sensor must hold a new level this long before it counts, "
        "milliseconds (0: count on the first edge)", minimum=0, maximum=500)
    relay_feedback_pull_up: bool = setting(
        True, description="true: the feedback contact closes to ground while the relay is "
        "energised; false: it drives the pin high")
    relay_settle_ms: int = setting(
        100, description="How long after a command the relay feedback must agree, "
        "milliseconds", minimum=10, maximum=2000)
    open_timeout_s: float = setting(
        8.0, description="How long the lock stays open for one admitted person who does not "
        "pass, seconds (the admission is then void)", minimum=1.0, maximum=120.0)
    refuse: SignalPattern = setting(
        default_factory=_refuse_pattern,
        description="Buzzer and red light for a refused code")
    steward: SignalPattern = setting(
        default_factory=_steward_pattern,
        description="Buzzer and red light that call the steward")
    accessible: SignalPattern = setting(
        default_factory=_accessible_pattern,
        description="Buzzer at an accessible lane's longer opening for an ACCESSIBLE ticket "
        "(the green light stays on; the red key is not used)")

    def __post_init__(self) -> None:
        if self.refuse == self.steward:
            raise ConfigError("hardware.steward: must differ from hardware.refuse, so that "
                              "people and stewards can tell the two apart")

    @property
    def relay_energised_when_locked(self) -> bool:
        """True when energising the lock relay locks (fail-safe), False when it unlocks."""
        return self.on_stop is StopState.FAIL_SAFE
