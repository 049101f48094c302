"""The workshop kit: its parts, and (slow tier) a fresh clone installed and trained offline."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import pytest

from tests.conftest import install
from vlmgrpo import kit, tiny

ROOT = Path(__file__).resolve().parent.parent


def fake_kit(where: Path, *model_names: str) -> Path:
    """A kit folder with two small stand-in wheels and a model folder per name."""
    (where / "wheels").mkdir(parents=True)
    (where / "wheels" / "nvidia_cublas-1-py3-none-any.whl").write_bytes(b"x" * 3000)
    (where / "wheels" / "six-1-py3-none-any.whl").write_bytes(b"x" * 1000)
    for name in model_names:
        model = where / "models" / name
        model.mkdir(parents=True)
        (model / "config.json").write_text("{}")
        (model / "model.safetensors").write_bytes(b"w" * 500)
    return where


def test_build_requirements_are_pyprojects():
    """pip's build isolation installs these from the wheelhouse: they must be the backend's."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert tuple(pyproject["build-system"]["requires"]) == kit.BUILD_REQUIREMENTS


@pytest.mark.parametrize(
    ("tag", "target", "env"),
    [
        ("macosx_14_0_arm64", "aarch64-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": "14.0"}),
        ("win_amd64", "x86_64-pc-windows-msvc", {}),
        ("manylinux_2_28_aarch64", "aarch64-manylinux_2_28", {}),
    ],
)
def test_platform_tags_map_to_uv_targets(tag, target, env):
    assert kit.uv_target(tag) == (target, env)


def test_unknown_platform_is_refused():
    with pytest.raises(kit.KitError, match="macosx_14_0_arm64"):
        kit.uv_target("solaris_sparc")


def test_linux_tags_reach_down_to_manylinux2014():
    """pip widens macOS tags itself but not glibc ones; most Linux wheels say 2_17."""
    tags = kit.pip_platforms("manylinux_2_28_x86_64")
    assert tags[0] == "manylinux_2_28_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64"} <= set(tags)
    assert kit.pip_platforms("win_amd64") == ["win_amd64"]


def test_another_python_needs_a_platform(tmp_path):
    with pytest.raises(kit.KitError, match="needs --platform"):
        kit.download_wheels(tmp_path / "wheels", ROOT, python_version="2.7")


def test_install_model_copies_into_the_cache_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VLMGRPO_CACHE", str(tmp_path / "cache"))
    folders = sorted(tiny.cache_dir(spec) for spec in tiny.SPECS.values())
    k = fake_kit(tmp_path / "kit", *(folder.name for folder in folders))
    placed = kit.install_model(k)
    assert placed == folders and all((p / "config.json").exists() for p in placed)
    for folder in placed:
        shipped = k / "models" / folder.name / "model.safetensors"
        assert filecmp.cmp(folder / "model.safetensors", shipped)
    assert "warning" not in capsys.readouterr().err
    before = [(p / "config.json").stat().st_mtime_ns for p in placed]
    kit.install_model(k)
    assert [(p / "config.json").stat().st_mtime_ns for p in placed] == before
    assert "already in" in capsys.readouterr().out
    assert not list((tmp_path / "cache").glob("*.partial"))


def test_install_model_warns_when_the_kit_is_from_another_version(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VLMGRPO_CACHE", str(tmp_path / "cache"))
    kit.install_model(fake_kit(tmp_path / "kit", "tiny-qwen2.5-vl-0000000000"))
    err = capsys.readouterr().err
    assert "will build its own" in err
    assert "for the colour task" in err and "for the prices task" in err


def test_a_kit_without_a_model_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VLMGRPO_CACHE", str(tmp_path / "cache"))
    (tmp_path / "kit" / "models").mkdir(parents=True)
    assert kit.main(["install-model", str(tmp_path / "kit")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vlmgrpo.kit: error: ") and "make kit" in err
    assert len(err.splitlines()) == 1


def test_readme_says_what_is_in_the_kit_and_how_to_use_it(tmp_path):
    k = fake_kit(tmp_path / "usb-kit", "tiny-qwen2.5-vl-abc", "tiny-qwen2.5-vl-def")
    (k / "models" / "tiny-qwen2.5-vl-def" / "tiny_spec.json").write_text('{"task": "prices"}')
    (k / kit.BUNDLE).write_bytes(b"b" * 2000)
    (k / "html").mkdir()
    text = kit.readme(k, "win_amd64", "3.11", "1234abc")
    assert "2 wheels, 4.0 kB" in text and "of which 3.0 kB are torch's CUDA build" in text
    assert "models/tiny-qwen2.5-vl-abc/  502 B" in text
    assert "models/tiny-qwen2.5-vl-def/  520 B" in text and "notebook 06" in text
    assert "git clone usb-kit/vlm-grpo.bundle vlm-grpo" in text
    assert "make setup KIT=../usb-kit" in text
    assert "--no-index --find-links ../usb-kit/wheels" in text
    assert "win_amd64 and Python 3.11" in text
    assert "html/  the notebooks with their stored outputs" in text


def fake_mathjax_tarball(where: Path) -> tuple[str, str]:
    """An npm-style tarball with every part the kit keeps and one it drops: (url, integrity)."""
    import base64
    import hashlib
    import tarfile

    package = where / "package"
    for part in (*kit.MATHJAX_PARTS, "unpacked/"):
        path = package / part / "x.js" if part.endswith("/") else package / part
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"// {part}")
    tgz = where / "mathjax.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(package, arcname="package")
    digest = base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
    return tgz.as_uri(), f"sha512-{digest}"


def test_mathjax_is_checked_and_cut_to_what_the_pages_use(tmp_path):
    url, integrity = fake_mathjax_tarball(tmp_path)
    got = kit.fetch_mathjax(tmp_path / "mathjax", url, integrity)
    assert (got / "MathJax.js").read_text() == "// MathJax.js"
    assert (got / "jax/output/CommonHTML/x.js").exists()
    assert not (got / "unpacked").exists()  # the rest of the package stays out of the kit
    with pytest.raises(kit.KitError, match="does not match its sha512; download it again"):
        kit.fetch_mathjax(tmp_path / "again", url, "sha512-" + "A" * 88)
    with pytest.raises(kit.KitError, match="cannot download MathJax"):
        kit.fetch_mathjax(tmp_path / "gone", (tmp_path / "missing.tgz").as_uri(), integrity)


def test_notebooks_render_to_html_for_any_browser(tmp_path):
    url, integrity = fake_mathjax_tarball(tmp_path)
    mathjax = kit.fetch_mathjax(tmp_path / "mathjax", url, integrity)
    pages = kit.add_html(tmp_path / "html", ROOT, mathjax)
    assert [p.stem for p in pages] == sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    page = pages[0].read_text()
    assert "Reinforcement learning" in page
    assert f'src="{kit.MATHJAX_URL}"' in page and "ajax/libs/mathjax" not in page  # no CDN
    assert (tmp_path / "html" / "mathjax" / "MathJax.js").exists()  # beside the pages


@install
def test_the_real_mathjax_holds_what_its_config_loads(tmp_path):
    got = kit.fetch_mathjax(tmp_path / "mathjax")
    assert "MathJax.Hub" in (got / "MathJax.js").read_text()
    for needed in ("config/TeX-AMS_CHTML-full.js", "extensions/Safe.js",
                   "jax/output/CommonHTML/fonts/TeX/fontdata.js",
                   "fonts/HTML-CSS/TeX/woff/MathJax_Main-Regular.woff"):  # fmt: skip
        assert (got / needed).is_file(), needed
    assert kit.folder_bytes(got) < 8_000_000


def test_sizes_read_like_pips():
    assert kit.human(3_278_582_389) == "3.28 GB"
    assert kit.human(4_400_000) == "4.4 MB"
    assert kit.human(512) == "512 B"


def test_make_setup_uses_only_the_kit_when_given_one(tmp_path):
    """`make -n -B` prints the recipes without running them."""
    venv = str(tmp_path / "venv")
    dry = ["make", "-n", "-B", "setup", f"VENV={venv}"]
    with_kit = subprocess.run([*dry, "KIT=/media/kit"], cwd=ROOT, capture_output=True, text=True)
    assert with_kit.returncode == 0, with_kit.stderr
    assert "--no-index --find-links /media/kit/wheels" in with_kit.stdout
    assert "-m vlmgrpo.kit install-model /media/kit" in with_kit.stdout
    plain = subprocess.run(dry, cwd=ROOT, capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr
    assert "--no-index" not in plain.stdout and "vlmgrpo.kit" not in plain.stdout


def offline_prefix() -> list[str]:
    """A command prefix that runs with no network (a new network namespace), or skip."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed: cannot cut the network")
    reasons = []
    for prefix in (["unshare", "-n"], ["unshare", "-rn"]):  # as root, else as a mapped user
        done = subprocess.run([*prefix, "true"], capture_output=True, text=True)
        if done.returncode == 0:
            return prefix
        reasons.append(f"{' '.join(prefix)}: {done.stderr.strip()}")
    pytest.skip("a network namespace is not permitted here (" + "; ".join(reasons) + ")")


@install
def test_a_fresh_clone_installs_and_trains_from_the_kit_with_no_network():
    """`make kit`, then in a clone of the kit's bundle with no network: `make setup KIT=...`
    and a 2-step run that uses the kit's tiny model from the cache instead of building one.

    `make test KIT=DIR` (VLMGRPO_KIT) checks the kit DIR instead of building one, so a laptop
    with no network can run it. The clone holds the kit's commit (the bundle is of HEAD), as
    CI's clean clone does. Disk: up to 10 GB in a temporary folder (the wheels and a venv),
    removed at the end.
    """
    offline = offline_prefix()
    work = Path(tempfile.mkdtemp(prefix="vlmgrpo-kit-"))
    try:
        clone, cache = work / "clone", work / "cache"
        if os.environ.get("VLMGRPO_KIT"):
            k = Path(os.environ["VLMGRPO_KIT"]).resolve()
        else:
            k = work / "kit"
            built = subprocess.run(["make", "kit", f"KIT_DIR={k}"], cwd=ROOT, capture_output=True)
            assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        shipped = sorted((k / "models").iterdir())
        names = [model.name for model in shipped]
        subprocess.run(["git", "clone", "-q", str(k / kit.BUNDLE), str(clone)], check=True)

        # A laptop's environment: none of this machine's pip settings, no pip cache.
        env = {key: v for key, v in os.environ.items() if not key.startswith("PIP_")}
        env.update(
            PIP_CONFIG_FILE=os.devnull,
            PIP_NO_CACHE_DIR="1",
            VLMGRPO_CACHE=str(cache),
            OMP_NUM_THREADS="1",
        )
        setup = subprocess.run(
            [*offline, "make", "setup", f"KIT={k}", f"PYTHON={sys.executable}"],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
        )
        assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
        assert sorted(p.name for p in cache.iterdir()) == names
        stamps = [(cache / name / "config.json").stat().st_mtime_ns for name in names]

        start = time.monotonic()
        train = [".venv/bin/vlmgrpo", "train", "--max-steps", "2", "--quiet"]
        train += ["--output-dir", str(work / "run")]
        run = subprocess.run(
            [*offline, *train], cwd=clone, env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert json.loads((work / "run" / "eval.json").read_text())["steps"] == 2
        # The kit's models were used as they are: no other folder, nothing rewritten.
        assert sorted(p.name for p in cache.iterdir()) == names
        assert [(cache / name / "config.json").stat().st_mtime_ns for name in names] == stamps
        for model in shipped:
            common = [p.name for p in model.iterdir()]
            _, mismatch, errors = filecmp.cmpfiles(model, cache / model.name, common, False)
            assert not mismatch and not errors
        print(f"offline 2-step run: {time.monotonic() - start:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
