"""numba kernel behind :mod:`tasks.training.tree_text`; importing this module imports numba (about 0.7 s).

Compiled code is cached on disk (``cache=True``: next to this file, or under ``NUMBA_CACHE_DIR``), as the
drift kernels are (:mod:`tasks.drift.kernels`): only the first run on a machine compiles.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# LightGBM's kZeroThreshold (1e-35f, a float widened to double): |x| <= it counts as zero for MissingType::Zero.
ZERO_THRESHOLD = float(np.float32(1e-35))


@njit(cache=True, nogil=True)
def raw_scores(
    features: np.ndarray,
    node_start: np.ndarray,
    leaf_start: np.ndarray,
    cat_start: np.ndarray,
    split_feature: np.ndarray,
    threshold: np.ndarray,
    decision_type: np.ndarray,
    left_child: np.ndarray,
    right_child: np.ndarray,
    leaf_value: np.ndarray,
    cat_boundaries: np.ndarray,
    cat_threshold: np.ndarray,
    first_row: int,
    last_row: int,
    out: np.ndarray,
) -> None:
    """Sum of the trees' leaf values for rows ``[first_row, last_row)``, written to ``out``.

    Tree ``t``'s nodes are ``node_start[t]:node_start[t+1]`` (none: a single leaf), its leaves start at
    ``leaf_start[t]``, its categorical bitsets at ``cat_boundaries[cat_start[t]:]``. The walk is LightGBM's
    ``Tree::Decision`` (tree.h): NumericalDecision and CategoricalDecision, in double precision, and the sum
    is taken tree by tree from 0.0 in tree order, as ``GBDT::PredictRaw`` does.
    """
    trees = node_start.size - 1
    for i in range(first_row, last_row):
        total = 0.0
        for t in range(trees):
            base = node_start[t]
            if node_start[t + 1] == base:
                total += leaf_value[leaf_start[t]]
                continue
            node = 0
            while node >= 0:
                k = base + node
                fval = features[i, split_feature[k]]
                kind = decision_type[k]
                if kind & 1:  # categorical: left when the integer category is in the node's bitset
                    go_left = False
                    if not math.isnan(fval):
                        category = int(fval)
                        if category >= 0:
                            slot = cat_start[t] + int(threshold[k])
                            first = cat_boundaries[slot]
                            words = cat_boundaries[slot + 1] - first
                            word = category // 32
                            if word < words:
                                go_left = ((cat_threshold[first + word] >> (category % 32)) & 1) == 1
                    node = left_child[k] if go_left else right_child[k]
                else:
                    missing = (kind >> 2) & 3  # 0 none, 1 zero, 2 NaN
                    if math.isnan(fval) and missing != 2:
                        fval = 0.0
                    if (missing == 1 and -ZERO_THRESHOLD <= fval <= ZERO_THRESHOLD) or (
                        missing == 2 and math.isnan(fval)
                    ):
                        node = left_child[k] if kind & 2 else right_child[k]
                    elif fval <= threshold[k]:
                        node = left_child[k]
                    else:
                        node = right_child[k]
            total += leaf_value[leaf_start[t] + (-node - 1)]
        out[i] = total
