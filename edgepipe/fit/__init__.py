"""``edgepipe fit``: the target profile drives the search for the compression that meets every budget.

See :mod:`edgepipe.fit.driver` for the flow and docs/fit.md for the user's view.
"""

from edgepipe.fit.driver import FitOptions, FitResult, run_fit

__all__ = ["FitOptions", "FitResult", "run_fit"]
