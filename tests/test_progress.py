"""jgnas.progress: bars and timing lines per phase, in a log and on a terminal, silent when
disabled; the CLI's phases end to end on the tiny config, and `-q` prints nothing."""

from __future__ import annotations

import io
import re

import pytest
from conftest import CONFIGS

from jgnas.progress import Progress, as_progress

TINY = str(CONFIGS / "tiny.yaml")


def _run_phase(progress: Progress, steps: int = 6) -> None:
    with progress.phase("retrain", total=steps) as update:
        for done in range(1, steps + 1):
            update(done)


def test_log_stream_gets_whole_lines_and_a_timing_line():
    out = io.StringIO()
    progress = Progress(enabled=True, file=out, tty=False, interval=0.0)  # a line per update
    _run_phase(progress)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()  # whole lines: nothing drawn in place in a log
    assert len(lines) == 6 + 1
    assert lines[0].startswith("retrain:") and "1/6" in lines[0]
    assert "6/6" in lines[5] and ("member/s" in lines[5] or "s/member" in lines[5])
    assert re.fullmatch(r"phase retrain: 6 members in \d+\.\d s \(\d+\.\d\d s/member\)", lines[6])
    assert progress.timings[0][0] == "retrain"


def test_log_stream_writes_at_most_one_line_per_interval():
    out = io.StringIO()
    progress = Progress(enabled=True, file=out, tty=False, interval=3600.0)
    _run_phase(progress, steps=50)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("phase retrain: 50 members in ")


def test_terminal_draws_in_place_then_clears_for_the_timing_line():
    out = io.StringIO()
    progress = Progress(enabled=True, file=out, tty=True)
    with progress.phase("search", total=4, unit="candidate") as update:
        update.note("gen 1/2")
        update(2)
        progress.write("gen 1/2 | best 0.1")  # a log line goes above the bar
        update(4)
    text = out.getvalue()
    assert "\r" in text and "search:" in text and "gen 1/2" in text
    assert "gen 1/2 | best 0.1\n" in text
    assert text.rstrip().endswith("s/candidate)")  # the timing line comes last, the bar is gone
    assert "phase search: 4 candidates in" in text


def test_disabled_writes_nothing_but_still_times():
    out = io.StringIO()
    progress = Progress(enabled=False, file=out, tty=True)
    _run_phase(progress)
    with progress.phase("data", unit=None):
        pass
    progress.write(progress.summary())
    assert out.getvalue() == ""
    assert [name for name, _ in progress.timings] == ["retrain", "data"]


def test_a_failed_phase_writes_no_timing_line():
    out = io.StringIO()
    progress = Progress(enabled=True, file=out, tty=False)
    with pytest.raises(KeyboardInterrupt):
        with progress.phase("search", total=8) as update:
            update(3)
            raise KeyboardInterrupt
    assert out.getvalue() == "" and progress.timings == []


def test_summary_sums_repeated_phases_and_resumed_steps_are_not_counted():
    out = io.StringIO()
    progress = Progress(enabled=True, file=out, tty=False)
    for _ in range(2):
        with progress.phase("search", total=12, unit="candidate", initial=8) as update:
            update(12)
    with progress.phase("data", unit=None):
        pass
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("phase search: 4 candidates in ")  # 12 - 8 resumed
    assert re.fullmatch(r"phase data: \d+\.\d s", lines[2])
    assert re.fullmatch(
        r"time by phase: search \d+\.\d s, data \d+\.\d s \(total \d+\.\d s\)", progress.summary()
    )
    assert Progress().summary() == ""


def test_as_progress_keeps_the_boolean_form():
    p = Progress(enabled=True)
    assert as_progress(p) is p
    assert as_progress(True).enabled
    assert not as_progress(False).enabled and not as_progress(None).enabled


def test_text_encoding_reports_texts_encoded(tmp_path):
    import numpy as np
    from text_utils import TINY as TINY_BERT
    from text_utils import write_model

    from jgnas.data.types import Dataset, Interactions
    from jgnas.features import TextConfig, node_text_matrix
    from jgnas.text import load_encoder

    empty = Interactions(*(np.zeros(0, t) for t in (np.int32, np.int32, np.float32, np.int64)))
    titles = ["Toy Story", "Heat", "Heat", "Alpha", "Beta"]  # 4 distinct item texts
    ds = Dataset(name="t", n_users=2, n_items=5, train=empty, valid=empty, test=empty,
                 user_ids=np.array(["u0", "u1"]), item_ids=np.array([f"i{i}" for i in range(5)]),
                 user_features={}, item_features={"title": np.array(titles)})  # fmt: skip
    model = write_model(tmp_path / "bert", TINY_BERT)
    cfg = TextConfig(enabled=True, model_path=str(model), cache_dir=str(tmp_path / "cache"),
                     item_template="{title}", user_template=None)  # fmt: skip
    encoder, seen = load_encoder(model), []
    node_text_matrix(ds, cfg, encoder=encoder, on_progress=seen.append)
    assert seen and seen == sorted(seen) and seen[-1] == 4  # the distinct texts, once each
    again: list[int] = []
    node_text_matrix(ds, cfg, encoder=encoder, on_progress=again.append)
    assert again == []  # all from the cache: nothing encoded


# ---- end to end: the CLI on the tiny config --------------------------------------------------


def test_cli_search_shows_every_phase_and_q_shows_none(tmp_path, capsys):
    from jgnas.cli import main

    assert main(["search", "--config", TINY, "--out", str(tmp_path / "on")]) == 0
    err = capsys.readouterr().err
    seconds = r"in \d+\.\d s \(\d+\.\d\d s/(candidate|member)\)"
    # tiny.yaml: population 4 x 3 generations; tuning grid 2 lrs x (winner + mf) x 1 seed;
    # retraining (winner + mf) x 2 seeds.
    for line in (
        rf"phase search: 12 candidates {seconds}",
        rf"phase tune: 4 members {seconds}",
        rf"phase retrain: 4 members {seconds}",
        rf"phase test: 4 members {seconds}",
        r"phase data: \d+\.\d s",
        r"time by phase: data .*, search .*, tune .*, retrain .*, test .* \(total \d+\.\d s\)",
    ):
        assert re.search(f"^{line}$", err, re.M), (line, err)
    assert "gen 3/3" in err  # the log lines still come
    assert err.rstrip().splitlines()[-1].startswith("time by phase: ")

    assert main(["search", "--config", TINY, "--out", str(tmp_path / "off"), "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # -q: no bar, no timing line, no log line
    assert (tmp_path / "off" / "final_metrics.json").is_file()
