"""The install profiles: pyproject's ranges, the constraints files and environment.yml agree, and
each profile resolves.

Two profiles share pyproject.toml's requirements:
- default (constraints/default.txt, repeated in environment.yml): the course, CPU or GPU;
- vllm (constraints/vllm.txt): GPU generation with vLLM, which pins its own torch and transformers.

The cheap checks always run. The resolver dry runs need PyPI and a few minutes: VLMGRPO_SLOW=1.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import install

ROOT = Path(__file__).resolve().parent.parent
PROFILES = {
    "default": ROOT / "constraints" / "default.txt",
    "vllm": ROOT / "constraints" / "vllm.txt",
}
# Where the vLLM profile may leave the default's versions: vLLM pins torch, torchvision and
# torchaudio, caps transformers, and that transformers needs huggingface-hub < 2.
VLLM_OWN = {"vllm", "torch", "torchvision", "torchaudio", "transformers", "huggingface-hub"}


def read_pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a constraints file, by canonical name."""
    pins = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{path.name}:{number}: not exact"
        name = canonicalize_name(req.name)
        assert name not in pins, f"{path.name}:{number}: {name} pinned twice"
        pins[name] = specs[0].version
    return pins


def environment_pins() -> dict[str, str]:
    """The `name==version` entries of environment.yml's pip section."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    (pip_items,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    pins = {}
    for item in pip_items:
        if item.startswith("-"):  # `-e .`
            continue
        req = Requirement(item)
        (spec,) = req.specifier
        assert spec.operator == "==", f"environment.yml: {item} is not exact"
        pins[canonicalize_name(req.name)] = spec.version
    return pins


def pyproject_requirements(*extras: str) -> list[Requirement]:
    """pyproject.toml's dependencies plus the named extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def test_environment_yml_repeats_the_default_pins():
    assert environment_pins() == read_pins(PROFILES["default"])


@pytest.mark.parametrize(("profile", "extras"), [("default", ("dev",)), ("vllm", ("dev", "vllm"))])
def test_every_pin_lies_in_pyprojects_ranges(profile, extras):
    pins = read_pins(PROFILES[profile])
    for req in pyproject_requirements(*extras):
        name = canonicalize_name(req.name)
        assert name in pins, f"{PROFILES[profile].name} does not pin {name} ({req})"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{PROFILES[profile].name}: {name}=={pins[name]} is outside pyproject's {req}"
        )


def test_the_vllm_profile_changes_only_what_vllm_needs():
    default, vllm = read_pins(PROFILES["default"]), read_pins(PROFILES["vllm"])
    assert set(default) <= set(vllm), f"vllm.txt lacks {sorted(set(default) - set(vllm))}"
    changed = {name for name in default if default[name] != vllm[name]}
    assert changed <= VLLM_OWN, f"vllm.txt moves {sorted(changed - VLLM_OWN)} off the default"
    assert set(vllm) - set(default) <= VLLM_OWN


def test_the_4bit_error_installs_the_pinned_bitsandbytes():
    """The one-line error of a 4-bit preset without bitsandbytes names this exact version."""
    from vlmgrpo.presets import BITSANDBYTES

    for profile in PROFILES.values():
        assert BITSANDBYTES == f"bitsandbytes=={read_pins(profile)['bitsandbytes']}"
    (pyproject,) = [r for r in pyproject_requirements() if r.name == "bitsandbytes"]
    assert str(pyproject.specifier) == BITSANDBYTES.removeprefix("bitsandbytes")
    # Where a renter's CUDA GPU is; never on macOS, whose kits must build without it.
    platforms = {"linux": True, "win32": True, "darwin": False}
    for platform, wanted in platforms.items():
        assert pyproject.marker.evaluate({"sys_platform": platform}) is wanted, platform


def test_the_vllm_pin_is_one_trl_allows():
    """TRL's `vllm` extra names the vLLM releases it supports (read from the installed TRL)."""
    pins = read_pins(PROFILES["vllm"])
    assert importlib.metadata.version("trl") == pins["trl"]
    (allowed,) = [
        Requirement(line)
        for line in importlib.metadata.requires("trl") or []
        if canonicalize_name(Requirement(line).name) == "vllm"
    ]
    assert allowed.specifier.contains(pins["vllm"]), f"trl {pins['trl']} wants {allowed}"


# --- resolver dry runs -------------------------------------------------------------------------

# pip with HTTP range requests (--use-feature=fast-deps): it reads each wheel's METADATA without
# downloading the wheel. The venv's pip 23.2 fetched every wheel in a dry run (1.6 GB for the vLLM
# profile, measured) where the index serves no separate metadata files.
RESOLVER_PIP = "pip==26.3"
PYPI = "https://pypi.org/simple/pip/"
# pip's own settings that point at other indexes, local wheels or constraints.
PIP_SOURCES = ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_NO_INDEX")


def pypi_reachable() -> str | None:
    """None when PyPI answers, else why not."""
    cafile = os.environ.get("PIP_CERT")
    context = ssl.create_default_context(cafile=cafile if cafile else None)
    try:
        with urllib.request.urlopen(PYPI, timeout=15, context=context):
            return None
    except OSError as err:
        return f"PyPI unreachable ({err})"


@pytest.fixture(scope="module")
def resolver_pip(tmp_path_factory) -> Path:
    """A folder holding RESOLVER_PIP, to put on PYTHONPATH."""
    reason = pypi_reachable()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("resolver-pip")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run([*command, "--target", str(folder), RESOLVER_PIP], check=True, timeout=300)
    return folder


def download_megabytes(output: str) -> float:
    """What pip reports downloading in full ("Downloading x.whl (1.2 MB)"), in MB."""
    scale = {"kB": 1e-3, "MB": 1.0, "GB": 1e3}
    sizes = re.findall(r"Downloading \S+ \(([\d.]+) (kB|MB|GB)\)", output)
    return sum(float(value) * scale[unit] for value, unit in sizes)


@install
@pytest.mark.parametrize(
    ("case", "extras", "profile", "plain_pypi"),
    [
        pytest.param("default", "dev", "default", False, id="default"),
        pytest.param("deepspeed", "deepspeed", "default", False, id="deepspeed"),
        pytest.param("vllm", "vllm", "vllm", False, id="vllm"),
        # A machine with no local wheels or pip settings (a rented GPU): the CUDA torch from PyPI.
        pytest.param("vllm-plain-pypi", "vllm", "vllm", True, id="vllm-plain-pypi"),
    ],
)
def test_profile_resolves(resolver_pip, tmp_path, case, extras, profile, plain_pypi):
    """pip resolves the profile's extras under its constraints, to exactly its pins (~1-3 min)."""
    env = {**os.environ, "PYTHONPATH": str(resolver_pip)}
    if plain_pypi:
        env = {key: value for key, value in env.items() if key not in PIP_SOURCES}
        env.pop("PIP_CONSTRAINT", None)
        env["PIP_CONFIG_FILE"] = os.devnull  # no pip.conf at all
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
    command += ["--use-feature=fast-deps", "--report", str(report), "--progress-bar", "off"]
    command += ["-e", f"{ROOT}[{extras}]", "-c", str(PROFILES[profile])]
    start = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    seconds = time.monotonic() - start
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{case}: pip failed after {seconds:.0f} s\n{output[-4000:]}"

    resolved = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    pins = read_pins(PROFILES[profile])
    expected = {"torch", "torchvision", "transformers", "trl"} | {
        "vllm": {"vllm"},
        "deepspeed": {"deepspeed"},
    }.get(extras, set())
    assert expected <= set(resolved), f"{case}: not resolved: {sorted(expected - set(resolved))}"
    for name in sorted(set(pins) & set(resolved)):
        # A local label (torch 2.13.0+cpu from a local wheel folder) is the same release.
        assert Version(Version(resolved[name]).public) == Version(pins[name]), (
            f"{case}: {name} resolved to {resolved[name]}, pinned {pins[name]}"
        )
    megabytes = download_megabytes(output)
    assert megabytes < 100, f"{case}: the dry run downloaded {megabytes:.0f} MB of packages"
