"""Opening the pin factory the config names, and only that one.

gpiozero, left to itself, tries one pin library after another (and honours the
``GPIOZERO_PIN_FACTORY`` environment variable). A gate must not: a config that says
``lgpio`` gets lgpio or a ``PinFactoryError`` that says what to check, never simulated pins
that would make a gate look healthy while its lock is not driven.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

from portique.hardware.config import PinFactoryName
from portique.hardware.errors import PinFactoryError

log = logging.getLogger(__name__)

_LGPIO_CHECKS = ("check that this is a Raspberry Pi with /dev/gpiochip*, that this user may "
                 "open it (group gpio), and that no other process (the gate service during a "
                 "`gate hw test`?) holds the pins")


def open_pin_factory(name: PinFactoryName) -> Any:
    """A new gpiozero pin factory of the named kind; the caller closes it."""
    if name is PinFactoryName.MOCK:
        from gpiozero.pins.mock import MockFactory

        log.warning("pin factory mock: simulated pins, nothing is wired",
                    extra={"pin_factory": name.value})
        return MockFactory()
    if name is PinFactoryName.LGPIO:
        # lgpio makes a notification pipe in its working folder (LG_WD, else the current
        # folder) when imported; under systemd's read-only file system that must be a
        # writable folder: the service's runtime directory, else the temporary folder.
        os.environ.setdefault("LG_WD", os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
                              or tempfile.gettempdir())
        try:
            from gpiozero.pins.lgpio import LGPIOFactory
        except Exception as exc:  # ImportError, or OSError from lgpio's own start-up
            raise PinFactoryError(
                f"pin factory lgpio: the lgpio library cannot be imported ({exc}); on a "
                "Raspberry Pi install it (pip install 'portique[pi]' or apt install "
                "python3-lgpio); a test or demo config must say pin_factory = \"mock\""
            ) from exc
        try:
            factory = LGPIOFactory()
        except Exception as exc:  # lgpio.error, OSError, gpiozero's PinError: all mean the same
            raise PinFactoryError(
                f"pin factory lgpio: cannot open the GPIO chip ({type(exc).__name__}: {exc}); "
                f"{_LGPIO_CHECKS}") from exc
        log.info("pin factory lgpio opened", extra={"pin_factory": name.value})
        return factory
    raise PinFactoryError(f"pin factory {name!r}: unknown")  # pragma: no cover
