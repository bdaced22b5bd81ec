"""The installer: where it puts the script, what it keeps, and that the installed copy loads like in Live."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import install_remote_script as installer

ROOT = Path(__file__).resolve().parent.parent
FAKE_LIVE = ROOT / "tests" / "remote_script" / "fake_live"


def tree(folder: Path) -> dict[str, str]:
    files = (p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_default_user_library_locations_on_macos_and_windows(tmp_path: Path) -> None:
    home = Path("/Users/kim")
    assert installer.user_library_candidates("darwin", home, {}) == [home / "Music/Ableton/User Library"]
    environ = {"USERPROFILE": "C:/Users/kim", "OneDrive": "D:/OneDrive"}
    assert installer.user_library_candidates("win32", home, environ) == [
        Path("C:/Users/kim/Documents/Ableton/User Library"),
        Path("D:/OneDrive/Documents/Ableton/User Library"),
    ]
    assert installer.user_library_candidates("linux", home, {}) == []


def test_the_remote_scripts_folder_is_found_or_the_user_is_told_to_pass_dest(tmp_path: Path) -> None:
    (tmp_path / "Music/Ableton/User Library").mkdir(parents=True)
    found = installer.find_remote_scripts("darwin", tmp_path, {})
    assert found == tmp_path / "Music/Ableton/User Library/Remote Scripts"
    with pytest.raises(SystemExit) as missing:
        installer.find_remote_scripts("win32", tmp_path / "nobody", {})
    assert "--dest" in str(missing.value) and "User Library" in str(missing.value)


def test_install_copies_the_script_and_shared_and_installing_again_changes_nothing(tmp_path: Path, capsys) -> None:
    dest = tmp_path / "Remote Scripts"
    assert installer.main(["--dest", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "Restart Live" in out and "Link, Tempo & MIDI" in out and '"MidiDrumiGen"' in out
    first = tree(dest / "MidiDrumiGen")
    assert {"__init__.py", "surface.py", "settings.json", "mappings/push.json", "_vendor/shared/client.py",
            "_vendor/shared/msgpack_codec.py", installer.MARKER} <= set(first)  # fmt: skip
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in first)
    assert first["surface.py"] == hashlib.sha256((ROOT / "remote_script/surface.py").read_bytes()).hexdigest()
    assert installer.main(["--dest", str(dest)]) == 0
    assert tree(dest / "MidiDrumiGen") == first
    assert sorted(p.name for p in dest.iterdir()) == ["MidiDrumiGen"]  # no staging folder left behind


def test_reinstalling_keeps_the_users_settings_and_own_mappings(tmp_path: Path) -> None:
    installer.install(tmp_path)
    target = tmp_path / installer.NAME
    (target / "settings.json").write_text('{"mapping": "mine", "style": "jazz"}')
    (target / "mappings/mine.json").write_text('{"name": "mine", "controls": {}}')
    (target / "surface.py").write_text("stale")
    notes = installer.install(tmp_path)
    assert notes == ["kept your settings.json", "kept your mappings/mine.json"]
    assert json.loads((target / "settings.json").read_text())["style"] == "jazz"
    assert (target / "mappings/mine.json").exists()
    assert (target / "surface.py").read_text() != "stale"


def test_a_reinstall_that_cannot_put_the_new_copy_in_place_leaves_the_old_one_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old copy went first, then the staged one failed to move in, and the staged folder,
    the only other copy of the user's settings, was cleaned away: nothing was left."""
    installer.install(tmp_path)
    target = tmp_path / installer.NAME
    (target / "settings.json").write_text('{"style": "jazz"}')
    rename = Path.rename

    def held_open(self: Path, to: Path) -> Path:
        if self.name.startswith(f".{installer.NAME}-") and "-old-" not in self.name and Path(to) == target:
            raise PermissionError(13, "The process cannot access the file", str(self))
        return rename(self, to)

    monkeypatch.setattr(Path, "rename", held_open)
    with pytest.raises(PermissionError):
        installer.install(tmp_path)
    assert json.loads((target / "settings.json").read_text()) == {"style": "jazz"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [installer.NAME]  # no staged or old copy left


def test_reinstalling_keeps_a_shipped_mapping_the_user_edited_beside_the_new_one(tmp_path: Path) -> None:
    installer.install(tmp_path)
    target = tmp_path / installer.NAME
    push = target / "mappings/push.json"
    edited = push.read_text().replace('"number": 36', '"number": 44', 1)
    push.write_text(edited)
    notes = installer.install(tmp_path)
    assert notes == ['your edited mappings/push.json is kept as mappings/push-mine.json: set "mapping": '
                     '"push-mine" in settings.json to use it']
    assert (target / "mappings/push-mine.json").read_text() == edited
    assert push.read_bytes() == (ROOT / "remote_script/mappings/push.json").read_bytes()
    assert installer.install(tmp_path) == ["kept your mappings/push-mine.json"]  # now a mapping of the user's own
    push.write_text(edited.replace('"number": 44', '"number": 45', 1))  # edited again: a second copy, not lost
    assert installer.install(tmp_path) == ["kept your mappings/push-mine.json",
                                           'your edited mappings/push.json is kept as mappings/push-mine-2.json: '
                                           'set "mapping": "push-mine-2" in settings.json to use it']


def test_uninstall_removes_only_what_the_installer_put_there(tmp_path: Path, capsys) -> None:
    installer.install(tmp_path, "DrumsA")
    assert installer.main(["--dest", str(tmp_path), "--name", "DrumsA", "--uninstall"]) == 0
    assert not (tmp_path / "DrumsA").exists() and "Removed" in capsys.readouterr().out
    assert installer.main(["--dest", str(tmp_path), "--uninstall"]) == 0
    assert "Nothing to remove" in capsys.readouterr().out
    (tmp_path / "Theirs").mkdir()
    with pytest.raises(SystemExit, match="not installed by this installer"):
        installer.uninstall(tmp_path, "Theirs")
    with pytest.raises(SystemExit, match="move it away first"):
        installer.install(tmp_path, "Theirs")
    assert (tmp_path / "Theirs").exists()


def test_uninstall_keeps_the_users_own_files_beside(tmp_path: Path, capsys) -> None:
    """It deleted settings.json and the user's mappings without a word."""
    installer.install(tmp_path, "DrumsB")
    target = tmp_path / "DrumsB"
    (target / "settings.json").write_text('{"style": "jazz"}')
    (target / "mappings" / "mine.json").write_text("{}")
    assert installer.main(["--dest", str(tmp_path), "--name", "DrumsB", "--uninstall"]) == 0
    kept = tmp_path / "DrumsB settings (uninstalled)"
    assert not target.exists() and str(kept) in capsys.readouterr().out
    assert (kept / "settings.json").read_text() == '{"style": "jazz"}' and (kept / "mappings" / "mine.json").exists()
    assert not (kept / "__init__.py").exists()  # not a script Live would list
    installer.install(tmp_path, "DrumsB")  # untouched: nothing of the user's to keep, and the first copy stays
    assert installer.main(["--dest", str(tmp_path), "--name", "DrumsB", "--uninstall"]) == 0
    assert "kept" not in capsys.readouterr().out and (kept / "settings.json").read_text() == '{"style": "jazz"}'
    installer.install(tmp_path, "DrumsB")
    (target / "settings.json").write_text('{"style": "funk"}')
    installer.main(["--dest", str(tmp_path), "--name", "DrumsB", "--uninstall"])
    assert (tmp_path / "DrumsB settings (uninstalled 2)" / "settings.json").read_text() == '{"style": "funk"}'


def test_the_folder_name_must_be_importable(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as refused:
        installer.main(["--dest", str(tmp_path), "--name", "Midi-Drumi-Gen"])
    assert refused.value.code == 2 and not any(tmp_path.iterdir())


LOAD_IN_LIVE = textwrap.dedent(
    """
    import importlib.util, json, sys, time
    remote_scripts, fake_live, theirs = sys.argv[1:4]
    sys.path[:0] = [remote_scripts, fake_live, theirs]  # what Live's Python has: its stdlib and the scripts
    import shared  # another script's top-level `shared`, loaded first
    import MidiDrumiGen
    from live_host import LiveHost
    host = LiveHost(MidiDrumiGen.create_instance, tempo=100.0)
    slot = host.slot(0)
    host.select(slot)
    controls = json.load(open(f"{remote_scripts}/MidiDrumiGen/mappings/generic.json"))["controls"]
    from MidiDrumiGen.surface import ECHO_S
    time.sleep(ECHO_S)  # a press that matches a light just sent would be taken for its echo
    host.press(controls["generate"])
    host.run_until(lambda: slot.has_clip, timeout=120)
    print(json.dumps({
        "site_loaded": "site" in sys.modules,
        "site_packages": [p for p in sys.path if "site-packages" in p],
        "zmq_importable": importlib.util.find_spec("zmq") is not None,
        "shared_is_theirs": sys.modules["shared"] is shared and shared.THEIRS,
        "ours_from": sys.modules["MidiDrumiGen._vendor.shared.client"].__file__,
        "clip": slot.clip.name,
        "notes": len(slot.clip.get_all_notes_extended()),
        "status": host.c_instance.status,
    }))
    host.script.disconnect()
    """
)


def test_the_installed_copy_loads_with_only_the_standard_library_and_makes_grooves(tmp_path: Path, daemon) -> None:
    if not daemon.alive:
        daemon.start()
    dest = tmp_path / "Remote Scripts"
    installer.install(dest)
    settings = dest / installer.NAME / "settings.json"
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "endpoint": daemon.endpoint, "bars": 1}))
    theirs = tmp_path / "another script"
    (theirs / "shared").mkdir(parents=True)
    (theirs / "shared" / "__init__.py").write_text("THEIRS = True\n")
    run = subprocess.run([sys.executable, "-S", "-I", "-c", LOAD_IN_LIVE, str(dest), str(FAKE_LIVE), str(theirs)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert not seen["site_loaded"] and seen["site_packages"] == [] and not seen["zmq_importable"]
    assert seen["shared_is_theirs"]  # neither taken nor shadowed
    assert seen["ours_from"].startswith(str(dest / installer.NAME / "_vendor" / "shared"))
    assert seen["clip"] == "funk 1 bar 100 BPM" and seen["notes"] > 0
    assert seen["status"].startswith("MidiDrumiGen: funk 1 bar 100 BPM — variation 1 of")
