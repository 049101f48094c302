"""Tests for vlmgrpo.data: local formats, hub errors, image capping, row filtering, splits."""

from __future__ import annotations

import io
import os
import warnings

import datasets
import huggingface_hub
import pytest
from datasets.exceptions import DatasetNotFoundError
from PIL import Image

from tests.fixtures import make_fixture_dataset, make_fixture_image
from vlmgrpo.data import (
    REQUIRED_COLUMNS,
    cap_image,
    check_columns,
    load_source,
    load_splits,
    prepare_dataset,
    split_dataset,
)
from vlmgrpo.prompts import SYSTEM_PROMPT
from vlmgrpo.utils import UsageError

MAX_PIXELS = 256 * 28 * 28  # the load_splits default: 200 704 px, 448 x 448
HUB_ID = "lmms-lab/multimodal-open-r1-8k-verified"


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    """Keep datasets' and the hub's caches in tmp_path: nothing leaks in or out of ~/.cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets_cache")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    datasets.disable_progress_bars()  # they write to stderr, where the skip summary goes
    yield
    datasets.enable_progress_bars()


def rows(ds: datasets.Dataset) -> list[tuple]:
    """Every cell of `ds`, images as (mode, size, pixels), for exact comparisons."""
    return [
        (
            r["problem"],
            r["solution"],
            r["original_question"],
            r["original_answer"],
            (r["image"].mode, r["image"].size, r["image"].tobytes()),
        )
        for r in ds
    ]


def problems(ds: datasets.Dataset) -> list[str]:
    """The problem column as a plain list (datasets 5 returns a lazy Column)."""
    return list(ds["problem"])


def png_bytes(image: Image.Image, **save_kwargs) -> bytes:
    """`image` encoded as PNG (or another format given in save_kwargs)."""
    out = io.BytesIO()
    image.save(out, **{"format": "PNG", **save_kwargs})
    return out.getvalue()


def dataset_from(images: list, problem_texts: list, solutions: list) -> datasets.Dataset:
    """A minimal required-columns dataset; images may be PIL images, {bytes, path} or None."""
    text = datasets.Value("string")
    features = datasets.Features({"image": datasets.Image(), "problem": text, "solution": text})
    return datasets.Dataset.from_dict(
        {"image": images, "problem": problem_texts, "solution": solutions}, features=features
    )


def write_local(kind: str, ds: datasets.Dataset, root) -> str:
    """Write `ds` in one local format and return the path load_source should take."""
    if kind == "parquet file":
        ds.to_parquet(root / "data.parquet")
        return str(root / "data.parquet")
    if kind in ("arrow file", "save_to_disk folder"):
        ds.save_to_disk(root / "saved")
        arrow_files = sorted((root / "saved").glob("*.arrow"))
        return str(arrow_files[0] if kind == "arrow file" else root / "saved")
    if kind == "save_to_disk DatasetDict":
        datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(root / "dd")
        return str(root / "dd")
    folder = root / "shards"
    folder.mkdir()
    if kind == "parquet folder":
        ds.select(range(4)).to_parquet(folder / "part-0.parquet")
        ds.select(range(4, len(ds))).to_parquet(folder / "part-1.parquet")
    else:  # the hub's layout: shards named after their split, which must not be mixed in
        ds.to_parquet(folder / "train-00000-of-00001.parquet")
        ds.select([0, 1]).to_parquet(folder / "test-00000-of-00001.parquet")
    return str(folder)


LOCAL_KINDS = [
    "parquet file",
    "arrow file",
    "save_to_disk folder",
    "save_to_disk DatasetDict",
    "parquet folder",
    "split-named parquet folder",
]


@pytest.mark.parametrize("kind", LOCAL_KINDS)
def test_every_local_format_loads_the_same_rows(kind, tmp_path):
    fixture = make_fixture_dataset(10)
    loaded = load_source(write_local(kind, fixture, tmp_path))
    assert loaded.column_names == fixture.column_names
    assert isinstance(loaded.features["image"], datasets.Image)
    assert rows(loaded) == rows(fixture)


def test_save_to_disk_dataset_dict_picks_the_split_and_names_missing_ones(tmp_path):
    path = write_local("save_to_disk DatasetDict", make_fixture_dataset(10), tmp_path)
    assert len(load_source(path, split="test")) == 1
    with pytest.raises(UsageError, match="no split 'validation'; pick one of: train, test"):
        load_source(path, split="validation")


def test_folder_without_a_dataset_is_a_usage_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not a dataset")
    with pytest.raises(UsageError, match="holds no .parquet files"):
        load_source(str(tmp_path))


@pytest.mark.parametrize(("fraction", "expected"), [(1.0, 10), (0.25, 3), (0.05, 1), (0.5, 5)])
def test_fraction_keeps_the_first_ceil_fraction_rows(fraction, expected, tmp_path):
    fixture = make_fixture_dataset(10)
    loaded = load_source(write_local("parquet file", fixture, tmp_path), fraction=fraction)
    assert problems(loaded) == problems(fixture)[:expected]


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5])
def test_fraction_outside_0_1_is_a_usage_error(fraction, tmp_path):
    path = write_local("parquet file", make_fixture_dataset(2), tmp_path)
    with pytest.raises(UsageError, match=r"fraction must be in \(0, 1\]"):
        load_source(path, fraction=fraction)


@pytest.mark.parametrize(
    "source",
    ["missing.parquet", "./missing", "~/missing-vlmgrpo-data", "a/b/c", "/no/such/data.arrow"],
)
def test_nonexistent_path_is_a_one_line_usage_error(source):
    with pytest.raises(UsageError) as info:
        load_source(source)
    message = str(info.value)
    assert message.startswith(f"dataset path {source} does not exist;")
    assert "hub id like owner/name" in message and "\n" not in message


def force_offline(monkeypatch, offline: bool) -> None:
    """Set offline mode in-process: both libraries read HF_HUB_OFFLINE once, at import."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", offline)


def test_hub_id_in_offline_mode_says_so_on_one_line(monkeypatch):
    force_offline(monkeypatch, True)
    with pytest.raises(UsageError) as info:
        load_source(HUB_ID, fraction=0.05)
    message = str(info.value)
    assert message.startswith(f"cannot reach the Hugging Face hub to download {HUB_ID}")
    assert "offline mode is on: HF_HUB_OFFLINE is set" in message
    assert ".save_to_disk(DIR)` and pass DIR" in message and "\n" not in message


def test_hub_id_without_network_suggests_offline(monkeypatch):
    # This machine has no network: the hub's request fails with httpx's ConnectError (DNS),
    # which datasets turns into ConnectionError. A port nothing listens on takes the same path
    # on any machine; skipping the hub's retry backoff (~23 s of sleeps) keeps it fast.
    force_offline(monkeypatch, False)
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr("huggingface_hub.utils._http.time.sleep", lambda seconds: None)
    with pytest.raises(UsageError) as info:
        load_source(HUB_ID)
    message = str(info.value)
    assert "(offline?)" in message and "HF_HUB_OFFLINE" not in message and "\n" not in message


def fake_load_dataset(monkeypatch, error: Exception | None = None) -> list[str]:
    """Replace datasets.load_dataset: raise `error`, or record the split and return 10 rows."""
    splits = []

    def load_dataset(source, split):
        splits.append(split)
        if error is not None:
            raise error
        return make_fixture_dataset(10)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return splits


@pytest.mark.parametrize(
    ("fraction", "split", "rows_kept"),
    [
        (0.05, "train[:5%]", 10),  # the article's slice; the fake returns 10 rows regardless
        (0.07, "train[:7%]", 10),  # 0.07 * 100 is 7.000000000000001 in floats
        (1.0, "train", 10),
        (0.125, "train", 2),  # 12.5 % has no split syntax: load all, keep ceil(1.25) rows
    ],
)
def test_hub_fraction_uses_the_articles_percent_slice(fraction, split, rows_kept, monkeypatch):
    splits = fake_load_dataset(monkeypatch)
    assert len(load_source("owner/name", fraction=fraction)) == rows_kept
    assert splits == [split]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # The messages datasets 5 raises after catching GatedRepoError / RepositoryNotFoundError.
        (
            DatasetNotFoundError(
                "Dataset 'owner/name' is a gated dataset on the Hub. You must be authenticated "
                "to access it."
            ),
            (
                "is gated or private; accept its terms at "
                "https://huggingface.co/datasets/owner/name, then log in with `hf auth login`"
            ),
        ),
        (
            DatasetNotFoundError(
                "Dataset 'owner/name' doesn't exist on the Hub or cannot be accessed."
            ),
            "no local path or Hugging Face hub dataset named owner/name; check the spelling",
        ),
        (
            ValueError("Unknown split \"train\". Should be one of ['test']."),
            "hub dataset owner/name has no split 'train'",
        ),
    ],
)
def test_hub_failures_become_one_line_usage_errors(error, expected, monkeypatch):
    fake_load_dataset(monkeypatch, error)
    with pytest.raises(UsageError) as info:
        load_source("owner/name")
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert info.value.__cause__ is error  # the original stays reachable for debugging


def test_unknown_hub_failure_is_not_disguised(monkeypatch):
    error = RuntimeError("a bug, not a usage problem")
    fake_load_dataset(monkeypatch, error)
    with pytest.raises(RuntimeError) as info:
        load_source("owner/name")
    assert info.value is error


def test_check_columns_names_the_missing_ones():
    check_columns(make_fixture_dataset(2))  # the full schema passes
    ds = make_fixture_dataset(2).remove_columns(["solution", "problem"])
    with pytest.raises(UsageError) as info:
        check_columns(ds)
    message = str(info.value)
    assert "missing column(s) 'problem', 'solution';" in message
    assert f"columns {', '.join(REQUIRED_COLUMNS)}" in message and "rename_column" in message
    with pytest.raises(UsageError, match="missing column"):
        prepare_dataset(ds, MAX_PIXELS)


def transparent_palette_image() -> Image.Image:
    """A P image whose only colour is marked transparent."""
    image = Image.new("P", (40, 30), 0)
    image.putpalette([10, 20, 30] * 256)
    image.info["transparency"] = 0
    return image


@pytest.mark.parametrize(
    ("image", "pixel"),
    [
        (Image.new("RGB", (40, 30), (200, 30, 30)), (200, 30, 30)),
        (Image.new("L", (40, 30), 128), (128, 128, 128)),
        (Image.new("1", (40, 30), 1), (255, 255, 255)),
        (Image.new("RGBA", (40, 30), (0, 0, 0, 0)), (255, 255, 255)),  # on white, not black
        (Image.new("RGBA", (40, 30), (0, 0, 0, 255)), (0, 0, 0)),
        (Image.new("LA", (40, 30), (0, 0)), (255, 255, 255)),
        (make_fixture_image(0, "P", (40, 30)), make_fixture_image(0).getpixel((0, 0))),
        (transparent_palette_image(), (255, 255, 255)),
        (Image.new("CMYK", (40, 30), (0, 0, 0, 0)), (255, 255, 255)),
    ],
    ids=["RGB", "L", "1", "RGBA-clear", "RGBA-opaque", "LA", "P", "P-transparent", "CMYK"],
)
def test_cap_image_converts_every_mode_to_rgb(image, pixel):
    capped = cap_image(image, MAX_PIXELS)
    assert capped.mode == "RGB" and capped.size == (40, 30)  # small: converted, not resized
    assert capped.getpixel((5, 5)) == pixel


def test_cap_image_half_transparent_rgba_blends_with_white():
    capped = cap_image(Image.new("RGBA", (40, 30), (0, 0, 0, 128)), MAX_PIXELS)
    assert all(abs(channel - 127) <= 1 for channel in capped.getpixel((0, 0)))


@pytest.mark.parametrize(
    "size", [(1000, 500), (500, 1000), (641, 479), (449, 449), (4000, 3000), (5000, 60)]
)
@pytest.mark.parametrize("mode", ["L", "P", "RGBA"])
def test_cap_image_fits_max_pixels_and_keeps_the_aspect(size, mode):
    width, height = size
    capped = cap_image(make_fixture_image(3, mode, size), MAX_PIXELS)
    new_w, new_h = capped.size
    assert capped.mode == "RGB"
    assert new_w * new_h <= MAX_PIXELS < width * height
    assert new_w * new_h >= 0.97 * MAX_PIXELS  # shrunk only as far as needed
    long_old, short_old, long_new, short_new = (
        (width, height, new_w, new_h) if width >= height else (height, width, new_h, new_w)
    )
    assert abs(short_new - long_new * short_old / long_old) <= 1  # aspect kept within a pixel


def test_cap_image_holds_a_very_thin_image_at_28_px():
    capped = cap_image(Image.new("L", (100_000, 10), 200), MAX_PIXELS)
    assert capped.size == (MAX_PIXELS // 28, 28)


def test_cap_image_leaves_small_images_their_size_and_rejects_tiny_caps():
    assert cap_image(Image.new("RGB", (448, 448)), MAX_PIXELS).size == (448, 448)
    with pytest.raises(UsageError, match="max_pixels must be at least 784"):
        cap_image(Image.new("RGB", (40, 30)), 500)


@pytest.fixture(scope="session")
def huge_png() -> bytes:
    """A 10 000 x 10 000 grayscale PNG of one colour: 100 M px, yet only ~120 kB on disk."""
    # Grayscale, not RGB: encoding and decoding 300 MB of RGB pixels takes ~3.5 s on two
    # shared cores; 100 MB of L takes ~1 s and takes the same decode-then-shrink path.
    return png_bytes(Image.new("L", (10_000, 10_000), 90))


def test_prepare_dataset_caps_a_10000_px_square_image_quietly(huge_png):
    ds = dataset_from([{"bytes": huge_png, "path": None}], ["Describe it."], ["gray"])
    with warnings.catch_warnings():
        # 100 M px is over PIL's DecompressionBombWarning threshold; prepare must silence it.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        prepared = prepare_dataset(ds, MAX_PIXELS)
    image = prepared[0]["image"]
    assert image.mode == "RGB" and image.size == (448, 448)  # sqrt(200 704) = 448
    assert image.getpixel((224, 224)) == (90, 90, 90)


def test_prepare_dataset_counts_a_decompression_bomb_as_unusable(monkeypatch, capsys):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 x 48 > 2 x 1000: a "bomb"
    ds = dataset_from([make_fixture_image(0), Image.new("RGB", (20, 20))], ["p", "q"], ["s", "t"])
    assert problems(prepare_dataset(ds, MAX_PIXELS)) == ["q"]
    assert "skipped 1 of 2 rows: 1 without a usable image" in capsys.readouterr().err


def broken_rows() -> tuple[list, list, list]:
    """Six usable rows among three bad images, two empty problems and one empty solution."""
    noise = Image.frombytes("RGB", (64, 48), os.urandom(64 * 48 * 3))  # incompressible
    truncated_png = png_bytes(noise)[:4000]
    good = make_fixture_dataset(6)
    images = [*good["image"], None, {"bytes": b"not an image", "path": None}]
    images += [{"bytes": truncated_png, "path": None}, *[make_fixture_image(9)] * 3]
    texts = [*problems(good), "bad 1", "bad 2", "bad 3", "", "   ", "no solution"]
    solutions = [*good["solution"], "s", "s", "s", "s", "s", " \n"]
    return images, texts, solutions


def test_prepare_dataset_skips_and_counts_unusable_rows(capsys):
    ds = dataset_from(*broken_rows())
    prepared = prepare_dataset(ds, MAX_PIXELS)
    assert problems(prepared) == problems(make_fixture_dataset(6))
    assert capsys.readouterr().err == (
        "skipped 6 of 12 rows: 3 without a usable image, 2 with an empty problem, "
        "1 with an empty solution\n"
    )


def test_prepare_dataset_keeps_golds_math_verify_cannot_parse(capsys):
    # Kept, not skipped: the accuracy reward compares such a gold as text.
    golds = ["\\frac{", "🙂", "<think>hm</think><answer>\\sqrt{</answer>", "a ) ( b"]
    images = [make_fixture_image(i) for i in range(len(golds))]
    prepared = prepare_dataset(dataset_from(images, ["p"] * len(golds), golds), MAX_PIXELS)
    assert list(prepared["solution"]) == golds
    assert capsys.readouterr().err == ""


def test_prepare_dataset_counts_missing_text_and_empty_answer_blocks(capsys):
    solutions = ["s", "s", None, "<think>why</think><answer> </answer>", "<answer></answer>"]
    problem_texts = ["kept", None, "p", "p", "p"]
    images = [make_fixture_image(i) for i in range(len(solutions))]
    prepared = prepare_dataset(dataset_from(images, problem_texts, solutions), MAX_PIXELS)
    assert problems(prepared) == ["kept"]
    assert capsys.readouterr().err == (
        "skipped 4 of 5 rows: 1 with an empty problem, 3 with an empty solution\n"
    )


def test_prepare_dataset_prints_nothing_when_every_row_is_usable(capsys):
    assert len(prepare_dataset(make_fixture_dataset(4), MAX_PIXELS)) == 4
    assert capsys.readouterr().err == ""


def test_prepare_dataset_with_no_usable_row_is_a_usage_error():
    ds = dataset_from([None, {"bytes": b"junk", "path": None}], ["p", ""], ["s", "s"])
    with pytest.raises(UsageError, match=r"no usable row in the dataset \(skipped 2 of 2 rows"):
        prepare_dataset(ds, MAX_PIXELS)
    with pytest.raises(UsageError, match="the dataset has no rows"):
        prepare_dataset(ds.select([]), MAX_PIXELS)


def test_prepare_dataset_output_columns_and_images():
    fixture = make_fixture_dataset(8)
    prepared = prepare_dataset(fixture, 1000)
    assert prepared.column_names == [*fixture.column_names, "prompt"]  # extras kept
    assert isinstance(prepared.features["image"], datasets.Image)
    for row in prepared:
        assert row["image"].mode == "RGB"
        assert row["image"].width * row["image"].height <= 1000


def test_prepare_dataset_keeps_small_rgb_images_byte_for_byte():
    # A JPEG within the cap is kept as is: re-encoding would be lossy (JPEG) or bigger (PNG).
    jpeg = png_bytes(make_fixture_image(1, "RGB"), format="JPEG")
    ds = dataset_from([{"bytes": jpeg, "path": None}], ["p"], ["s"])
    prepared = prepare_dataset(ds, MAX_PIXELS).cast_column("image", datasets.Image(decode=False))
    assert prepared[0]["image"]["bytes"] == jpeg


def test_prepare_dataset_applies_the_exif_rotation_it_would_lose():
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: display rotated by 90 degrees
    jpeg = png_bytes(Image.new("RGB", (400, 200), "red"), format="JPEG", exif=exif)
    ds = dataset_from([{"bytes": jpeg, "path": None}], ["p"], ["s"])
    # Over the cap, so the image is re-encoded (dropping the tag): it must be upright first.
    assert prepare_dataset(ds, 20_000)[0]["image"].size == (100, 200)


def test_prompt_column_is_system_then_user_image_and_problem():
    prepared = prepare_dataset(make_fixture_dataset(3), MAX_PIXELS)
    for row in prepared:
        system, user = row["prompt"]
        assert system == {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]}
        assert user["role"] == "user"
        assert [item["type"] for item in user["content"]] == ["image", "text"]
        assert user["content"][1]["text"] == row["problem"]
    custom = prepare_dataset(make_fixture_dataset(1), MAX_PIXELS, system_prompt="Be brief.")
    assert custom[0]["prompt"][0]["content"][0]["text"] == "Be brief."


def test_split_dataset_is_80_20_and_repeats_with_the_seed():
    ds = prepare_dataset(make_fixture_dataset(10), MAX_PIXELS)
    train, test = split_dataset(ds)
    assert (len(train), len(test)) == (8, 2)
    assert sorted(problems(train) + problems(test)) == sorted(problems(ds))
    again_train, again_test = split_dataset(ds, seed=42)
    assert problems(again_train) == problems(train) and problems(again_test) == problems(test)
    article = ds.train_test_split(test_size=0.2, seed=42)  # the article's call, verbatim
    assert problems(article["test"]) == problems(test)
    assert problems(split_dataset(ds, seed=0)[0]) != problems(train)


@pytest.mark.parametrize(("n", "test_size"), [(1, 0.2), (10, 0.0), (10, 1.0)])
def test_split_dataset_refuses_an_empty_side(n, test_size):
    ds = make_fixture_dataset(n)
    with pytest.raises(UsageError, match="non-empty train and test"):
        split_dataset(ds, test_size=test_size)


def test_load_splits_end_to_end(tmp_path):
    path = write_local("parquet file", make_fixture_dataset(40), tmp_path)
    train, test = load_splits(path, fraction=0.5, max_pixels=1000)
    assert (len(train), len(test)) == (16, 4)
    assert all(image.width * image.height <= 1000 for image in train["image"])
    assert "prompt" in test.column_names
    assert sorted(problems(train) + problems(test)) == sorted(problems(make_fixture_dataset(20)))
    assert tuple(map(len, load_splits(path))) == (1, 1)  # the defaults: 5 % of 40 = 2 rows
