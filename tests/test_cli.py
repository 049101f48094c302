"""Bad input: one line on stderr naming the problem and the fix, exit code 2."""

from __future__ import annotations

import pytest

from tests.fixtures import make_fixture_dataset
from vlmgrpo.cli import main


def run_cli(argv, capsys):
    capsys.readouterr()  # drop what the fixtures printed
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    # Progress bars of data loading may come first; the error itself is the one last line.
    return code, err.splitlines()[-1] if err else err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--preset", "nope"], "unknown preset 'nope'"),
        (["train", "--max-steps", "0"], "expected a positive whole number"),
        (["train", "--max-steps", "many"], "expected a positive whole number"),
        (["train", "--dataset", "no/such/file.parquet"], "does not exist"),
        (["frobnicate"], "invalid choice"),
        (["generate", "--problem", "x", "--image", "missing.png"], "cannot read image"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    code, err = run_cli(argv, capsys)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("vlmgrpo: error: ") and message in err


def test_dataset_missing_a_column_exits_2(tmp_path, capsys):
    path = tmp_path / "data.parquet"
    make_fixture_dataset(6).remove_columns("solution").to_parquet(str(path))
    code, err = run_cli(
        ["train", "--dataset", str(path), "--output-dir", str(tmp_path / "o")], capsys
    )
    assert code == 2 and len(err.splitlines()) == 1
    assert "missing column(s) 'solution'" in err


def test_output_folder_holding_a_run_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.csv").write_text("step\n1\n")
    code, err = run_cli(["train", "--output-dir", str(out)], capsys)
    assert code == 2 and "already holds a run" in err and "--resume" in err


def test_adapter_folder_without_adapter_exits_2(tiny_model_dir, tmp_path, capsys):
    argv = ["evaluate", "--model", tiny_model_dir, "--adapter", str(tmp_path)]
    code, err = run_cli(argv, capsys)
    assert code == 2 and "holds no LoRA adapter" in err
