"""tunebook: hyperparameter studies of small neural networks, trained as stacked models.

The CLI is a thin shell over these functions; in a notebook::

    import tunebook
    spec = tunebook.load_spec("examples/quickstart.toml")
    outcome = tunebook.run_study(spec)          # trains what is not done yet
    runs = tunebook.load_runs("modellogs/quickstart")
    df = tunebook.runs_dataframe(runs)         # when pandas is installed
"""

from ._version import __version__  # noqa: E402,F401

from .errors import DataError, SpecError, StoreError, TrialError, TunebookError  # noqa: E402
from .spec import StudySpec, TrialConfig, load_spec, parse_spec  # noqa: E402


def __getattr__(name: str):
    # Heavy modules (torch, tensorboard) load on first use, so `tunebook validate` is quick.
    if name in ("run", "run_study", "run_path", "Programme", "keep_best"):
        from . import runner
        return getattr(runner, name)
    if name == "StudyOutcome":
        from .execute import StudyOutcome
        return StudyOutcome
    if name == "RunOptions":
        from .options import RunOptions
        return RunOptions
    if name == "load_model":
        from .weights import load_model
        return load_model
    if name == "Dataset":
        from .userdata import Dataset
        return Dataset
    if name == "Budget":
        from .budget import Budget
        return Budget
    if name == "run_until_decided":
        from .loop import run_until_decided
        return run_until_decided
    if name == "run_search":
        from .search import run_search
        return run_search
    if name in ("load_runs", "runs_dataframe", "runs_table"):
        from . import results
        return getattr(results, name)
    raise AttributeError(name)


__all__ = ["DataError", "SpecError", "StoreError", "TrialError", "TunebookError", "StudySpec",
           "TrialConfig", "load_spec", "parse_spec", "run", "run_study", "run_path", "run_search",
           "run_until_decided", "Programme", "RunOptions", "Budget", "Dataset", "load_model", "keep_best", "StudyOutcome",
           "load_runs", "runs_dataframe", "runs_table"]
