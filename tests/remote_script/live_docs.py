"""The project's shared Live API notes, beside the repository: what the fake and the script are checked against."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[3] / "shared" / "docs"
EXTRACT = DOCS / "live12-api-extract.txt"
FIELD_NOTES = DOCS / "field-notes.md"
needs_docs = pytest.mark.skipif(not EXTRACT.exists(), reason="the shared docs are not beside this checkout")


def extract_names() -> set[str]:
    """Every dotted name in live12-api-extract.txt, e.g. "Live.Clip.Clip.add_new_notes"."""
    return set(re.findall(r"^(Live\.[A-Za-z0-9_.]+?)(?:\(\))? \(", EXTRACT.read_text(), re.M))
