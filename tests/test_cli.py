"""Bad input: one line on stderr naming the problem and the fix, exit code 2."""

from __future__ import annotations

import datasets
import huggingface_hub
import pytest
from datasets.exceptions import DatasetNotFoundError

from tests.fixtures import make_fixture_dataset
from vlmgrpo.cli import build_parser, main


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
        (["train", "--save-steps", "0"], "expected a positive whole number"),
        (["train", "--batch-size", "-4"], "expected a positive whole number"),
        (["train", "--learning-rate", "fast"], "invalid float value: 'fast'"),
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
    assert not (tmp_path / "o").exists()  # a run that fails to start leaves no folder


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


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--num-generations", "5"], "--num-generations 5 does not divide the generation batch"),
        (["--batch-size", "6", "--num-generations", "4"], "generation batch of 6 completions"),
        (["--num-generations", "1"], "--num-generations must be at least 2"),
        (["--num-generations", "-2"], "--num-generations must be at least 2"),
        (["--learning-rate", "0"], "--learning-rate must be a positive number, got 0.0"),
        (["--learning-rate=-1e-5"], "--learning-rate must be a positive number"),
        (["--learning-rate", "nan"], "--learning-rate must be a positive number, got nan"),
        (["--learning-rate", "inf"], "--learning-rate must be a positive number, got inf"),
        (["--resume", "--overwrite"], "--resume and --overwrite contradict each other"),
    ],
)
def test_bad_training_settings_stop_before_anything_is_written(options, message, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(["train", "--output-dir", str(out), *options], capsys)
    assert code == 2 and err.startswith("vlmgrpo: error: ") and message in err
    assert not out.exists()  # checked before any folder, data or model


def test_dataset_without_a_usable_row_exits_2(isolated_hub, tmp_path, capsys):
    path = tmp_path / "data.parquet"
    empty_problems = make_fixture_dataset(4).map(lambda row: {"problem": "  "})
    empty_problems.to_parquet(str(path))
    code, err = run_cli(
        ["train", "--dataset", str(path), "--output-dir", str(tmp_path / "o")], capsys
    )
    assert code == 2
    assert "no usable row in the dataset (skipped 4 of 4 rows: 4 with an empty problem)" in err


@pytest.fixture
def isolated_hub(tmp_path, monkeypatch):
    """Hub and datasets caches in tmp_path, so no cached copy hides a hub failure."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets_cache")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub_cache"))


def test_hub_dataset_while_offline_exits_2_saying_so(isolated_hub, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    argv = ["train", "--dataset", "owner/name", "--output-dir", str(tmp_path / "o")]
    code, err = run_cli(argv, capsys)
    assert code == 2
    assert "cannot reach the Hugging Face hub to download owner/name" in err
    assert "offline mode is on: HF_HUB_OFFLINE is set" in err


@pytest.mark.parametrize(
    ("hub_message", "expected"),
    [
        (
            "Dataset 'owner/name' is a gated dataset on the Hub. You must be authenticated.",
            "is gated or private; accept its terms",
        ),
        (
            "Dataset 'owner/name' doesn't exist on the Hub or cannot be accessed.",
            "check the spelling (hub ids look like owner/name), or run `hf auth login`",
        ),
    ],
    ids=["private", "misspelled"],
)
def test_hub_dataset_failures_exit_2_with_the_fix(
    hub_message, expected, isolated_hub, tmp_path, monkeypatch, capsys
):
    def load_dataset(source, split):
        raise DatasetNotFoundError(hub_message)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    argv = ["train", "--dataset", "owner/name", "--output-dir", str(tmp_path / "o")]
    code, err = run_cli(argv, capsys)
    assert code == 2 and expected in err and "hf auth login" in err


def test_overwrite_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("years of work")
    code, err = run_cli(["train", "--output-dir", str(tmp_path), "--overwrite"], capsys)
    assert code == 2 and "--overwrite would delete" in err and "'thesis.tex'" in err
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_trust_remote_code_is_off_unless_asked():
    parser = build_parser()
    for command in (["train"], ["evaluate"], ["generate", "--image", "x", "--problem", "y"]):
        assert parser.parse_args(command).trust_remote_code is False
        assert parser.parse_args([*command, "--trust-remote-code"]).trust_remote_code is True
