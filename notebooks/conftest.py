"""nbval settings for the course notebooks: stderr (HF warnings, progress bars) is not compared."""


def pytest_collectstart(collector):
    if getattr(collector, "path", None) is not None and collector.path.suffix == ".ipynb":
        collector.skip_compare += ("stderr",)
