"""The script's shipped mapping files, so tests press buttons by action name like a user would."""

from __future__ import annotations

import json

from remote_script import surface


def controls(name: str = "generic") -> dict[str, dict]:
    """{action: {"type", "channel", "number", ...}} of a shipped mapping."""
    return json.loads((surface.MAPPINGS_FOLDER / f"{name}.json").read_text())["controls"]
