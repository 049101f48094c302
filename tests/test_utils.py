"""vlmgrpo.utils: the notebook progress bar's redraws stay few; a save is whole or absent."""

from __future__ import annotations

import pytest

from vlmgrpo import utils


class FakeHandle:
    """A Jupyter display handle that records each frame it is sent."""

    def __init__(self, frames: list[str]):
        self.frames = frames

    def update(self, data, raw=False):
        self.frames.append(data["text/plain"])


@pytest.fixture
def jupyter_bar(monkeypatch):
    """`utils._TextBar` with a fake display and a clock the test moves: (bar, clock, frames)."""
    import IPython.display

    frames: list[str] = []
    clock = {"now": 1000.0}

    def display(data, raw=False, display_id=False):
        frames.append(data["text/plain"])
        return FakeHandle(frames)

    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setattr(utils.time, "monotonic", lambda: clock["now"])
    return utils._TextBar, clock, frames


@pytest.mark.parametrize("hours", [0.04, 1.0, 10.0])
def test_a_notebook_bar_redraws_a_few_hundred_times_at_most(jupyter_bar, hours):
    make_bar, clock, frames = jupyter_bar
    steps = int(hours * 3600 / 0.1)  # a refresh asked every 0.1 s, tqdm's own default
    bar = make_bar(total=steps)
    for _ in range(steps):
        clock["now"] += 0.1
        bar.update(1)
        bar.refresh()  # what tqdm does on set_postfix, whatever its own interval
    bar.close()
    seconds = hours * 3600
    assert len(frames) <= seconds + 2  # at most one a second
    assert len(frames) <= 400  # ten hours: 50 * (1 + ln(36000 / 50)) = 379 at most
    assert len(frames) >= min(seconds, 50) - 2  # and it still moves
    assert f"{steps}/{steps}" in frames[-1]  # the last frame is the finished bar


def test_a_bar_closed_early_still_shows_where_it_stopped(jupyter_bar):
    make_bar, clock, frames = jupyter_bar
    bar = make_bar(total=100)
    for _ in range(7):
        bar.update(1)  # no time passes: no redraw is due
    bar.close()
    assert "7/100" in frames[-1]


def test_an_interrupted_save_never_looks_finished(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.json").write_text("{}")
    with pytest.raises(KeyboardInterrupt):
        with utils.atomic_folder(out) as tmp:
            tmp.mkdir()
            (tmp / "half.json").write_text("{")
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no model.partial left
    assert [p.name for p in out.iterdir()] == ["old.json"]  # the old one, whole
    with utils.atomic_folder(out) as tmp:
        tmp.mkdir()
        (tmp / "new.json").write_text("{}")
    assert [p.name for p in out.iterdir()] == ["new.json"]
