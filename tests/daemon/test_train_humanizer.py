"""Training the humanizer: the statistics it fits beside its weights, and the command that runs it."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.cli import main
from daemon.humanize import PIECES, Humanizer
from daemon.train_humanizer import Performance, level_fit, repeat_spread, velocity_floor
from tests.support import GROOVE_MINI


def test_level_fit_recovers_how_far_levels_follow_the_model():
    """Synthetic takes whose velocities follow the model's lilt by half, plus scatter of std 2
    where the model's scale says 4: follow 0.5, scatter 0.5. Without a level of two notes: no lilt."""
    rng = np.random.default_rng(1)
    takes, heads, at = [], [], []
    for index in range(8):
        lilt = rng.normal(0, 10, 60)
        loud = np.arange(60) % 3 == 0
        velocities = np.where(loud, 110.0, 70.0) + 0.5 * lilt + rng.normal(0, 2, 60)
        takes.append(Performance(np.full(60, 42), np.arange(60) / 4, velocities, 0, 120.0, (4, 4), 16.0, "beat"))
        heads.append(np.stack([np.zeros(60), np.zeros(60), (90 + lilt) / 127,
                               np.full(60, np.log(4 / (np.sqrt(2) * 127)))], 1))
        at.append(np.stack([np.full(60, index), np.arange(60)], 1))
    follow, scatter = level_fit(takes, np.concatenate(heads), np.concatenate(at))
    assert follow == pytest.approx(0.5, abs=0.03) and scatter == pytest.approx(0.5, abs=0.05)
    alone = [Performance(np.array([42]), np.zeros(1), np.array([90.0]), 0, 120.0, (4, 4), 4.0, "beat")]
    assert level_fit(alone, np.zeros((1, 4)), np.zeros((1, 2), dtype=int)) == [0.0, 1.0]


def test_repeat_spread_is_the_bar_to_bar_velocity_change():
    """A beat whose hats alternate 80/100 from bar to bar changes by 20: a std of 20 / sqrt(2) (/127);
    a kick that never changes has none; pieces without pairs get the pooled value."""
    starts, pitches, velocities = [], [], []
    for bar in range(8):
        for beat in range(4):
            starts += [bar * 4 + beat, bar * 4 + beat]
            pitches += [42, 36]
            velocities += [80 if bar % 2 else 100, 110]
    perf = Performance(np.array(pitches), np.array(starts, dtype=float), np.array(velocities, dtype=float),
                       0, 120.0, (4, 4), 32.0, "beat")
    spread = repeat_spread([perf], min_pairs=10)
    assert spread[PIECES.index(42)] == pytest.approx(1.4826 * 20 / np.sqrt(2) / 127, abs=1e-4)
    assert spread[PIECES.index(36)] == 0.0
    assert spread[PIECES.index(38)] == spread[-1] > 0  # pooled


def test_cli_train_humanizer_writes_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "h.pt"
    assert main(["train-humanizer", "--data", str(GROOVE_MINI), "--out", str(out), "--epochs", "1"]) == 0
    assert Humanizer.load(out).meta["epochs_run"] == 1 and "validation offset MAE" in capsys.readouterr().out


def test_cli_train_humanizer_refuses_what_would_crash_after_reading_the_data(tmp_path, capsys):
    """--epochs 0 was a TypeError traceback after the fit; an unwritable --out came after it too."""
    with pytest.raises(SystemExit) as stop:
        main(["train-humanizer", "--data", str(GROOVE_MINI), "--epochs", "0"])
    assert stop.value.code == 2 and "--epochs: must be 1..1000, got 0" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("")
    assert main(["train-humanizer", "--data", str(GROOVE_MINI), "--out", str(tmp_path / "a-file" / "h.pt")]) == 1
    assert capsys.readouterr().err.startswith("drumigen: ")


def test_velocity_floor_is_each_pieces_first_percentile_where_it_is_played_enough():
    hats = np.arange(1, 301, dtype=np.float64)  # 300 hats at 1..300 "velocities", read as numbers
    perf = Performance(np.array([42] * 300 + [36] * 10), np.zeros(310), np.r_[hats, np.full(10, 90.0)], 0, 120.0,
                       (4, 4), 4.0, "beat")
    floor = velocity_floor([perf])
    assert floor[PIECES.index(42)] == round(np.percentile(hats, 1) / 127, 4)
    assert floor[PIECES.index(36)] == floor[-1] == round(1 / 127, 4)  # 10 kicks, no "other": no floor
