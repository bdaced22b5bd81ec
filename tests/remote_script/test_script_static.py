"""What Live's embedded Python allows: the standard library, `Live`, our own `shared` copy, and Live API names that exist."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from live_docs import extract_names

import remote_script

PACKAGE = Path(remote_script.__file__).resolve().parent
SOURCES = sorted(PACKAGE.glob("*.py"))

# Variables that hold Live objects in the script, and what an attribute of one leads to.
LOM_VARIABLES = {"song": "Live.Song.Song", "slot": "Live.ClipSlot.ClipSlot", "clip": "Live.Clip.Clip",
                 "track": "Live.Track.Track", "live_note": "Live.Clip.MidiNote"}  # fmt: skip
LOM_LEADS_TO = {
    "Live.Song.Song.view": "Live.Song.Song.View",
    "Live.ClipSlot.ClipSlot.clip": "Live.Clip.Clip",
    "Live.ClipSlot.ClipSlot.canonical_parent": "Live.Track.Track",
}


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module)
    return names


def test_only_the_standard_library_and_live_are_imported_and_shared_only_through_wire() -> None:
    """Live runs every control surface script in one Python: an absolute `import shared` could
    get another script's package, so the script reaches its own copy through wire.py alone."""
    assert len(SOURCES) >= 10
    outside = {
        f"{path.name}: {name}"
        for path in SOURCES
        for name in imported_modules(path)
        if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "Live"
    }
    assert not outside


def test_shared_imports_only_the_standard_library_and_itself_relatively() -> None:
    """So that the installer's copy, imported as MidiDrumiGen._vendor.shared, is whole on its own."""
    sources = sorted((PACKAGE.parent / "shared").glob("*.py"))
    assert len(sources) >= 5
    outside = {f"{path.name}: {name}" for path in sources for name in imported_modules(path)
               if name.split(".")[0] not in sys.stdlib_module_names}  # fmt: skip
    assert not outside


def test_no_threads_or_blocking_sleeps_in_the_script() -> None:
    """Ableton's scripts never use threads; the script's only clock is Live's tick."""
    text = "\n".join(path.read_text() for path in SOURCES)
    assert "threading" not in text and "time.sleep" not in text and ".call(" not in text


def lom_references(path: Path) -> set[str]:
    """Every Live API name the file uses: `Live.X.Y` paths and attributes of LOM variables."""
    found: set[str] = set()

    def resolve(node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return LOM_VARIABLES.get(node.id) or ("Live" if node.id == "Live" else None)
        if isinstance(node, ast.Attribute):
            owner = resolve(node.value)
            if owner is None:
                return None
            name = f"{owner}.{node.attr}"
            found.add(name)
            return LOM_LEADS_TO.get(name, name if owner == "Live" or owner.count(".") == 1 else None)
        return None

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):
            resolve(node)
    return {name for name in found if name.count(".") >= 2}


def test_every_live_api_name_the_script_uses_is_in_the_api_extract() -> None:
    used = set().union(*(lom_references(path) for path in SOURCES))
    assert {"Live.Clip.MidiNoteSpecification", "Live.Song.Song.View.highlighted_clip_slot",
            "Live.Clip.Clip.add_new_notes", "Live.MidiMap.forward_midi_note"} <= used  # fmt: skip
    assert not sorted(used - extract_names())


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_module_says_why_it_exists(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring and len(docstring) > 40
