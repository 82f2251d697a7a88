"""``python -m benchmarks --compare``: matching a run against a saved ``--json`` file.

The ``benchmarks`` package is not part of the wheel: from outside the source
tree (the installed-wheel run) these tests skip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

compare = pytest.importorskip("benchmarks.compare")
cli = pytest.importorskip("benchmarks.cli")
report = pytest.importorskip("benchmarks.report")
runner = pytest.importorskip("benchmarks.runner")
timing = pytest.importorskip("benchmarks.timing")

ENV = {
    "python": "3.14.7",
    "python_build": "3.14.7 (main) [GCC]",
    "implementation": "CPython",
    "platform": "Linux-x86_64",
    "cpu_count": 2,
    "interpreters_aio": "0.1.0",
    "extension": "/x/_core.so",
    "extension_debug_info": False,
    "extension_sha256": "aa" * 32,
    "commit": "c0ffee",
    "date": "2026-12-01T10:00:00+00:00",
}


def _result(contender: str, seconds: tuple[float, ...] | None, **extra: Any):
    timed = timing.Timing(number=10, per_op=seconds) if seconds is not None else None
    return runner.ContenderResult(contender, "", timed, **extra)


def _sections(*cases: tuple[str, str, list]) -> list:
    """SectionResults from ``(section, case, [ContenderResult, ...])``."""
    by_section: dict[str, list] = {}
    for section, case, results in cases:
        by_section.setdefault(section, []).append(
            runner.CaseResult(case, "", results[0].contender, results)
        )
    return [runner.SectionResult(name, "", found) for name, found in by_section.items()]


SAVED_RUN = _sections(
    # best 10 µs, median 11 µs
    ("channels", "ping-pong", [_result("ours", (10e-6, 11e-6, 12e-6))]),
    ("channels", "small ints", [_result("ours", (1e-6, 1e-6, 1e-6)), _result("gone", (1.0,))]),
    ("interpreters", "trivial call", [_result("ours", (2e-6, 2e-6, 2e-6))]),
    ("interpreters", "n/a row", [_result("ours", None, unavailable="not here")]),
)


@pytest.fixture
def saved_file(tmp_path: Path) -> Path:
    """A results file written by the report code from known numbers."""
    path = tmp_path / "saved.json"
    path.write_text(report.to_json(ENV, {"quick": False}, SAVED_RUN), encoding="utf-8")
    return path


def _current() -> list:
    return _sections(
        # best 10 -> 12 µs: 1.20x slower, beyond 10%; median 11 -> 12.1 µs: 1.10x
        ("channels", "ping-pong", [_result("ours", (12e-6, 12.1e-6, 13e-6))]),
        # 1 -> 1.05 µs: within the noise
        ("channels", "small ints", [_result("ours", (1.05e-6,)), _result("new one", (3e-6,))]),
        # 2 -> 1 µs: 2x faster
        ("interpreters", "trivial call", [_result("ours", (1e-6,))]),
        ("interpreters", "n/a row", [_result("ours", None, unavailable="not here")]),
    )


def test_load_reads_the_known_numbers(saved_file: Path) -> None:
    saved = compare.load(str(saved_file))
    assert saved.environment["commit"] == "c0ffee"
    assert saved.rows[("channels", "ping-pong", "ours")] == compare.Times(10e-6, 11e-6)
    assert ("interpreters", "n/a row", "ours") not in saved.rows  # never timed
    assert len(saved.rows) == 4


def test_slower_beyond_threshold_is_flagged(saved_file: Path) -> None:
    saved = compare.load(str(saved_file))
    comparison = compare.compare(saved.rows, compare.current_rows(_current()))
    marks = {change.key: compare._mark(comparison, change) for change in comparison.changes}
    assert marks == {
        ("channels", "ping-pong", "ours"): "SLOWER",
        ("channels", "small ints", "ours"): "",
        ("interpreters", "trivial call", "ours"): "faster",
    }
    ping = next(c for c in comparison.changes if c.key[1] == "ping-pong")
    assert ping.best_ratio == pytest.approx(1.2)
    assert ping.median_ratio == pytest.approx(1.1)
    assert [c.key for c in comparison.regressions(0.10)] == [("channels", "ping-pong", "ours")]
    assert comparison.regressions(0.25) == []

    text = compare.render(comparison, saved, ENV, {"quick": False})
    ping_line = next(line for line in text.splitlines() if "ping-pong" in line)
    assert "1.20x slower" in ping_line and "1.10x slower" in ping_line
    assert "SLOWER" in ping_line
    call_line = next(line for line in text.splitlines() if "trivial call" in line)
    assert "2.00x faster" in call_line
    assert "NOTE" not in text  # same environment


def test_threshold_is_configurable(saved_file: Path) -> None:
    saved = compare.load(str(saved_file))
    comparison = compare.compare(saved.rows, compare.current_rows(_current()), threshold=0.25)
    assert all(not comparison.is_slower(change) for change in comparison.changes)


def test_new_and_missing_rows(saved_file: Path) -> None:
    saved = compare.load(str(saved_file))
    comparison = compare.compare(saved.rows, compare.current_rows(_current()))
    assert comparison.new == [("channels", "small ints", "new one")]
    assert comparison.missing == [("channels", "small ints", "gone")]
    text = compare.render(comparison, saved, ENV, {"quick": False})
    assert "new in this run: channels/small ints: new one" in text
    assert "missing from this run: channels/small ints: gone" in text


def test_only_limits_what_is_missing(saved_file: Path) -> None:
    saved = compare.load(str(saved_file))
    current = compare.current_rows(_sections(("channels", "ping-pong", [_result("ours", (1,))])))
    comparison = compare.compare(saved.rows, current, only="PING")
    assert [c.key for c in comparison.changes] == [("channels", "ping-pong", "ours")]
    assert comparison.missing == []  # the others were not selected
    assert compare.compare(saved.rows, current, only="channels").missing == [
        ("channels", "small ints", "ours"),
        ("channels", "small ints", "gone"),
    ]


def test_environment_differences_are_noted(saved_file: Path) -> None:
    saved = compare.load(str(saved_file))
    env = {**ENV, "python_build": "3.13.11 (main) [GCC]", "extension_sha256": "bb" * 32}
    notes = compare.environment_notes(saved, env, {"quick": True})
    assert any(note.startswith("Python differs: saved 3.14.7") for note in notes)
    assert any(note.startswith("extension build (SHA-256) differs") for note in notes)
    assert "the saved run was a full run, this one --quick" in notes
    assert len(notes) == 3


def test_old_files_without_commit_or_date_are_read(tmp_path: Path) -> None:
    old_env = {key: value for key, value in ENV.items() if key not in ("commit", "date")}
    del old_env["extension_sha256"]
    path = tmp_path / "old.json"
    path.write_text(report.to_json(old_env, {"quick": False}, SAVED_RUN), encoding="utf-8")
    saved = compare.load(str(path))
    comparison = compare.compare(saved.rows, compare.current_rows(_current()))
    text = compare.render(comparison, saved, ENV, {"quick": False})
    assert "date unknown, commit unknown" in text
    assert "NOTE: commit differs: saved unknown, now c0ffee" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not a JSON results file"),
        ('{"environment": {}}', "no 'sections' list"),
        ("[1, 2]", "no 'sections' list"),
        ('{"sections": [{"name": "s"}]}', "not a benchmark results file"),
        ('{"sections": [{"name": "s", "cases": [3]}]}', "not a benchmark results file"),
        (
            json.dumps(
                {
                    "sections": [
                        {
                            "name": "s",
                            "cases": [
                                {
                                    "name": "c",
                                    "results": [
                                        {"contender": "x", "best_seconds": "fast"},
                                    ],
                                }
                            ],
                        }
                    ]
                }
            ),
            "s/c, x: bad times 'fast', None",
        ),
    ],
)
def test_corrupt_file_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(compare.CompareError, match=r"bad\.json") as caught:
        compare.load(str(path))
    assert message in str(caught.value)


def test_cli_bad_file_exits_2_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def must_not_run(*args: object, **kwargs: object) -> list:
        raise AssertionError("the benchmarks ran despite a bad --compare file")

    monkeypatch.setattr(cli, "run_all", must_not_run)
    for path in (tmp_path / "absent.json", tmp_path / "binary.json"):
        if path.name == "binary.json":
            path.write_bytes(b"\xff\xfe\x00garbage")
        assert cli.main(["--compare", str(path), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("python -m benchmarks: --compare: ")
        assert str(path) in err and "Traceback" not in err


def test_cli_compare_and_fail_on_regression(
    saved_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "run_all", lambda *args, **kwargs: _current())
    monkeypatch.setattr(cli, "precompile", lambda: None)
    assert cli.main(["--compare", str(saved_file), "--quiet"]) == 0  # regressions alone: 0
    out = capsys.readouterr().out
    assert f"== compared with {saved_file}" in out
    assert "SLOWER" in out

    assert cli.main(["--compare", str(saved_file), "--fail-on-regression", "15"]) == 3
    assert "1 row(s) slower by more than 15%" in capsys.readouterr().err
    assert cli.main(["--compare", str(saved_file), "--fail-on-regression", "25"]) == 0


def test_cli_fail_on_regression_needs_compare(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.parse_args(["--fail-on-regression", "10"])
    assert exited.value.code == 2
    assert "--fail-on-regression needs --compare" in capsys.readouterr().err


def test_json_records_commit_and_date() -> None:
    environment = pytest.importorskip("benchmarks.environment")
    env = environment.describe()
    assert env["date"].endswith("+00:00")
    assert env["extension_sha256"] is None or len(env["extension_sha256"]) == 64
    assert "commit" in env
