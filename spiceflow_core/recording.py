"""``spiceflow record`` and ``spiceflow replay`` (see issue 8)."""

from __future__ import annotations


def add_recording_commands(sub, common) -> None:
    return None


RECORDING_COMMANDS: dict = {}
