"""The progress bar of the evaluation tools: rich's, as mmpretrain's tools draw it, on stderr.

Every long loop of ``tools/analysis`` draws its bar through :func:`progress_bar`, so that the
tools' stdout holds only their results (the lines the docs and tests parse, e.g. ``linear probe
top-1: X.XX%``) and a redirected stdout is free of bar frames. mmpretrain's own
``mmpretrain.utils.track`` draws on stdout.

Paper: `Revisiting Contrastive Methods for Unsupervised Learning of Visual Representations
<https://arxiv.org/abs/2106.05967>`_.
"""
from typing import Iterable, Optional, TypeVar

__all__ = ['progress_bar']

T = TypeVar('T')


def progress_bar(iterable: Iterable[T],
                 description: str,
                 total: Optional[float] = None,
                 enabled: bool = True) -> Iterable[T]:
    """Iterate over ``iterable`` with a rich progress bar on stderr.

    Args:
        iterable (Iterable): What to iterate over.
        description (str): The bar's label.
        total (float, optional): Number of items; defaults to ``len(iterable)`` where it has one.
        enabled (bool): Draw the bar; False iterates plainly (the tools' ``--no-progress``).
            Defaults to True.

    Returns:
        Iterable: The items of ``iterable``, in order.
    """
    if not enabled:
        return iterable
    # imported here: ``import revisit_ssl`` stays free of rich (tests/test_import_hygiene.py)
    from rich.console import Console
    from rich.progress import track
    return track(iterable, description, total, console=Console(stderr=True))
