"""Fitting scikit-learn estimators while counting the fits that stopped before converging.

The probes fit hundreds of classifiers; a ``ConvergenceWarning`` for each would flood the
output, and silencing them would hide that ``max_iter`` was too low. Every caller records
them instead and reports the count (``not_converged`` in the result files).
"""
import warnings
from typing import Any

from sklearn.exceptions import ConvergenceWarning

__all__ = ['fit_counting_unconverged']


def fit_counting_unconverged(estimator: Any, *fit_args, **fit_kwargs) -> int:
    """``estimator.fit(*fit_args, **fit_kwargs)``; the number of fits that did not converge.

    Args:
        estimator: A scikit-learn estimator, or a search (``GridSearchCV``) whose inner fits
            all run in this process (``n_jobs=None``), so that their warnings are caught.
        *fit_args: Positional arguments of ``fit``.
        **fit_kwargs: Keyword arguments of ``fit``.

    Returns:
        int: How many ``ConvergenceWarning`` were raised (one per unconverged fit).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', ConvergenceWarning)
        estimator.fit(*fit_args, **fit_kwargs)
    return sum(issubclass(w.category, ConvergenceWarning) for w in caught)
