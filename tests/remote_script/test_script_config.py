"""settings.json and the mapping files: the shipped ones load, hand-edited mistakes are explained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from remote_script import surface
from remote_script.mapping import MappingError, load_mapping, parse_mapping
from remote_script.settings import Settings, load_settings


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "settings.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_the_shipped_settings_are_the_defaults_and_work_against_drumigen_serve() -> None:
    settings, problems = load_settings(surface.SETTINGS_FILE)
    assert problems == []
    assert settings == Settings()
    assert settings.endpoint == "tcp://127.0.0.1:5555" and settings.mapping == "generic"


def test_a_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "absent.json") == (Settings(), [])


def test_valid_values_are_taken(tmp_path: Path) -> None:
    path = write(tmp_path, {"style": "jazz", "bars": 8, "temperature": 1, "density": 0.25, "complexity": 1,
                            "guidance": 1.5, "strength": 2, "top_p": 0.8,
                            "kit": {"36": 35, "38": 40}, "endpoint": "tcp://[::1]:6000", "fill_every": 4})  # fmt: skip
    settings, problems = load_settings(path)
    assert problems == []
    assert (settings.style, settings.bars, settings.density, settings.fill_every) == ("jazz", 8, 0.25, 4)
    assert settings.temperature == 1.0 and isinstance(settings.temperature, float) and settings.guidance == 1.5
    assert settings.kit == {"36": 35, "38": 40} and settings.endpoint == "tcp://[::1]:6000"
    assert settings.strength == 2 and settings.complexity == 1 and settings.top_p == 0.8


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"bars": 0}, "bars must be between 1 and 16; using 4"),
        ({"bars": 2.5}, "bars must be a whole number; using 4"),
        ({"temperature": "hot"}, "temperature must be a number; using 1.0"),
        ({"density": 1.5}, "density must be between 0 and 1; using None"),
        ({"guidance": 3}, "guidance must be between 0 and 2; using 1.0"),
        ({"strength": 5}, "strength must be between 0 and 4; using None"),
        ({"complexity": -0.1}, "complexity must be between 0 and 1; using None"),
        ({"top_p": 0}, "top_p must be between 0.01 and 1; using 0.95"),
        ({"endpoint": "localhost:5555"}, "endpoint must look like tcp://127.0.0.1:5555 (IPv6: tcp://[::1]:5555)"),
        ({"endpoint": "tcp://studio-mac.local:5555"}, "endpoint must name the daemon's computer by its IP address"),
        ({"kit": {"kick": 36}}, 'kit must be a kit name such as "gm"'),
        ({"kit": {"36": "40"}}, 'kit must be a kit name such as "gm"'),  # the daemon refused every request
        ({"kit": {"36": 40.0}}, 'kit must be a kit name such as "gm"'),
        ({"kit": {"²": 40}}, 'kit must be a kit name such as "gm"'),  # a digit to str.isdigit, not to int()
        ({"retries": True}, "retries must be a whole number"),
        ({"humanize_chance": "yes"}, "humanize_chance must be true or false; using False"),
        ({"colour": "red"}, "unknown setting 'colour' ignored"),
    ],
)
def test_bad_values_fall_back_to_the_default_with_a_reason(tmp_path: Path, raw: dict, expected: str) -> None:
    settings, problems = load_settings(write(tmp_path, raw))
    assert len(problems) == 1 and expected in problems[0]
    assert settings == Settings()


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "[" * 100_000])
def test_an_unreadable_file_gives_the_defaults_with_a_reason(tmp_path: Path, text: str) -> None:
    settings, problems = load_settings(write(tmp_path, text))
    assert settings == Settings() and "using the defaults" in problems[0]


@pytest.mark.parametrize("endpoint", ["tcp://LocalHost:5555", "tcp://10.0.0.7:5555", "tcp://[::1]:5555"])
def test_an_endpoint_by_address_or_localhost_is_taken(tmp_path: Path, endpoint: str) -> None:
    settings, problems = load_settings(write(tmp_path, {"endpoint": endpoint}))
    assert problems == [] and settings.endpoint == endpoint


def test_the_shipped_mappings_load() -> None:
    generic = load_mapping("generic", surface.MAPPINGS_FOLDER)
    push = load_mapping("push", surface.MAPPINGS_FOLDER)
    assert generic.action_for("cc", 15, 102) == "generate"
    assert push.action_for("note", 0, 36) == push.action_for("note", 13, 36) == "generate"
    assert push.action_for("cc", 0, 44) == "previous_style"
    assert push.control_for("generate").led_message(busy=True) == (0x99, 36, 127)
    assert push.control_for("next_style").led_message(busy=False) == (0xB0, 45, 48)


def test_a_style_is_named_as_the_daemon_names_it(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"style": " Funk "}))
    assert load_settings(path) == (Settings(style="funk"), [])
    path.write_text(json.dumps({"style": "  "}))
    assert load_settings(path) == (Settings(), ["settings.json: style must be a non-empty string; using 'funk'"])


def test_a_file_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Windows Notepad's "UTF-8 with BOM": every setting was lost to a JSON error."""
    path = tmp_path / "settings.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"style": "jazz"}).encode())
    assert load_settings(path) == (Settings(style="jazz"), [])
    (tmp_path / "mine.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(
        {"controls": {"fill": {"type": "cc", "channel": 0, "number": 1}}}).encode())
    assert load_mapping("mine", tmp_path).action_for("cc", 0, 1) == "fill"


@pytest.mark.parametrize("spec", ["mine", "mine.json", "mine.JSON"])
def test_a_mapping_in_the_mappings_folder_by_its_name_with_or_without_json(tmp_path: Path, spec: str) -> None:
    (tmp_path / "mine.json").write_text(json.dumps({"controls": {"fill": {"type": "cc", "channel": 0, "number": 1}}}))
    assert load_mapping(spec, tmp_path).action_for("cc", 0, 1) == "fill"


def test_a_mapping_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "mine", "controls": {"fill": {"type": "note", "channel": 3, "number": 60}}}))
    mapping = load_mapping(str(path), surface.MAPPINGS_FOLDER)
    assert mapping.name == "mine" and mapping.action_for("note", 3, 60) == "fill"
    assert mapping.control_for("fill").led_message(busy=False) is None  # no leds: nothing sent back


def test_a_mapping_under_a_home_folder_that_does_not_exist_is_named_not_raised() -> None:
    """Path.expanduser raises RuntimeError for "~someone/..." of an unknown user: it escaped
    create_instance, and Live did not load the script at all."""
    with pytest.raises(MappingError, match="'~nosuchuser8472/push.json' could not be found"):
        load_mapping("~nosuchuser8472/push.json", surface.MAPPINGS_FOLDER)


@pytest.mark.parametrize(
    "controls, expected",
    [
        ({"generat": {"type": "cc", "channel": 0, "number": 1}}, "generat: unknown action; known actions: generate, "),
        ({"fill": {"type": "pitchbend", "channel": 0, "number": 1}}, 'type must be "cc" or "note"'),
        ({"fill": {"type": "cc", "channel": 16, "number": 1}}, "channel must be 0-15, got 16"),
        ({"fill": {"type": "cc", "channel": "any", "number": 1}}, "channel must be 0-15, got 'any'"),
        ({"fill": {"type": "note", "channel": 0, "number": 128}}, "number must be 0-127"),
        ({"fill": {"type": "note", "channel": "any", "number": 36},
          "humanize": {"type": "note", "channel": 4, "number": 36}}, "humanize: note 36 on channel 4 is already fill"),
        ({"fill": {"type": "cc", "channel": 0, "number": 1, "leds": {"idle": 200, "busy": 0}}}, "leds: expected"),
    ],
)  # fmt: skip
def test_mapping_mistakes_are_named(controls: dict, expected: str) -> None:
    with pytest.raises(MappingError) as caught:
        parse_mapping({"name": "x", "controls": controls}, "x.json")
    assert expected in str(caught.value)


def test_a_setting_given_twice_is_reported_and_the_last_counts(tmp_path: Path) -> None:
    """JSON keeps the last of two keys without a word: a user who added "style": "jazz" at the
    end, forgetting the one at the top, should hear which one Live plays."""
    path = tmp_path / "settings.json"
    path.write_text('{"style": "funk", "bars": 8, "kit": {"36": 35, "36": 36}, "style": "jazz"}')
    settings, problems = load_settings(path)
    assert (settings.style, settings.bars, settings.kit) == ("jazz", 8, {"36": 36})
    assert problems == ["settings.json: the key '36' is given twice in one object; the last one counts",  # inner first
                        "settings.json: the key 'style' is given twice in one object; the last one counts"]


def test_a_mapping_naming_an_action_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.json").write_text('{"controls": {"fill": {"type": "cc", "channel": 0, "number": 1}, '
                                        '"fill": {"type": "cc", "channel": 0, "number": 2}}}')
    with pytest.raises(MappingError, match="mapping mine.json gives the key 'fill' twice in one object"):
        load_mapping("mine", tmp_path)
