"""Secrets systemd hands the service (LoadCredential= in systemd/gate.service).

systemd copies each into a folder only the service's user can read, on a read-only file
system, and names the folder in $CREDENTIALS_DIRECTORY. Outside systemd (tests, a gate
run by hand) there is none and the callers fall back to their configured files.
"""

from __future__ import annotations

import os
from pathlib import Path

from portique.base.errors import ConfigError


def credential_path(name: str) -> Path | None:
    """Where systemd put the credential `name`, or None (no credentials, or not that one)."""
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if not folder:
        return None
    path = Path(folder) / name
    return path if os.path.lexists(path) else None


def read_credential(name: str) -> str | None:
    """The credential `name` as text, stripped, or None when systemd gave none."""
    path = credential_path(name)
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"systemd credential {name}: cannot read: {exc.strerror}") from None
