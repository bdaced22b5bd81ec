#!/usr/bin/env python3
"""Install the MidiDrumiGen Remote Script into Ableton Live 12's User Library (standard library only).

    python install_remote_script.py                 # the User Library's "Remote Scripts" folder
    python install_remote_script.py --dest FOLDER   # any "Remote Scripts" folder
    python install_remote_script.py --uninstall

The script lands in <Remote Scripts>/MidiDrumiGen with the wire-protocol client (`shared/`) in
its `_vendor/` folder, which the script imports under its own name (remote_script/wire.py),
never as a top-level `shared` another script could own. Installing again replaces the
script but keeps the user's settings.json and any mapping files they added.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

NAME = "MidiDrumiGen"
REPO = Path(__file__).resolve().parent
SOURCES = {"": REPO / "remote_script", "_vendor/shared": REPO / "shared"}
MARKER = "installed.json"  # proves a folder is ours before --uninstall deletes it
KEPT = ("settings.json",)  # the user's edits survive a reinstall
EXIT_OK = 0

NEXT_STEPS = """\
Next steps:
  1. Restart Live (it looks for Remote Scripts only when it starts).
  2. Open Settings/Preferences → Link, Tempo & MIDI.
  3. In an empty Control Surface slot choose "{name}", and set its Input (and Output, for
     button lights) to your controller — for Push 2/3: its User port, with Push in User Mode
     and "mapping": "push" in {settings}.
  4. Start the daemon: drumigen serve
  5. Highlight an empty slot in a MIDI track and press the generate button."""


def user_library_candidates(platform: str, home: Path, environ: dict[str, str]) -> list[Path]:
    """Where Live 12 keeps the User Library by default on this platform, most likely first."""
    if platform == "darwin":
        return [home / "Music" / "Ableton" / "User Library"]
    if platform == "win32":
        profile = Path(environ.get("USERPROFILE", str(home)))
        candidates = [profile / "Documents" / "Ableton" / "User Library"]
        if environ.get("OneDrive"):  # Documents redirected to OneDrive
            candidates.append(Path(environ["OneDrive"]) / "Documents" / "Ableton" / "User Library")
        return candidates
    return []


def find_remote_scripts(platform: str = sys.platform, home: Path | None = None, environ: dict | None = None) -> Path:
    """The User Library's "Remote Scripts" folder; SystemExit with advice when there is none."""
    environ = dict(os.environ if environ is None else environ)
    candidates = user_library_candidates(platform, home or Path.home(), environ)
    for library in candidates:
        if library.is_dir():
            return library / "Remote Scripts"
    looked = "\n  ".join(str(c) for c in candidates) or "(Live runs on macOS and Windows only)"
    raise SystemExit(
        f"Could not find Live's User Library; looked in:\n  {looked}\n"
        "If you moved it (Live: Settings → Library), run again with\n"
        "  --dest \"<your User Library>/Remote Scripts\""
    )


def install(remote_scripts: Path, name: str = NAME) -> list[str]:
    """Copy the script into remote_scripts/name, replacing an older copy; returns notes for the user."""
    remote_scripts.mkdir(parents=True, exist_ok=True)
    target = remote_scripts / name
    if target.exists() and not (target / MARKER).exists():
        raise SystemExit(f"{target} exists and was not installed by this installer; move it away first")
    notes = []
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=remote_scripts))
    try:
        for inside, source in SOURCES.items():
            shutil.copytree(source, staging / inside, dirs_exist_ok=True, ignore=_ignore)
        for kept in _user_files(target):
            relative = kept.relative_to(target)
            if not (staging / relative).exists() or (staging / relative).read_bytes() != kept.read_bytes():
                shutil.copy2(kept, staging / relative)
                notes.append(f"kept your {relative.as_posix()}")
        for edited in _edited_mappings(target):  # a shipped mapping the user changed: theirs is kept beside it
            copies = (staging / "mappings" / f"{edited.stem}-mine{'' if k == 1 else f'-{k}'}.json"
                      for k in itertools.count(1))
            mine = next(c for c in copies if not c.exists() or c.read_bytes() == edited.read_bytes())
            if not mine.exists():
                shutil.copy2(edited, mine)
                notes.append(f"your edited mappings/{edited.name} is kept as mappings/{mine.name}: "
                             f'set "mapping": "{mine.stem}" in settings.json to use it')
        shipped = {p.name: _sha256(p) for p in sorted((staging / "mappings").glob("*.json"))
                   if (REPO / "remote_script" / "mappings" / p.name).exists()}
        (staging / MARKER).write_text(json.dumps({"name": name, "source": str(REPO), "mappings": shipped},
                                                 indent=2) + "\n")
        _swap_in(staging, target, notes)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return notes


def _swap_in(staging: Path, target: Path, notes: list[str]) -> None:
    """Put `staging` where `target` is, the old copy moved aside first and deleted only once the
    new one is in place: a delete that fails half-way (a file held open on Windows) must not take
    the user's settings, whose only other copy is in `staging`, with it."""
    if not target.exists():
        staging.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
    old.rmdir()  # a free name beside the target, for the old copy to move to
    target.rename(old)
    try:
        staging.rename(target)
    except OSError:
        old.rename(target)  # as it was
        raise
    shutil.rmtree(old, ignore_errors=True)
    if old.exists():
        notes.append(f"could not delete the previous copy, now at {old}: delete it when Live is closed")


def uninstall(remote_scripts: Path, name: str = NAME) -> tuple[bool, Path | None]:
    """Remove remote_scripts/name if this installer put it there (False if it is not installed),
    keeping the user's own files (settings, mappings added or edited) in a folder beside it,
    which is returned: an uninstall deleted them without a word."""
    target = remote_scripts / name
    if not target.exists():
        return False, None
    if not (target / MARKER).exists():
        raise SystemExit(f"{target} was not installed by this installer; not removing it")
    shipped = REPO / "remote_script"
    own = [path for path in _user_files(target) + _edited_mappings(target)  # as shipped: nothing to keep
           if not ((shipped / path.relative_to(target)).is_file() and
                   _sha256(shipped / path.relative_to(target)) == _sha256(path))]
    kept = None
    if own:  # a folder of its own each time (an earlier one may hold older edits); not a package: Live passes it by
        kept = next(folder for n in itertools.count(1)
                    if not (folder := remote_scripts / f"{name} settings (uninstalled{f' {n}' if n > 1 else ''})").exists())
        for path in own:
            (kept / path.relative_to(target)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, kept / path.relative_to(target))
    shutil.rmtree(target)
    return True, kept


def _user_files(target: Path) -> list[Path]:
    """Files of an existing install the user owns: settings, and mappings they added."""
    if not target.exists():
        return []
    files = [target / kept for kept in KEPT if (target / kept).exists()]
    shipped = {p.name for p in (REPO / "remote_script" / "mappings").glob("*.json")}
    files += [p for p in (target / "mappings").glob("*.json") if p.name not in shipped]
    return files


def _edited_mappings(target: Path) -> list[Path]:
    """Shipped mappings of an existing install that differ from what was installed (from an
    install that recorded no hashes: from what this one ships, so an older version's file is
    kept too, once: better a spare copy than a user's edit lost)."""
    if not target.exists():
        return []
    try:
        installed = json.loads((target / MARKER).read_text()).get("mappings", {})
    except (OSError, ValueError, AttributeError):
        installed = {}
    edited = []
    for source in sorted((REPO / "remote_script" / "mappings").glob("*.json")):
        current = target / "mappings" / source.name
        if current.exists() and _sha256(current) != installed.get(source.name, _sha256(source)):
            edited.append(current)
    return edited


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ignore(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install the MidiDrumiGen Remote Script for Ableton Live 12.")
    parser.add_argument("--dest", type=Path, help='a "Remote Scripts" folder (default: the User Library\'s)')
    parser.add_argument("--name", default=NAME, help=f"folder name, shown as the Control Surface (default {NAME})")
    parser.add_argument("--uninstall", action="store_true", help="remove the installed script")
    args = parser.parse_args(argv)
    if not args.name.isidentifier():
        parser.error(f"--name must be a valid Python identifier (Live imports the folder), got {args.name!r}")
    remote_scripts = args.dest.expanduser() if args.dest else find_remote_scripts()
    target = remote_scripts / args.name
    if args.uninstall:
        removed, kept = uninstall(remote_scripts, args.name)
        if removed:
            print(f"Removed {target}\nRestart Live so that it forgets the script.")
            if kept is not None:
                print(f"Your settings and mappings are kept in {kept}: copy them back after a reinstall.")
        else:
            print(f"Nothing to remove at {target}")
        return EXIT_OK
    for note in install(remote_scripts, args.name):
        print(note)
    print(f"Installed {args.name} into {target}\n")
    print(NEXT_STEPS.format(name=args.name, settings=target / "settings.json"))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
