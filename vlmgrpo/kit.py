"""The workshop kit: everything a room of laptops needs to run the course with no network.

`make kit` (``python -m vlmgrpo.kit build kit``) writes, from a checkout of this repository:

    kit/wheels/           every package the course installs, at constraints/default.txt's
                          versions, with the [dev] extra and the build backend (setuptools)
    kit/models/NAME/      the cold-started tiny model, the folder `vlmgrpo make-tiny` caches
    kit/vlm-grpo.bundle   the repository at its last commit (``git clone kit/vlm-grpo.bundle``)
    kit/html/             the notebooks with their stored outputs, readable in any browser,
                          with the MathJax they need in kit/html/mathjax/ (no CDN)
    kit/README.txt        what is in the kit and how to use it

`make setup KIT=kit` installs from kit/wheels with ``pip install --no-index`` and then runs
``python -m vlmgrpo.kit install-model kit``, which copies the model into the cache
(`vlmgrpo.tiny.cache_root()`), where the course finds it instead of building it.

pip evaluates environment markers (``sys_platform == "darwin"``) for the Python running it,
even with ``--platform``: torch's macOS wheel names Linux-only CUDA packages behind such
markers, and Windows needs packages Linux never asks for. A kit for another platform is
therefore resolved by uv (``uv pip compile --python-platform``), then downloaded by pip
wheel by wheel (``--no-deps``), and checked complete by resolving it again from the kit alone.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

CONSTRAINTS = "constraints/default.txt"
# pyproject.toml's [build-system] requires (a test keeps them equal): pip's build isolation
# installs them from the wheelhouse for the editable install.
BUILD_REQUIREMENTS = ("setuptools>=64",)
BUNDLE = "vlm-grpo.bundle"
# nbconvert's pages load MathJax 2 from a CDN, and a room with no network then shows raw LaTeX.
# The kit's pages load it from html/mathjax/: MathJax 2.7.9 from the npm registry, checked
# against the registry's sha512, cut to what nbconvert's TeX-AMS_CHTML-full config uses.
MATHJAX = (
    "https://registry.npmjs.org/mathjax/-/mathjax-2.7.9.tgz",
    "sha512-NOGEDTIM9+MrsqnjPEjVGNx4q0GQxqm61yQwSK+/5S59i26wId5IC5gNu9/bu8+CCVl5p9G2IHcAl/wJa+5+BQ==",
)
MATHJAX_PARTS = (
    "LICENSE",
    "MathJax.js",
    "config/TeX-AMS_CHTML-full.js",
    "extensions/",
    "fonts/HTML-CSS/TeX/woff/",
    "jax/element/",
    "jax/input/",
    "jax/output/CommonHTML/",
    "localization/en/",
)
MATHJAX_URL = "mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
# torch and the packages of its CUDA build (Linux wheels from PyPI), by wheel file name.
CUDA_SET = re.compile(r"(torch|triton|nvidia_\w+|cuda_\w+)-")


class KitError(Exception):
    """A kit cannot be built or used; the message names the fix."""


def folder_bytes(path: Path) -> int:
    """Total size of the files under `path`."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def human(n: int) -> str:
    """A size in decimal units, as pip prints them (1 MB = 10^6 bytes)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.{2 if unit == 'GB' else 1}f} {unit}"
    return f"{n} B"


def checkout_root() -> Path:
    """The repository this module runs from; kits are built from a checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").exists() or not (root / CONSTRAINTS).exists():
        raise KitError(f"{root} is not a checkout of the course: build the kit from a git clone")
    return root


def uv_target(platform: str) -> tuple[str, dict[str, str]]:
    """uv's `--python-platform` and environment for a wheel platform tag."""
    if m := re.fullmatch(r"macosx_(\d+)_(\d+)_(arm64|x86_64)", platform):
        arch = {"arm64": "aarch64", "x86_64": "x86_64"}[m[3]]
        return f"{arch}-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": f"{m[1]}.{m[2]}"}
    if m := re.fullmatch(r"win_(amd64|arm64)", platform):
        return {"amd64": "x86_64", "arm64": "aarch64"}[m[1]] + "-pc-windows-msvc", {}
    if m := re.fullmatch(r"manylinux_2_(\d+)_(x86_64|aarch64)", platform):
        return f"{m[2]}-manylinux_2_{m[1]}", {}
    raise KitError(
        f"unknown platform {platform!r}: use a wheel tag such as macosx_14_0_arm64, win_amd64 "
        "or manylinux_2_28_x86_64"
    )


def pip_platforms(platform: str) -> list[str]:
    """The tags pip should accept for `platform`: pip widens macOS tags itself, not glibc ones."""
    m = re.fullmatch(r"manylinux_2_(\d+)_(x86_64|aarch64)", platform)
    if not m:
        return [platform]
    glibc, arch = int(m[1]), m[2]
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc, 4, -1)]
    return tags + [f"manylinux2014_{arch}"]


def _run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    if subprocess.run([str(c) for c in cmd], **kw).returncode != 0:
        raise KitError(f"{Path(str(cmd[0])).name} failed (its output is above)")


def _uv() -> str:
    beside = Path(sys.executable).parent / "uv"
    uv = str(beside) if beside.exists() else shutil.which("uv")
    if uv is None:
        raise KitError("a kit for another platform is resolved with uv: pip install uv")
    return uv


def download_wheels(
    dest: Path,
    root: Path,
    platform: str | None = None,
    python_version: str | None = None,
    pip_args: list[str] | None = None,
) -> Path:
    """Download every wheel the course installs into `dest` (replaced), then check it."""
    pip = [sys.executable, "-m", "pip"]
    pip_args = pip_args or []
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    if platform is None:
        if python_version not in (None, here):
            raise KitError(f"--python-version {python_version} needs --platform too")
        _run(
            [*pip, "download", "--dest", tmp, "--only-binary=:all:", "-c", CONSTRAINTS]
            + [".[dev]", *BUILD_REQUIREMENTS, *pip_args],
            cwd=root,
        )
        # What a laptop will run, with this machine's pip settings left out.
        _run(
            [*pip, "--isolated", "install", "--dry-run", "--ignore-installed", "--quiet"]
            + ["--no-index", "--find-links", tmp, "-e", ".[dev]", "-c", CONSTRAINTS],
            cwd=root,
        )
    else:
        uv, python_version = _uv(), python_version or here
        target, env = uv_target(platform)
        env = {**os.environ, **env}
        resolve = [uv, "pip", "compile", "pyproject.toml", "--extra", "dev", "-c", CONSTRAINTS]
        resolve += ["--python-platform", target, "--python-version", python_version]
        resolve += ["--no-header", "--no-annotate", "--quiet"]
        with tempfile.TemporaryDirectory() as work:
            lock = Path(work) / "requirements.txt"
            _run([*resolve, "-o", lock], cwd=root, env=env)
            tags = [a for t in pip_platforms(platform) for a in ("--platform", t)]
            _run(
                [*pip, "download", "--dest", tmp, "--no-deps", "--only-binary=:all:"]
                + [*tags, "--python-version", python_version, "-r", lock]
                + [*BUILD_REQUIREMENTS, *pip_args]
            )
            # Resolve again from the kit alone: every wheel the platform needs is in it.
            check = Path(work) / "check.txt"
            _run([*resolve, "--no-index", "--find-links", tmp, "-o", check], cwd=root, env=env)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def add_model(models: Path) -> list[Path]:
    """Build (or find cached) every tiny model, one per task, and copy them into `models`."""
    from vlmgrpo.tiny import SPECS, make_tiny

    shutil.rmtree(models, ignore_errors=True)
    copied = []
    for spec in SPECS.values():
        src = make_tiny(spec)
        shutil.copytree(src, models / src.name)
        copied.append(models / src.name)
    return copied


# What each tiny model is for, by its task (tiny_spec.json's "task"), in the kit's README.txt.
MODEL_USES = {
    "colour": "the colour task (notebooks 01-05, the default)",
    "prices": "the price task (notebook 06, --preset tiny-reasoning)",
}


def _model_use(folder: Path) -> str:
    try:
        task = json.loads((folder / "tiny_spec.json").read_text())["task"]
    except (OSError, ValueError, KeyError):
        return "a tiny Qwen2.5-VL"
    return MODEL_USES.get(task, f"the {task} task")


def add_bundle(path: Path, root: Path) -> str | None:
    """Write a git bundle of the checkout's last commit; returns its short id (None: no git)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise KitError(f"git {args[0]} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    if shutil.which("git") is None or not (root / ".git").exists():
        print("no git checkout: the kit carries no copy of the repository", file=sys.stderr)
        return None
    if git("status", "--porcelain", "--untracked-files=no"):
        print("note: uncommitted changes are not in the bundle (it holds HEAD)", file=sys.stderr)
    branch = git("branch", "--show-current")
    path.unlink(missing_ok=True)
    git("bundle", "create", str(path), "HEAD", *([branch] if branch else []))
    return git("rev-parse", "--short", "HEAD")


def fetch_mathjax(dest: Path, url: str = MATHJAX[0], integrity: str = MATHJAX[1]) -> Path:
    """MathJax's files that the kit's pages use, unpacked into `dest` from the npm tarball."""
    import base64
    import hashlib
    import tarfile
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            blob = response.read()
    except OSError as exc:
        raise KitError(f"cannot download MathJax from {url} ({exc}); check the network") from None
    algorithm, digest = integrity.split("-", 1)
    if base64.b64encode(hashlib.new(algorithm, blob).digest()).decode() != digest:
        raise KitError(f"MathJax from {url} does not match its {algorithm}; download it again")
    shutil.rmtree(dest, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(tmp, filter="data")
        package = Path(tmp) / "package"
        for part in MATHJAX_PARTS:
            source, target = package / part, dest / part
            target.parent.mkdir(parents=True, exist_ok=True)
            if part.endswith("/"):
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
    return dest


def add_html(dest: Path, root: Path, mathjax: Path | None = None) -> list[Path]:
    """Render the notebooks, with their stored outputs, to HTML (no Python needed to read).

    With `mathjax` (a folder `fetch_mathjax` wrote), the pages load MathJax from a copy beside
    them, html/mathjax/, instead of nbconvert's CDN, so the formulas render offline.
    """
    shutil.rmtree(dest, ignore_errors=True)
    notebooks = sorted((root / "notebooks").glob("*.ipynb"))
    local = [f"--HTMLExporter.mathjax_url={MATHJAX_URL}"] if mathjax else []
    _run([sys.executable, "-m", "nbconvert", "--to", "html", *local, "--output-dir", dest,
          *notebooks])  # fmt: skip
    if mathjax:
        shutil.copytree(mathjax, dest / "mathjax")
    return sorted(dest.glob("*.html"))


def readme(kit: Path, platform: str, python_version: str, commit: str | None) -> str:
    """The kit's README.txt: what is in it, how big, and the commands for a laptop."""
    wheels = sorted((kit / "wheels").glob("*.whl"))
    cuda = sum(w.stat().st_size for w in wheels if CUDA_SET.match(w.name))
    contents = [
        f"  wheels/  {len(wheels)} wheels, {human(folder_bytes(kit / 'wheels'))}: every package "
        "the course installs,",
        "           at constraints/default.txt's versions, with the test tools ([dev]) and",
        "           the build backend (setuptools)",
    ]
    if any(w.name.startswith("nvidia_") for w in wheels):
        contents.append(
            f"           of which {human(cuda)} are torch's CUDA build (nvidia-*, triton, cuda-*),"
            " which runs on a CPU too"
        )
    for m in sorted(p for p in (kit / "models").iterdir() if p.is_dir()):
        contents.append(f"  models/{m.name}/  {human(folder_bytes(m))}: a tiny Qwen2.5-VL after")
        contents.append(f"           its cold start, for {_model_use(m)}")
    if commit:
        size = human((kit / BUNDLE).stat().st_size)
        contents.append(f"  {BUNDLE}  {size}: the repository at commit {commit}")
        get = f"git clone {kit.name}/{BUNDLE} vlm-grpo && cd vlm-grpo"
    else:
        get = "cd vlm-grpo   (the repository, copied from where you got this kit)"
    if (kit / "html").is_dir():
        contents.append(
            "  html/  the notebooks with their stored outputs, for any browser: the fallback for a"
        )
        contents.append(
            "           laptop that cannot run them (formulas render offline: html/mathjax/)"
        )
    contents.append("  README.txt  this file")
    k = f"../{kit.name}"
    # One line: Windows shells have no backslash continuation.
    pip_install = (
        f".venv/bin/python -m pip install --no-index --find-links {k}/wheels "
        '-e ".[dev]" -c constraints/default.txt'
    )
    return f"""vlm-grpo workshop kit
=====================

Everything a laptop needs to run the course with no network: {human(folder_bytes(kit))} in all.
The wheels are for {platform} and Python {python_version} only.

What is in it
{chr(10).join(contents)}

On each laptop (Python {python_version}, git and make; no network needed)
  1. Copy this folder from the stick next to where the course will live.
  2. {get}
  3. make setup KIT={k}     # installs from {k}/wheels, puts the model in the cache
  4. make lab               # the notebooks; or make demo KIT={k}, make test KIT={k}

Without make (Windows: .venv\\Scripts\\python instead of .venv/bin/python)
  python -m venv .venv
  {pip_install}
  .venv/bin/python -m vlmgrpo.kit install-model {k}
  .venv/bin/jupyter lab notebooks/

install-model copies models/ into the course's cache ($VLMGRPO_CACHE, else
~/.cache/vlmgrpo), where the notebooks and `vlmgrpo train` find the tiny models
instead of building them (`vlmgrpo make-tiny` builds the same folders). The
teacher's guide is WORKSHOP.md in the repository.
"""


def build(
    kit: Path,
    platform: str | None = None,
    python_version: str | None = None,
    pip_args: list[str] | None = None,
) -> None:
    """Write the whole kit into `kit` and print what it holds."""
    root = checkout_root()
    kit = kit.resolve()
    kit.mkdir(parents=True, exist_ok=True)
    copied = add_model(kit / "models")
    download_wheels(kit / "wheels", root, platform, python_version, pip_args)
    commit = add_bundle(kit / BUNDLE, root)
    with tempfile.TemporaryDirectory() as tmp:
        add_html(kit / "html", root, fetch_mathjax(Path(tmp) / "mathjax"))
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    where = platform or sysconfig.get_platform()
    (kit / "README.txt").write_text(readme(kit, where, python_version or here, commit))
    print(f"{kit}: {human(folder_bytes(kit))}")
    print(f"  wheels: {human(folder_bytes(kit / 'wheels'))}")
    for model in copied:
        print(f"  model:  {human(folder_bytes(model))} ({model.name}, {_model_use(model)})")


def install_model(kit: Path, cache: Path | None = None) -> list[Path]:
    """Copy the kit's model folders into the cache (those not there yet); returns them."""
    from vlmgrpo.tiny import SPECS, cache_dir, cache_root

    cache = cache if cache is not None else cache_root()
    models = kit / "models"
    found = sorted(p for p in models.glob("*") if (p / "config.json").exists())
    if not found:
        raise KitError(f"{models} holds no model: build the kit with `make kit`")
    placed = []
    for src in found:
        dst = cache / src.name
        if not (dst / "config.json").exists():
            tmp = dst.with_name(dst.name + ".partial")  # an interrupted copy never looks done
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp)
            shutil.rmtree(dst, ignore_errors=True)
            tmp.rename(dst)
            print(f"{src.name}: copied into {cache}")
        else:
            print(f"{src.name}: already in {cache}")
        placed.append(dst)
    for task, spec in SPECS.items():
        wanted = cache_dir(spec).name
        if wanted not in {p.name for p in found}:
            print(
                f"warning: this checkout's tiny model for the {task} task is {wanted}, which the "
                "kit lacks (it was built from another version of vlmgrpo/tiny.py); the course "
                "will build its own, one or two minutes per laptop",
                file=sys.stderr,
            )
    return placed


def main(argv: list[str] | None = None) -> int:
    """`python -m vlmgrpo.kit build DIR ...` or `install-model DIR`; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m vlmgrpo.kit", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write a workshop kit (wheels, tiny model, repository)")
    b.add_argument("dir", type=Path)
    b.add_argument("--platform", help="wheel platform tag of the laptops, e.g. macosx_14_0_arm64")
    b.add_argument("--python-version", help="the laptops' Python, e.g. 3.11 (with --platform)")
    b.add_argument("--pip-args", default="", help="more pip download options, one string")
    i = sub.add_parser("install-model", help="copy a kit's tiny model into the cache")
    i.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(args.dir, args.platform, args.python_version, shlex.split(args.pip_args))
        else:
            install_model(args.dir)
    except KitError as err:
        print(f"vlmgrpo.kit: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
