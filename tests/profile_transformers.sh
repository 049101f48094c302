#!/usr/bin/env bash
# The fast tests and a 2-step tiny training run under another install profile's Python libraries,
# laid over the default .venv with PYTHONPATH:
#   bash tests/profile_transformers.sh [constraints/vllm.txt]     (make test-vllm-profile)
# The overlay holds each pin of the profile whose version differs from .venv (for the vLLM profile:
# transformers and huggingface-hub), less the packages that need a GPU build (vLLM, torch,
# torchvision, torchaudio): those are checked by the resolver dry run in test_install_profiles.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${1:-constraints/vllm.txt}
PY=${PY:-.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

overlay=$("$PY" - "$PROFILE" <<'EOF'
import importlib.metadata as md
import sys

from packaging.requirements import Requirement

GPU_BUILDS = {"vllm", "torch", "torchvision", "torchaudio"}
for raw in open(sys.argv[1]):
    line = raw.split("#", 1)[0].strip()
    if not line:
        continue
    req = Requirement(line)
    (spec,) = req.specifier
    if req.name in GPU_BUILDS:
        continue
    try:
        installed = md.version(req.name)
    except md.PackageNotFoundError:
        continue  # only needed by what this overlay leaves out
    if installed != spec.version:
        print(f"{req.name}=={spec.version}")
EOF
)
if [ -z "$overlay" ]; then
    echo "$PROFILE: .venv already has its versions; nothing to lay over"
    exit 0
fi
echo "== $PROFILE over .venv:" $overlay
"$PY" -m pip install --quiet --no-deps --target "$work/site" $overlay

export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
unset VLMGRPO_SLOW
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# Each overlaid package must be the one imported, and the installed set must still hold together.
"$PY" - $overlay <<'EOF'
import importlib.metadata as md
import sys

import transformers

for pin in sys.argv[1:]:
    name, version = pin.split("==")
    assert md.version(name) == version, f"{name}: {md.version(name)} is imported, not {version}"
print("transformers", transformers.__version__, "from", transformers.__file__)
EOF

start=$SECONDS
# Two pytest-xdist workers with one torch thread each, as `make test-fast` runs them.
"$PY" -m pytest tests -x -q -p no:cacheprovider -n "${TEST_WORKERS:-2}" --dist loadfile
echo "== fast tests: $((SECONDS - start)) s"

start=$SECONDS
"$PY" - "$work/run" <<'EOF'
import sys

import transformers

from vlmgrpo.cli import main

print("transformers", transformers.__version__, "in the training process")
argv = ["train", "--preset", "tiny", "--max-steps", "2", "--output-dir", sys.argv[1], "--quiet"]
sys.exit(main(argv))
EOF
test -f "$work/run/eval.json"
echo "== 2-step tiny run: $((SECONDS - start)) s; eval.json:"
cat "$work/run/eval.json"
echo
