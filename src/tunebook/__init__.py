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


#: name -> the module that defines it, loaded on first use: heavy modules (torch,
#: tensorboard) wait, so `tunebook validate` is quick.
_LAZY = {
    "run": "runner", "run_study": "runner", "run_path": "runner", "Programme": "runner", "keep_best": "runner",
    "StudyOutcome": "execute", "RunOptions": "options", "Budget": "budget", "Dataset": "userdata",
    "load_model": "weights", "run_until_decided": "loop", "run_search": "search",
    "load_runs": "results", "runs_dataframe": "results", "runs_table": "results", "classes_table": "results",
    "configs_dataframe": "results", "verdicts_dataframe": "results", "analyze": "analysis.study",
    "fetch_dataset": "data",
    "hyperparameters": "usermodel", "Int": "usermodel", "Float": "usermodel", "Choice": "usermodel",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)


__all__ = ["DataError", "SpecError", "StoreError", "TrialError", "TunebookError", "StudySpec",
           "TrialConfig", "load_spec", "parse_spec", "run", "run_study", "run_path", "run_search",
           "run_until_decided", "Programme", "RunOptions", "Budget", "Dataset", "load_model", "keep_best", "StudyOutcome",
           "load_runs", "runs_dataframe", "runs_table", "classes_table", "configs_dataframe", "verdicts_dataframe", "analyze",
           "fetch_dataset", "hyperparameters", "Int", "Float", "Choice"]
