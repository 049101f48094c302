"""nbval settings for the course notebooks, and how pytest-xdist shares them between workers.

stderr (HF warnings, progress bars) is not compared.

`make test` runs two pytest-xdist workers. A notebook is one kernel, so its cells stay
together, in order, on one worker; the notebooks that reuse another's run folders go with it,
so a run is trained once, before it is read (notebook 04's runs serve notebook 05 and
solutions 04 and 05; notebook 06's serves solutions 06). Those two groups hold most of the
training, so they start first, one on each worker; the test files follow, a file at a time (a
module's fixtures are built once).
"""

from __future__ import annotations

import pytest

# A notebook's group: the run folder it trains or reads, else the notebook itself.
RUN_GROUPS = {
    "04_grpo_training.ipynb": "run-nb04",
    "solutions/04_grpo_training.ipynb": "run-nb04",
    "05_evaluation.ipynb": "run-nb04",
    "solutions/05_evaluation.ipynb": "run-nb04",
    "06_reasoning.ipynb": "run-nb06",
    "solutions/06_reasoning.ipynb": "run-nb06",
}
FIRST = ("run-nb04", "run-nb06")  # the longest groups, started first


def pytest_collectstart(collector):
    if getattr(collector, "path", None) is not None and collector.path.suffix == ".ipynb":
        collector.skip_compare += ("stderr",)


def scope(nodeid: str) -> str:
    """The unit one worker runs whole: a notebook's group, else the test's file."""
    path = nodeid.split("::", 1)[0]
    if not path.endswith(".ipynb"):
        return path
    parts = path.split("/")
    name = "/".join(parts[-2:]) if parts[-2:-1] == ["solutions"] else parts[-1]
    return RUN_GROUPS.get(name, path)


def pytest_collection_modifyitems(items):
    """The longest groups first (every worker collects, and so orders, the same way)."""
    rank = {group: i for i, group in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(scope(item.nodeid), len(FIRST)))  # stable


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: without it, nothing to do
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class NotebookScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope(nodeid)

    return NotebookScheduling(config, log)
