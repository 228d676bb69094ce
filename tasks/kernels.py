"""Compiled inner loops of drift profiling: a radix sort of float64 values, the exact KS/Wasserstein merge,
and the moments behind the histogram bins.

Sorting every numeric column of every chunk and merging it with the reference's sorted sample is
most of profiling's work. polars' comparison sort costs about 26 ns per value at 100k values; numpy
needs an argsort and a dozen array passes for the merge. A least-significant-digit radix sort on the
IEEE-754 bits (flipped so that unsigned order is numeric order) and a single-pass merge do the same
in about a third of the time, with identical results: the sort is exact, and the merge counts the
ECDF gap in integers, as :func:`tasks.profiling.ecdf_statistics` does.

numba is imported on first use, not with this module (its import costs about 0.7 s). Compiled code
is cached on disk (``cache=True``: next to this file, or under ``NUMBA_CACHE_DIR``), so only the first
run on a machine pays the compilation (a few seconds). Both functions release the GIL, so columns
profiled in parallel threads run truly in parallel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# Above this many values 8-bit digits beat 11-bit ones: 256 scatter streams stay in cache, 2048 do not.
WIDE_DIGIT_MAX = 1 << 18

_compiled: dict[str, Any] = {}  # filled on first use


def sort_floats(values: np.ndarray) -> np.ndarray:
    """``numpy.sort`` of float64 values without NaN (a new array); -0.0 sorts just before 0.0."""
    import numpy as np

    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.size < 2:
        return values.copy()
    bits = 11 if values.size <= WIDE_DIGIT_MAX else 8
    return np.asarray(_kernels()["radix_sort"](values, bits))


def ks_wasserstein(reference_sorted: np.ndarray, batch_sorted: np.ndarray) -> tuple[float, float]:
    """(KS statistic, Wasserstein-1 distance) of two non-empty sorted samples: ``ecdf_statistics``, compiled."""
    import numpy as np

    reference = np.ascontiguousarray(reference_sorted, dtype=np.float64)
    batch = np.ascontiguousarray(batch_sorted, dtype=np.float64)
    ks, wasserstein = _kernels()["merge"](reference, batch)
    return float(ks), float(wasserstein)


def moments(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, population standard deviation, skewness) of non-empty float64 values, in two passes."""
    import numpy as np

    mean, std, skewness = _kernels()["moments"](np.ascontiguousarray(values, dtype=np.float64))
    return float(mean), float(std), float(skewness)


def warm_up() -> None:
    """Import numba and load (or, on a new machine, compile) both kernels now rather than on first use."""
    import numpy as np

    values = np.array([2.0, -1.0, 0.5])
    ks_wasserstein(sort_floats(values), sort_floats(values + 1.0))
    moments(values)


def _kernels() -> dict[str, Any]:
    if not _compiled:
        from tasks import _compiled_kernels

        _compiled.update(
            radix_sort=_compiled_kernels.radix_sort,
            merge=_compiled_kernels.merge,
            moments=_compiled_kernels.moments,
        )
    return _compiled
