"""Load a dataset in the lmms-lab/multimodal-open-r1-8k-verified schema and prepare it for GRPO."""

from __future__ import annotations

import io
import math
import re
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import datasets
from datasets.exceptions import DatasetNotFoundError
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError
from huggingface_hub.utils import httpx  # the hub's HTTP client, whichever package provides it
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from vlmgrpo.presets import DEFAULT_FAMILY, FAMILIES, Preset
from vlmgrpo.prompts import SYSTEM_PROMPT, build_conversation
from vlmgrpo.rewards import gold_answer
from vlmgrpo.tasks import get_task
from vlmgrpo.utils import UsageError

REQUIRED_COLUMNS = ("image", "problem", "solution")

# Pixels on the side of one image token (28 on Qwen2.5-VL, 32 on Qwen3-VL): no image side is
# shrunk below one token. Callers pass their model family's; this is the default family's.
TOKEN_SIDE = FAMILIES[DEFAULT_FAMILY].token_side
# Qwen's image processor (Qwen2.5-VL's and Qwen3-VL's) refuses images whose long side exceeds
# 200 x the short one.
MAX_ASPECT_RATIO = 200
_FILE_SUFFIXES = (".parquet", ".arrow")
# `owner/name` or a bare canonical `name`; anything else that does not exist must be a bad path.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_LOCAL_HINT = (
    "pass an existing .parquet/.arrow file, a save_to_disk folder, or a hub id like owner/name"
)
# datasets folds connection failures into a builtin ConnectionError; OfflineModeIsEnabled
# subclasses it; the others can surface from downloads that fail after the first request.
_OFFLINE_ERRORS = (ConnectionError, TimeoutError, LocalEntryNotFoundError, httpx.TransportError)
_SKIP_REASONS = (
    "without a usable image",
    "with an empty problem",
    "with an empty solution",
    f"with an image beyond {MAX_ASPECT_RATIO}:1",
)
_UNREADABLE_IMAGE = (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError)
# Spelled out because a batch whose rows are all skipped has only None prompts to infer from.
_PROMPT_FEATURE = datasets.List(
    {
        "role": datasets.Value("string"),
        "content": datasets.List(
            {"type": datasets.Value("string"), "text": datasets.Value("string")}
        ),
    }
)


def load_source(source: str, split: str = "train", fraction: float = 1.0) -> datasets.Dataset:
    """Load `split` of a local file/folder or a hub dataset; keep its first `fraction` of rows."""
    if not 0 < fraction <= 1:
        raise UsageError(f"fraction must be in (0, 1], got {fraction}; 0.05 takes the first 5 %")
    path = Path(source).expanduser()
    if path.exists():
        return _head(_load_local(path, split), fraction)
    check_dataset_source(source)
    # The split syntax (the article's `train[:5%]`) takes whole percents only; other fractions
    # load the split and cut it like a local dataset.
    percent = round(fraction * 100, 6)
    sliced = fraction < 1 and percent.is_integer()
    try:
        ds = datasets.load_dataset(source, split=f"{split}[:{percent:.0f}%]" if sliced else split)
    except Exception as err:
        usage = _hub_usage_error(source, split, err)
        if usage is None:
            raise
        raise usage from err
    return ds if sliced else _head(ds, fraction)


def check_dataset_source(source: str) -> None:
    """Raise UsageError unless `source` exists locally or looks like a hub id (owner/name)."""
    if Path(source).expanduser().exists():
        return
    if source.endswith(_FILE_SUFFIXES) or not _HUB_ID.fullmatch(source):
        raise UsageError(f"dataset path {source} does not exist; {_LOCAL_HINT}")


def _load_local(path: Path, split: str) -> datasets.Dataset:
    """The `split` rows of a local .parquet/.arrow file, save_to_disk folder or parquet folder."""
    if path.is_file():
        if path.suffix == ".arrow":
            return datasets.Dataset.from_file(str(path))  # memory-mapped, not copied
        if path.suffix == ".parquet":
            return datasets.Dataset.from_parquet(str(path))
        raise UsageError(f"dataset file {path} is neither .parquet nor .arrow; {_LOCAL_HINT}")
    if (path / "state.json").exists() or (path / "dataset_dict.json").exists():
        loaded = datasets.load_from_disk(str(path))
        if not isinstance(loaded, datasets.DatasetDict):
            return loaded
        if split not in loaded:
            raise UsageError(f"{path} has no split {split!r}; pick one of: {', '.join(loaded)}")
        return loaded[split]
    # Shards named after a split (the hub's `train-00000-of-00001.parquet`) must not mix with
    # another split's; a folder of unnamed shards is one split.
    files = sorted(path.glob(f"{split}[-.]*parquet")) or sorted(path.glob("*.parquet"))
    if not files:
        raise UsageError(f"folder {path} holds no .parquet files and no save_to_disk dataset")
    return datasets.Dataset.from_parquet([str(f) for f in files])


def _head(ds: datasets.Dataset, fraction: float) -> datasets.Dataset:
    """The first ceil(fraction * len) rows, like the hub's `train[:N%]`."""
    return ds if fraction == 1 else ds.select(range(math.ceil(fraction * len(ds))))


def _hub_usage_error(source: str, split: str, err: Exception) -> UsageError | None:
    """A one-line UsageError explaining a hub failure, or None if it is not one we know."""
    chain = list(_error_chain(err))
    if any(isinstance(e, _OFFLINE_ERRORS) for e in chain):
        download = f"datasets.load_dataset({source!r}, split={split!r}).save_to_disk(DIR)"
        offline_mode = datasets.config.HF_HUB_OFFLINE or hub_constants.HF_HUB_OFFLINE
        state = "offline mode is on: HF_HUB_OFFLINE is set" if offline_mode else "offline?"
        return UsageError(
            f"cannot reach the Hugging Face hub to download {source} ({state}); download it on "
            f"a connected machine with `{download}` and pass DIR"
        )
    # datasets re-raises a GatedRepoError as DatasetNotFoundError("... is a gated dataset ...")
    # and drops the original, so its message is all that is left to tell them apart.
    if any(isinstance(e, GatedRepoError) for e in chain) or "gated" in str(err).lower():
        return UsageError(
            f"hub dataset {source} is gated or private; accept its terms at "
            f"https://huggingface.co/datasets/{source}, then log in with `hf auth login`"
        )
    if any(isinstance(e, (DatasetNotFoundError, RepositoryNotFoundError)) for e in chain):
        return UsageError(
            f"no local path or Hugging Face hub dataset named {source}; check the spelling "
            "(hub ids look like owner/name), or run `hf auth login` if it is private"
        )
    if isinstance(err, ValueError) and "Unknown split" in str(err):
        return UsageError(f"hub dataset {source} has no split {split!r}: {err}")
    return None


def _error_chain(err: BaseException | None) -> Iterator[BaseException]:
    """`err` and the exceptions it was raised from or while handling."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def check_columns(ds: datasets.Dataset) -> None:
    """Raise UsageError unless `ds` has the image, problem and solution columns."""
    missing = [c for c in REQUIRED_COLUMNS if c not in ds.column_names]
    if missing:
        raise UsageError(
            f"the dataset is missing column(s) {', '.join(map(repr, missing))}; the dataset needs "
            f"columns {', '.join(REQUIRED_COLUMNS)} (the lmms-lab/multimodal-open-r1-8k-verified "
            "schema); rename yours with dataset.rename_column(...)"
        )


def cap_image(image: Image.Image, max_pixels: int, token_side: int = TOKEN_SIDE) -> Image.Image:
    """`image` in RGB, downscaled (aspect kept, sides >= one token) to at most `max_pixels`."""
    # TRL 1.16 has no max_prompt_length, and an unbounded image becomes thousands of image
    # tokens, so the image size is what bounds the prompt.
    _check_max_pixels(max_pixels, token_side)
    width, height = image.size
    if width * height > max_pixels:
        size = _capped_size(width, height, max_pixels, token_side)
        image.draft(image.mode, size)  # JPEG only: decode at 1/2..1/8 scale, up to 64x less memory
        if image.mode in ("1", "P", "PA"):  # Pillow resizes these NEAREST-only: go to L/RGB first
            image = image.convert("L") if image.mode == "1" else _to_rgb(image)
        # reducing_gap: shrink by an integer factor first (fast), then LANCZOS the rest.
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return _to_rgb(image)


def _check_max_pixels(max_pixels: int, token_side: int) -> None:
    """Raise UsageError if `max_pixels` cannot hold one image token of `token_side` px."""
    if max_pixels < token_side**2:
        raise UsageError(
            f"max_pixels must be at least {token_side**2} ({token_side}x{token_side}, one image "
            f"token), got {max_pixels}"
        )


def _capped_size(width: int, height: int, max_pixels: int, token_side: int) -> tuple[int, int]:
    """The largest (w, h) with w*h <= max_pixels, the aspect of width:height, sides >= a token."""
    scale = math.sqrt(max_pixels / (width * height))
    new_w, new_h = (max(token_side, math.floor(side * scale)) for side in (width, height))
    if new_w * new_h > max_pixels:  # float rounding, or a very thin image held at one token
        if new_w >= new_h:
            new_w = max_pixels // new_h
        else:
            new_h = max_pixels // new_w
    return new_w, new_h


def _to_rgb(image: Image.Image) -> Image.Image:
    """`image` in RGB, transparent parts composited on white (black would hide dark ink)."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, "white")
        image.paste(rgba, mask=rgba.getchannel("A"))
    return image if image.mode == "RGB" else image.convert("RGB")


class _TooThin(Exception):  # noqa: N818  (a row's skip reason, not an error to report)
    """An image Qwen's processor would refuse: beyond MAX_ASPECT_RATIO:1."""


def _aspect_ratio(image: Image.Image) -> float:
    return max(image.size) / max(1, min(image.size))


def check_aspect_ratio(image: Image.Image, name: str = "the image") -> None:
    """Raise UsageError when Qwen's image processor would refuse `image`'s aspect ratio."""
    if _aspect_ratio(image) > MAX_ASPECT_RATIO:
        width, height = image.size
        raise UsageError(
            f"{name} is {width} x {height} pixels, an aspect ratio beyond the "
            f"{MAX_ASPECT_RATIO}:1 that Qwen's image processor accepts; crop or pad it"
        )


def _open_capped(value: dict | None, max_pixels: int, token_side: int) -> dict | None:
    """The stored image `{"bytes", "path"}` as RGB within `max_pixels`, or None if unreadable."""
    if value is None or (value["bytes"] is None and value["path"] is None):
        return None
    try:
        # PIL's own ceiling stays: above 2 x Image.MAX_IMAGE_PIXELS (~179 M px) it raises
        # DecompressionBombError and the row counts as unusable. Below it, the warning tier
        # (89-179 M px, e.g. 10 000 x 10 000) is silenced: such an image is shrunk right away.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            source = io.BytesIO(value["bytes"]) if value["bytes"] is not None else value["path"]
            with Image.open(source) as image:
                # datasets rotates by the EXIF orientation when it decodes; do the same before
                # re-encoding (which drops the tag). Only when needed: it decodes at full size.
                upright = image.getexif().get(ExifTags.Base.Orientation, 1) == 1
                if upright and image.mode == "RGB" and image.width * image.height <= max_pixels:
                    image.load()  # decode fully, so corrupt data is caught here
                    if _aspect_ratio(image) > MAX_ASPECT_RATIO:
                        raise _TooThin
                    return value  # already fine: keep the original bytes, no lossy re-encode
                capped = cap_image(
                    image if upright else ImageOps.exif_transpose(image), max_pixels, token_side
                )
    except _UNREADABLE_IMAGE:
        return None
    # Capping keeps both sides >= one token, which can change a thin image's ratio: check after.
    if _aspect_ratio(capped) > MAX_ASPECT_RATIO:
        raise _TooThin
    out = io.BytesIO()
    capped.save(out, format="PNG")
    return {"bytes": out.getvalue(), "path": None}


def _prepare_batch(batch: dict, max_pixels: int, system_prompt: str, token_side: int) -> dict:
    """Capped images, prompts and a skip reason ("" = usable) for one batch of rows."""
    images, prompts, reasons = [], [], []
    for image, problem, solution in zip(
        batch["image"], batch["problem"], batch["solution"], strict=True
    ):
        # Text first: it is cheap, and a row already lost needs no image decoding.
        # A gold that math-verify cannot parse (`\frac{`, words, emoji) stays: the accuracy
        # reward compares it as text. An empty one (`<answer> </answer>` too) rewards nothing.
        if not isinstance(problem, str) or not problem.strip():
            image, reason = None, _SKIP_REASONS[1]
        elif not isinstance(solution, str) or not gold_answer(solution):
            image, reason = None, _SKIP_REASONS[2]
        else:
            try:
                image = _open_capped(image, max_pixels, token_side)
                reason = "" if image is not None else _SKIP_REASONS[0]
            except _TooThin:
                image, reason = None, _SKIP_REASONS[3]
        images.append(image)
        prompts.append(None if reason else build_conversation(problem, system_prompt))
        reasons.append(reason)
    return {"image": images, "prompt": prompts, "_skip": reasons}


def prepare_dataset(
    ds: datasets.Dataset,
    max_pixels: int,
    system_prompt: str = SYSTEM_PROMPT,
    token_side: int = TOKEN_SIDE,
) -> datasets.Dataset:
    """Drop unusable rows (reported on stderr), cap images to RGB, add the `prompt` column.

    `token_side` is the side in pixels of one image token of the model's family.
    """
    check_columns(ds)
    if len(ds) == 0:  # map would return it unchanged, without the columns used below
        raise UsageError("the dataset has no rows; check the source, split and fraction")
    _check_max_pixels(max_pixels, token_side)  # before the map, not once per image
    # Undecoded storage ({"bytes", "path"}) lets each image be opened inside try/except, so one
    # corrupt image costs a row instead of crashing the whole map.
    ds = ds.cast_column("image", datasets.Image(decode=False))
    features = ds.features.copy()
    features.update({"prompt": _PROMPT_FEATURE, "_skip": datasets.Value("string")})
    # Skip reasons go into a column, not a counter, so a map result reused from the cache
    # still reports its skipped rows. Small batches bound the decoded images held at once.
    ds = ds.map(
        _prepare_batch,
        batched=True,
        batch_size=32,
        writer_batch_size=32,
        features=features,
        fn_kwargs={
            "max_pixels": max_pixels,
            "system_prompt": system_prompt,
            "token_side": token_side,
        },
        desc="Preparing images and prompts",
    )
    counts = Counter(ds["_skip"])
    skipped = len(ds) - counts.pop("", 0)
    summary = f"skipped {skipped} of {len(ds)} rows: " + ", ".join(
        f"{counts[r]} {r}" for r in _SKIP_REASONS if counts[r]
    )
    if skipped == len(ds):
        raise UsageError(
            f"no usable row in the dataset ({summary}); every row needs a readable image and a "
            "non-empty problem and solution"
        )
    if skipped:
        print(summary, file=sys.stderr)
    ds = ds.filter(lambda reasons: [not r for r in reasons], input_columns="_skip", batched=True)
    return ds.remove_columns("_skip").cast_column("image", datasets.Image())


def split_dataset(
    ds: datasets.Dataset, test_size: float = 0.2, seed: int = 42
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The article's shuffled (train, test) split: train_test_split(test_size=0.2, seed=42)."""
    n_test = math.ceil(test_size * len(ds)) if 0 < test_size < 1 else 0
    if not 0 < n_test < len(ds):
        raise UsageError(
            f"cannot split {len(ds)} rows with test_size={test_size} into non-empty train and "
            "test sets; use more rows (a larger fraction) or a test_size between 0 and 1"
        )
    splits = ds.train_test_split(test_size=test_size, seed=seed)
    return splits["train"], splits["test"]


def load_splits(
    source: str,
    *,
    fraction: float = 0.05,
    test_size: float = 0.2,
    seed: int = 42,
    max_pixels: int = 256 * TOKEN_SIDE**2,
    token_side: int = TOKEN_SIDE,
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The article's data: first 5 % of `source`, prepared, split 80/20 with seed 42."""
    ds = prepare_dataset(load_source(source, fraction=fraction), max_pixels, token_side=token_side)
    return split_dataset(ds, test_size=test_size, seed=seed)


def load_data(
    preset: Preset, source: str | None, seed: int
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(train, test) in the conversational form TRL wants: synthetic, or a real dataset.

    Images are capped at the preset's image tokens, in pixels of its model family.
    """
    side = FAMILIES[preset.family].token_side
    if source is None:  # the preset's synthetic task
        make = get_task(preset.task).make_dataset
        train, test = make(preset.n_train, seed=seed), make(preset.n_test, seed=seed + 10_000)
        return tuple(prepare_dataset(d, preset.max_pixels, token_side=side) for d in (train, test))
    return load_splits(
        source,
        fraction=preset.fraction,
        test_size=preset.test_size,
        max_pixels=preset.max_pixels,
        token_side=side,
    )


def first_rows(ds: datasets.Dataset, n: int | None) -> datasets.Dataset:
    """The first `n` rows of `ds` (all of them for None, or when it has fewer)."""
    return ds if n is None or n >= len(ds) else ds.select(range(n))
