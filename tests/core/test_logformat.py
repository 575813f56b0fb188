"""The gate's log lines carry the fields each call gives (`extra=`): the camera's device,
a state change's from and to."""

from __future__ import annotations

import io
import logging

from portique.base.logformat import FieldsFormatter
from portique.commands.main import setup_logging


def line_of(emit: object) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(FieldsFormatter())
    log = logging.getLogger("portique.test.logformat")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        emit(log)  # type: ignore[operator]
    finally:
        log.removeHandler(handler)
    return out.getvalue()


def test_extra_fields_follow_the_message() -> None:
    line = line_of(lambda log: log.info("frame source state", extra={
        "source": "CameraSource", "from": "ok", "to": "lost"}))
    assert line.rstrip().endswith(
        "portique.test.logformat: frame source state source=CameraSource from=ok "
        "to=lost")
    line = line_of(lambda log: log.warning("camera lost", extra={"device": "/dev/video0"}))
    assert "camera lost device=/dev/video0" in line


def test_values_with_spaces_are_quoted_and_tracebacks_stay_below() -> None:
    line = line_of(lambda log: log.info("x", extra={"reason": 'no "zbar" here'}))
    assert line.rstrip().endswith('x reason="no \\"zbar\\" here"')

    def failing(log: logging.Logger) -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("frame source failed", extra={"source": "ClipSource"})

    lines = line_of(failing).splitlines()
    assert lines[0].endswith("frame source failed source=ClipSource")
    assert lines[-1] == "ValueError: boom"
    assert line_of(lambda log: log.info("plain")).rstrip().endswith(": plain")


def test_the_gates_own_setup_uses_it() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    for handler in before:
        root.removeHandler(handler)
    try:
        setup_logging("INFO")
        assert any(isinstance(h.formatter, FieldsFormatter) for h in root.handlers)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in before:
            root.addHandler(handler)
