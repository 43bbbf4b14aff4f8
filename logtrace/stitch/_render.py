"""The renderers' input: a run's rows, span tree, corrected times and order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._group import Table
from ._order import Order
from ._tree import Tree

__all__ = ["Rendering"]


@dataclass(slots=True)
class Rendering:
    """Everything a renderer reads; forked workers inherit it without copying."""

    table: Table
    tree: Tree
    corrected: npt.NDArray[np.float64]
    order: Order
