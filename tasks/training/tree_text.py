"""Scoring a LightGBM text model (``booster.model_to_string()``) without importing LightGBM.

``import lightgbm`` costs about 3 s per fresh process (it pulls scikit-learn through its compat layer); the
monitor scores every unscored batch. The registry stores models in LightGBM's text format, which spells out
every tree, so the model is parsed once per process (cached by digest) and evaluated by a numba kernel
(:mod:`tasks.training._tree_kernel`).

Why the result equals ``Booster.predict`` (tested to 1e-12 on several models, with NaNs, categoricals and
single-leaf trees):

* The text holds each threshold and leaf value with 17 significant digits: parsing gives the very doubles
  LightGBM loads.
* The walk is LightGBM's ``Tree::Decision``: numerical splits send NaN (when the missing type is not NaN)
  to 0.0, send missing values (zero or NaN by the node's missing type) by the default-left bit, and
  compare ``value <= threshold`` in double; categorical splits send NaN and negative values right and test
  the integer category in the node's bitset (``cat_boundaries``/``cat_threshold``).
* The raw score is summed tree by tree from 0.0 in double, as ``GBDT::PredictRaw`` does, and the binary
  objective's output is ``1 / (1 + exp(-sigmoid * raw))``.

What is not mirrored (linear trees, multiclass or non-``binary`` objectives, random-forest averaging) is
refused with :class:`UnsupportedModel`; the caller then scores with LightGBM and says so in its log.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

ROWS_PER_TASK = 16_384  # rows per thread's share when scoring with several threads


class UnsupportedModel(ValueError):
    """The text model uses a LightGBM feature this evaluator does not reimplement; use LightGBM itself."""


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """A binary LightGBM model's trees as flat arrays (see :func:`tasks.training._tree_kernel.raw_scores`)."""

    digest: str
    num_features: int
    sigmoid: float
    node_start: np.ndarray
    leaf_start: np.ndarray
    cat_start: np.ndarray
    split_feature: np.ndarray
    threshold: np.ndarray
    decision_type: np.ndarray
    left_child: np.ndarray
    right_child: np.ndarray
    leaf_value: np.ndarray
    cat_boundaries: np.ndarray
    cat_threshold: np.ndarray

    def __post_init__(self) -> None:
        trees = self.node_start.size - 1
        if trees < 0 or self.leaf_start.size != trees or self.cat_start.size != trees:
            raise UnsupportedModel("inconsistent tree offsets")
        nodes = int(self.node_start[-1]) if trees else 0
        for name in ("split_feature", "threshold", "decision_type", "left_child", "right_child"):
            if getattr(self, name).size != nodes:
                raise UnsupportedModel(f"{name} has {getattr(self, name).size} entries, expected {nodes}")
        if nodes and (int(self.split_feature.max()) >= self.num_features or int(self.split_feature.min()) < 0):
            raise UnsupportedModel("a split names a feature outside max_feature_idx")

    @property
    def trees(self) -> int:
        return int(self.node_start.size - 1)

    def raw_score(self, features: np.ndarray, *, num_threads: int = 1) -> np.ndarray:
        """Sum of leaf values per row of a float64 matrix in the model's feature order."""
        import numpy as np

        from tasks.training._tree_kernel import raw_scores

        matrix = np.ascontiguousarray(features, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != self.num_features:
            raise ValueError(f"expected a matrix with {self.num_features} columns, got shape {matrix.shape}")
        out = np.empty(matrix.shape[0], dtype=np.float64)
        arrays = (
            self.node_start,
            self.leaf_start,
            self.cat_start,
            self.split_feature,
            self.threshold,
            self.decision_type,
            self.left_child,
            self.right_child,
            self.leaf_value,
            self.cat_boundaries,
            self.cat_threshold,
        )
        rows = matrix.shape[0]
        if num_threads <= 1 or rows <= ROWS_PER_TASK:
            raw_scores(matrix, *arrays, 0, rows, out)
            return out
        from concurrent.futures import ThreadPoolExecutor

        bounds = [(start, min(start + ROWS_PER_TASK, rows)) for start in range(0, rows, ROWS_PER_TASK)]
        with ThreadPoolExecutor(max_workers=num_threads) as pool:  # the kernel releases the GIL
            list(pool.map(lambda b: raw_scores(matrix, *arrays, b[0], b[1], out), bounds))
        return out

    def predict_proba(self, features: np.ndarray, *, num_threads: int = 1) -> np.ndarray:
        import numpy as np

        return 1.0 / (1.0 + np.exp(-self.sigmoid * self.raw_score(features, num_threads=num_threads)))


def _header(text: str) -> dict[str, str]:
    head = text.split("\nTree=", 1)[0]
    return dict(line.split("=", 1) for line in head.splitlines() if "=" in line)


def _numbers(block: dict[str, str], key: str, kind: Any) -> list[Any]:
    value = block.get(key, "").strip()
    return [kind(v) for v in value.split()] if value else []


@functools.lru_cache(maxsize=8)
def _parse_cached(digest: str, text: str) -> TreeEnsemble:
    import numpy as np

    header = _header(text)
    if header.get("version") != "v4":
        raise UnsupportedModel(f"model text version {header.get('version')!r} (expected v4)")
    if header.get("num_class", "1") != "1" or header.get("num_tree_per_iteration", "1") != "1":
        raise UnsupportedModel("multiclass models are not mirrored")
    if "average_output" in header or "\naverage_output" in text.split("\nTree=", 1)[0]:
        raise UnsupportedModel("random-forest averaging (average_output) is not mirrored")
    objective = header.get("objective", "").split()
    if not objective or objective[0] != "binary":
        raise UnsupportedModel(f"objective {' '.join(objective) or '(none)'!r} is not mirrored (binary only)")
    sigmoid = 1.0
    for part in objective[1:]:
        name, _, value = part.partition(":")
        if name == "sigmoid":
            sigmoid = float(value)
    num_features = int(header["max_feature_idx"]) + 1
    body = text.split("\nTree=", 1)[1] if "\nTree=" in text else ""
    body = body.split("\nend of trees", 1)[0]
    node_start, leaf_start, cat_start = [0], [], []
    split_feature: list[int] = []
    threshold: list[float] = []
    decision_type: list[int] = []
    left: list[int] = []
    right: list[int] = []
    leaves: list[float] = []
    boundaries: list[int] = []
    bitsets: list[int] = []
    for chunk in ("Tree=" + body).split("\nTree=") if body else []:
        block = dict(line.split("=", 1) for line in chunk.strip().splitlines() if "=" in line)
        if block.get("is_linear", "0") != "0":
            raise UnsupportedModel("linear trees are not mirrored")
        num_leaves = int(block["num_leaves"])
        values = _numbers(block, "leaf_value", float)
        if len(values) != num_leaves:
            raise UnsupportedModel(f"tree {block.get('Tree')} lists {len(values)} leaf values for {num_leaves} leaves")
        leaf_start.append(len(leaves))
        leaves.extend(values)
        cat_start.append(len(boundaries))
        internal = num_leaves - 1
        if internal:
            tree_features = _numbers(block, "split_feature", int)
            tree_threshold = _numbers(block, "threshold", float)
            tree_kind = _numbers(block, "decision_type", int)
            tree_left = _numbers(block, "left_child", int)
            tree_right = _numbers(block, "right_child", int)
            if {len(tree_features), len(tree_threshold), len(tree_kind), len(tree_left), len(tree_right)} != {internal}:
                raise UnsupportedModel(f"tree {block.get('Tree')} has inconsistent node arrays")
            split_feature.extend(tree_features)
            threshold.extend(tree_threshold)
            decision_type.extend(tree_kind)
            left.extend(tree_left)
            right.extend(tree_right)
            if int(block.get("num_cat", "0")) > 0:
                offset = len(bitsets)
                boundaries.extend(b + offset for b in _numbers(block, "cat_boundaries", int))
                bitsets.extend(_numbers(block, "cat_threshold", int))
        node_start.append(len(split_feature))
    return TreeEnsemble(
        digest=digest,
        num_features=num_features,
        sigmoid=sigmoid,
        node_start=np.asarray(node_start, dtype=np.int64),
        leaf_start=np.asarray(leaf_start, dtype=np.int64),
        cat_start=np.asarray(cat_start, dtype=np.int64),
        split_feature=np.asarray(split_feature, dtype=np.int64),
        threshold=np.asarray(threshold, dtype=np.float64),
        decision_type=np.asarray(decision_type, dtype=np.int64),
        left_child=np.asarray(left, dtype=np.int64),
        right_child=np.asarray(right, dtype=np.int64),
        leaf_value=np.asarray(leaves, dtype=np.float64),
        cat_boundaries=np.asarray(boundaries or [0], dtype=np.int64),
        cat_threshold=np.asarray(bitsets or [0], dtype=np.int64),
    )


def parse_model_text(text: str) -> TreeEnsemble:
    """The trees of a LightGBM text model (cached per digest); :class:`UnsupportedModel` for what is not
    mirrored or cannot be read."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    try:
        return _parse_cached(digest, text)
    except UnsupportedModel:
        raise
    except (KeyError, ValueError, IndexError) as exc:
        raise UnsupportedModel(f"model text sha256:{digest[:12]} could not be parsed: {exc}") from exc
