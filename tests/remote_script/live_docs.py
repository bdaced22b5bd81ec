"""What the fake and the script are checked against: Live 12.1's own API doc strings and the
project's field notes, copied from the shared reference docs into api_docs/, so that every
checkout runs these checks (they were skipped where the shared docs were not beside it)."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent / "api_docs"
EXTRACT = DOCS / "live12-api-extract.txt"
FIELD_NOTES = DOCS / "field-notes.md"


def extract_names() -> set[str]:
    """Every dotted name in live12-api-extract.txt, e.g. "Live.Clip.Clip.add_new_notes"."""
    return set(re.findall(r"^(Live\.[A-Za-z0-9_.]+?)(?:\(\))? \(", EXTRACT.read_text(), re.M))
