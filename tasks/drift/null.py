"""The simulated nulls of the numeric drift statistics: the Brownian bridge behind KS and Wasserstein
(``BridgeNulls``, see its doc) and the resampled null, pairs binned the way batches are (issue 16).

A batch is judged against a reference that is itself a sample: the JS/Hellinger histogram edges come
from the reference's range and moments (numpy's "doane" rule), a batch value beyond that range falls
in an extra "outside" bin the reference never fills, bins the reference left empty can be reached by
the batch, and the PSI decile edges are the reference's own quantiles. The multinomial null of
:func:`tasks.drift.reference._binned_null` draws both samples from the reference's bin proportions on
fixed bins, so it reaches none of that: on heavy-tailed or zero-inflated columns with a reference as
small as the chunk, Hellinger alerted on 8-9 % of stationary chunks at a nominal 1 %.

Here each replicate draws a reference of n values and a chunk of m values from the reference sample,
fits the bins on the simulated reference and bins both exactly as :func:`tasks.drift.profiling.numeric_drift`
does (outside bin, empty bins, decile edges by rank), and computes KS, Wasserstein, Jensen-Shannon,
Hellinger and PSI of the pair. The draws come from the sample's interpolated quantile function: a tied
value (an atom: the zeros of a zero-inflated column, the integers of a count) keeps its exact value and
mass, while values seen once are smoothed between their neighbours, so a simulated reference misses the
reference's extremes as a real one misses the population's (a chunk value lands beyond it with
probability 1/(n + 1), as under the real null) instead of resampling them exactly. Beyond a continuous
end of the sample (an end seen once) a draw falls with probability 1/(size + 1), on an exponential tail whose
scale is the mean distance of the sqrt(size) most extreme values beyond the next one: the population's
tail reaches past the reference's largest value, and on heavy tails those values dominate Wasserstein's
area (Student-t(3), 1k batches, 10k and 50k references: Wasserstein 0.020 -> 0.012 at a nominal 0.01).
A tied end is the support's end. Both samples are
drawn already sorted (normalised exponential spacings are sorted uniforms), so a replicate is a few
linear passes: the numba kernel ``resampled_distances`` (numpy twin in :mod:`tasks.drift.kernels`).

Cost bound. A replicate costs about a dozen nanoseconds per simulated value, so a side is simulated
at most ``NULL_MAX_SIDE`` values and the quantiles are scaled to the real sizes by sqrt(1/n + 1/m) (PSI
by its square), the statistics' sampling scale; the outside-bin and empty-bin terms scale the same way
(a chunk value lands beyond the reference with probability ~1/n). The simulation runs once per column,
at the fit's chunk size, and is kept as unit-size quantiles on the column (``resampled_null_unit``):
batches of other sizes scale them, so judging a batch costs no simulation and a one-batch ``driftgate
monitor`` never loads numba. It matters where the reference's own sampling does, so it applies while
the reference holds at most ``NULL_REFERENCE_RATIO`` times the batch's values, and, for batches of at most
``NULL_MAX_SIDE`` values, up to ``NULL_SMALL_BATCH_RATIO`` times: there a few batch values beyond the
reference's range still move Wasserstein, Jensen-Shannon and Hellinger on heavy tails (Student-t(3), 1k
batches, 10k and 50k references: Wasserstein 0.032 -> 0.020, Jensen-Shannon 0.020 -> 0.007 at a nominal
0.01), and those pairs keep the real ratio of the sizes within ``NULL_PAIR_BUDGET`` values. Beyond, the
bridge (KS, Wasserstein) and multinomial (binned) nulls, exact in the many-values limit on the real bins and
computed at every size, stand alone.
Where both apply, each method's threshold is the larger of the two, so neither approximation lowers it. A
fit chunk too large for the resampled null is simulated at ``NULL_MAX_SIDE`` instead, for the small
batches it applies to.
"""

from __future__ import annotations

import math
import zlib
from typing import TYPE_CHECKING

from tasks.core.parallel import WORKER_THREAD_PREFIX
from tasks.drift.results import CALIBRATION_ATOMS, CALIBRATION_SEED, N_BINS, PSI_EPSILON

if TYPE_CHECKING:
    import numpy as np

# Values simulated per side of a pair: the reference/chunk sizes the null is exact at (beyond, scaled).
NULL_MAX_SIDE = 2_000
# The resampled null runs while the reference holds at most this many times the batch's values: beyond,
# the reference's sampling adds under a ninth of the statistics' variance.
NULL_REFERENCE_RATIO = 8
# ... and for small batches (at most NULL_MAX_SIDE values) up to this ratio, because a small batch's values beyond
# the reference's range still move Wasserstein, Jensen-Shannon and Hellinger on heavy tails (a batch value lands
# beyond a reference of n with probability ~2/n: one of a 1k batch in five against a 10k reference). Those pairs
# keep the real ratio of the sizes, within NULL_PAIR_BUDGET values a pair.
NULL_SMALL_BATCH_RATIO = 64
NULL_PAIR_BUDGET = 8_000
# The methods the kernel returns, in its order, and the power of sqrt(1/n + 1/m) their null quantiles scale with.
RESAMPLED_METHODS = ("ks", "wasserstein", "jensen_shannon", "hellinger", "psi")
SCALE_POWER = {"ks": 1, "wasserstein": 1, "jensen_shannon": 1, "hellinger": 1, "psi": 2}


def simulated_sizes(reference_size: int, size: int) -> tuple[int, int]:
    """The (reference, chunk) sizes a pair is simulated at: each side at most ``NULL_MAX_SIDE`` values; beyond
    NULL_REFERENCE_RATIO, the real ratio of the sizes within NULL_PAIR_BUDGET values."""
    if reference_size <= NULL_REFERENCE_RATIO * size:
        return min(reference_size, NULL_MAX_SIDE), min(size, NULL_MAX_SIDE)
    ratio = reference_size / size
    chunk = max(1, min(size, int(NULL_PAIR_BUDGET / (1.0 + ratio))))
    return min(reference_size, round(ratio * chunk)), chunk


def uses_resampled_null(reference_size: int, size: int, sample_size: int) -> bool:
    """Whether the resampled null applies to a batch of ``size`` values (see the module doc)."""
    if sample_size < 2 or size < 1:
        return False
    if reference_size <= NULL_REFERENCE_RATIO * size:
        return True
    return size <= NULL_MAX_SIDE and reference_size <= NULL_SMALL_BATCH_RATIO * size


def _scale(reference_size: int, size: int) -> float:
    return math.sqrt(1.0 / reference_size + 1.0 / size)


def resampled_null(
    sample: np.ndarray, reference_size: int, size: int, replicates: int, name: str
) -> dict[str, np.ndarray]:
    """Null statistics of every numeric method for a reference of ``reference_size`` values (its sorted
    ``sample``) and a batch of ``size``: ``replicates`` simulated pairs, scaled to the real sizes.

    Seeded by the column's name and the batch size, so thresholds are reproducible.
    """
    import numpy as np

    from tasks.drift.kernels import resampled_distances

    n, m = simulated_sizes(reference_size, size)
    rng = np.random.default_rng([CALIBRATION_SEED, zlib.crc32(name.encode()), size, 3])
    statistics = resampled_distances(rng, sample, n, m, replicates, PSI_EPSILON, N_BINS)
    scale = _scale(reference_size, size) / _scale(n, m)
    return {method: statistics[row] * scale ** SCALE_POWER[method] for row, method in enumerate(RESAMPLED_METHODS)}


def resampled_null_units(
    sample: np.ndarray, reference_size: int, name: str, size: int, quantile: float, replicates: int
) -> tuple[float, ...]:
    """The resampled null's ``quantile`` of each of RESAMPLED_METHODS at batch ``size`` (the fit's chunk
    size), in unit-size terms; () where it does not apply.

    Simulated once, at the fit: a batch of another size scales them (``resampled_thresholds``), so judging
    a batch costs no simulation (a one-batch ``driftgate monitor`` stays without numba).
    """
    import numpy as np

    if not uses_resampled_null(reference_size, size, sample.size):
        # A fit chunk too large for it: simulated at NULL_MAX_SIDE, for the small batches it still applies to.
        size = min(size, NULL_MAX_SIDE)
        if not uses_resampled_null(reference_size, size, sample.size):
            return ()
    null = resampled_null(sample, reference_size, size, replicates, name)
    scale = _scale(reference_size, size)
    return tuple(
        float(np.quantile(null[method], quantile)) / scale ** SCALE_POWER[method] for method in RESAMPLED_METHODS
    )


def resampled_thresholds(units: tuple[float, ...], reference_size: int, size: int) -> dict[str, float]:
    """The resampled null's threshold of each method for a batch of ``size`` values; {} where it does not apply."""
    if not units or not uses_resampled_null(reference_size, size, 2):
        return {}
    scale = _scale(reference_size, size)
    return {method: unit * scale ** SCALE_POWER[method] for method, unit in zip(RESAMPLED_METHODS, units, strict=True)}


class BridgeNulls:
    """KS/Wasserstein unit null quantiles; columns with the same atom masses share one bridge simulation.

    By Donsker's theorem the ECDF of m draws from the reference's distribution deviates from it by
    B(F(x)) / sqrt(m) for a Brownian bridge B; the gap between a batch's and the reference's ECDF is then
    sqrt(1/m + 1/n) B. Ties are respected because B is only evaluated at the atoms. Columns are fitted
    in parallel threads, so a simulation is made once under a lock and then shared.
    """

    def __init__(self, quantile: float, replicates: int) -> None:
        import threading

        self.quantile = quantile
        self.replicates = replicates
        self._lock = threading.Lock()
        self._bridges: dict[bytes, tuple[np.ndarray, float]] = {}
        self._early: threading.Thread | None = None

    def start_continuous(self) -> None:
        """Simulate the bridge of continuous columns (CALIBRATION_ATOMS equal atoms) in a background thread.

        It depends on no data, so it runs while the reference is still being read.
        """
        import threading

        import numpy as np

        uniform = np.full(CALIBRATION_ATOMS, 1.0 / CALIBRATION_ATOMS)
        self._early = threading.Thread(target=self._bridge, args=(uniform,), name=f"{WORKER_THREAD_PREFIX}-bridge")
        self._early.start()

    def join(self) -> None:
        if self._early is not None:
            self._early.join()

    def _bridge(self, masses: np.ndarray) -> tuple[np.ndarray, float]:
        import numpy as np

        from tasks.drift.kernels import brownian_bridges

        key = masses.tobytes()
        with self._lock:
            if key not in self._bridges:
                rng = np.random.default_rng([CALIBRATION_SEED, zlib.crc32(key), masses.size])
                # float32 halves the cost; the quantiles need three digits, not fifteen.
                bridge = rng.standard_normal((self.replicates, masses.size), dtype=np.float32)
                largest = brownian_bridges(bridge, masses)  # in place: the steps become |B| at the atoms
                self._bridges[key] = (bridge, float(np.quantile(largest, self.quantile)))
            return self._bridges[key]

    def unit_quantiles(self, values: np.ndarray, masses: np.ndarray) -> tuple[float, float]:
        """(KS, Wasserstein) null quantiles at unit sizes of a column with these atoms (values, masses)."""
        import numpy as np

        bridge, ks_unit = self._bridge(masses)
        gaps = np.append(np.diff(values), 0.0).astype(np.float32)
        # Not `bridge @ gaps`: BLAS threads spin against the column threads this runs in.
        wasserstein = np.einsum("ij,j->i", bridge, gaps) if values.size else np.zeros(self.replicates)
        return ks_unit, float(np.quantile(wasserstein, self.quantile))
