"""tunebook: hyperparameter studies of small neural networks, trained as stacked models.

The CLI is a thin shell over these functions; in a notebook::

    import tunebook
    spec = tunebook.load_spec("examples/quickstart.toml")
    outcome = tunebook.run_study(spec)          # trains what is not done yet
    runs = tunebook.load_runs("modellogs/quickstart")
    df = tunebook.runs_dataframe(runs)         # when pandas is installed
"""

__version__ = "0.1.0"

from .errors import DataError, SpecError, StoreError, TrialError, TunebookError  # noqa: E402
from .spec import StudySpec, TrialConfig, load_spec, parse_spec  # noqa: E402


def __getattr__(name: str):
    # Heavy modules (torch, tensorboard) load on first use, so `tunebook validate` is quick.
    if name in ("run_study", "run_path", "StudyOutcome"):
        from . import execute
        return getattr(execute, name)
    if name == "run_until_decided":
        from . import loop
        return loop.run_until_decided
    if name in ("load_runs", "runs_dataframe", "runs_table"):
        from . import results
        return getattr(results, name)
    raise AttributeError(name)


__all__ = ["DataError", "SpecError", "StoreError", "TrialError", "TunebookError", "StudySpec",
           "TrialConfig", "load_spec", "parse_spec", "run_study", "run_path", "StudyOutcome",
           "load_runs", "runs_dataframe", "runs_table", "run_until_decided"]
