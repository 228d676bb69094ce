"""numba kernels behind :mod:`tasks.drift.kernels`; importing this module imports numba (about 0.7 s)."""

from __future__ import annotations

import numpy as np
from numba import njit

TOP_BITS = 32  # the radix passes order the keys by their top 32 bits; runs that tie there are finished after


SIGN = np.uint64(1) << np.uint64(63)


@njit(cache=True, nogil=True)
def encode_keys(
    values: np.ndarray, keys: np.ndarray, offset: int, counts: np.ndarray, bits: int, total: np.ndarray
) -> None:
    """Write the sort keys of ``values`` to ``keys[offset:]``, add their digits to ``counts`` (passes x radix)
    and their sum to ``total[0]``.

    Called once per chunk of a column, so a column in several buffers is sorted without joining them first.
    """
    passes = counts.shape[0]
    low = 64 - TOP_BITS
    mask = np.uint64((1 << bits) - 1)
    raw = values.view(np.uint64)
    running = 0.0  # the pass is bound by memory: the sum for the mean comes free
    # Negative floats: flip every bit; positive: flip the sign bit. Unsigned order is then numeric order.
    for i in range(values.size):
        running += values[i]
        key = raw[i]
        key = ~key if key & SIGN else key | SIGN
        keys[offset + i] = key
        for p in range(passes):
            counts[p, (key >> np.uint64(low + p * bits)) & mask] += 1
    total[0] += running


@njit(cache=True, nogil=True)
def radix_sort_keys(
    keys: np.ndarray, spare: np.ndarray, counts: np.ndarray, bits: int, mean: float, central: np.ndarray
) -> np.ndarray:
    """Sort the encoded ``keys`` (``spare``: free space of the same size) and decode them: the sorted floats.

    The result is a view of ``keys`` or ``spare``. When ``central`` has two entries, the decoding pass
    also sums the second and third powers of the values' deviations from ``mean`` into them.
    """
    n = keys.size
    low = 64 - TOP_BITS
    source, target = (spare, keys) if _scatter_passes(keys, spare, counts, low, bits) else (keys, spare)
    # Keys are now ordered by their top 32 bits (sign, exponent, 20 mantissa bits: about 1e-6 relative);
    # each run that ties there is finished on the low 32 bits, then turned back into floats (in place, no
    # third array) while it is in cache.
    with_moments = central.size == 2
    decoded = source.view(np.float64)
    # Two accumulators each, alternating: one chain of dependent additions would bound the pass.
    second_even = 0.0
    third_even = 0.0
    second_odd = 0.0
    third_odd = 0.0
    shift = np.uint64(low)
    start = 0
    while start < n:
        top = source[start] >> shift
        end = start + 1
        while end < n and (source[end] >> shift) == top:
            end += 1
        if end - start > 1:
            _sort_run(source, target, start, end)
        for i in range(start, end):
            key = source[i]
            key = key & ~SIGN if key & SIGN else ~key
            source[i] = key
            if with_moments:
                deviation = decoded[i] - mean
                square = deviation * deviation
                if i & 1:
                    second_odd += square
                    third_odd += square * deviation
                else:
                    second_even += square
                    third_even += square * deviation
        start = end
    if with_moments:
        central[0] += second_even + second_odd
        central[1] += third_even + third_odd
    return decoded


@njit(cache=True, nogil=True)
def _sort_run(keys: np.ndarray, scratch: np.ndarray, start: int, end: int) -> None:
    """Sort ``keys[start:end]``, which share their top 32 bits, in place (``scratch`` is free space)."""
    for i in range(start + 1, end):
        if keys[i] < keys[i - 1]:
            break
    else:
        return  # already in order: all equal (discrete values) or nearly so
    if end - start <= 32:
        for i in range(start + 1, end):
            key = keys[i]
            j = i - 1
            while j >= start and keys[j] > key:
                keys[j + 1] = keys[j]
                j -= 1
            keys[j + 1] = key
        return
    # Long runs (values dense at 1e-6 relative precision, such as epoch seconds): radix on the low 32 bits.
    counts = np.zeros((4, 256), dtype=np.int64)
    for i in range(start, end):
        key = keys[i]
        for p in range(4):
            counts[p, (key >> np.uint64(8 * p)) & np.uint64(255)] += 1
    if _scatter_passes(keys[start:end], scratch[start:end], counts, 0, 8):
        keys[start:end] = scratch[start:end]


@njit(cache=True, nogil=True)
def _scatter_passes(source: np.ndarray, target: np.ndarray, counts: np.ndarray, low: int, bits: int) -> bool:
    """LSD radix passes: pass p orders the keys by bits ``low + p bits`` up, from its digit counts ``counts[p]``.

    The arrays swap roles after each pass; returns True when the sorted keys ended up in ``target``.
    """
    n = source.size
    mask = np.uint64((1 << bits) - 1)
    in_target = False
    for p in range(counts.shape[0]):
        row = counts[p]
        shared = False  # every key has the same digit here: the pass would not move anything
        for digit in range(row.size):
            if row[digit] != 0:
                shared = row[digit] == n
                break
        if shared:
            continue
        total = 0
        for digit in range(row.size):
            count = row[digit]
            row[digit] = total
            total += count
        shift = np.uint64(low + p * bits)
        for i in range(n):
            key = source[i]
            digit = (key >> shift) & mask
            target[row[digit]] = key
            row[digit] += 1
        source, target = target, source
        in_target = not in_target
    return in_target


# The merge walks the merged order of the two sorted samples once. At the first element of each new
# value, the counts taken so far are both ECDFs at the previous value, so the gap n m |F_ref - F_batch|
# (an exact integer) is a KS candidate and, times the distance to the new value, a piece of the
# Wasserstein area. The walk is cut in four parts at quarters of the merged order (binary searches on
# the "merge path") that advance in the same loop: independent dependency chains run faster than one.


@njit(cache=True, nogil=True, inline="always")
def _visit(value: float, previous: float, signed_gap: int, largest: int, area: float) -> tuple[float, int, float]:
    """At the first element of a new value: the gap at the previous one is final (a KS candidate and a
    piece of the area). ``signed_gap`` is n m (F_reference - F_batch) from the counts taken so far."""
    if value != previous:
        gap = abs(signed_gap)
        if gap > largest:
            largest = gap
        area += gap * (value - previous)
        previous = value
    return previous, largest, area


@njit(cache=True, nogil=True, inline="always")
def _merge_step(
    reference: np.ndarray, batch: np.ndarray, i: int, j: int, previous: float, largest: int, area: float
) -> tuple[int, int, float, int, float]:
    n = reference.size
    m = batch.size
    r = reference[i]
    b = batch[j]
    from_reference = r <= b  # ties: the reference first, so a tie run ends after both samples' copies
    value = r if from_reference else b
    previous, largest, area = _visit(value, previous, i * m - j * n, largest, area)
    step = int(from_reference)  # branch-free: the order of the two samples is unpredictable
    return i + step, j + 1 - step, previous, largest, area


@njit(cache=True, nogil=True)
def _merge_tail(
    reference: np.ndarray,
    batch: np.ndarray,
    i: int,
    j: int,
    i_end: int,
    j_end: int,
    previous: float,
    largest: int,
    area: float,
) -> tuple[int, float]:
    """Walk on from (i, j) to (i_end, j_end), with bounds checks, once either side is exhausted."""
    n = reference.size
    m = batch.size
    while i < i_end or j < j_end:
        from_reference = j >= j_end or (i < i_end and reference[i] <= batch[j])
        value = reference[i] if from_reference else batch[j]
        previous, largest, area = _visit(value, previous, i * m - j * n, largest, area)
        if from_reference:
            i += 1
        else:
            j += 1
    return largest, area


@njit(cache=True, nogil=True, inline="always")
def _merge_path(reference: np.ndarray, batch: np.ndarray, position: int) -> int:
    """How many of the first ``position`` merged elements come from ``reference`` (the rest from ``batch``)."""
    low = max(0, position - batch.size)
    high = min(reference.size, position)
    while low < high:
        middle = (low + high) // 2
        if reference[middle] <= batch[position - middle - 1]:
            low = middle + 1
        else:
            high = middle
    return low


@njit(cache=True, nogil=True, inline="always")
def _value_before(reference: np.ndarray, batch: np.ndarray, i: int, j: int, first: float) -> float:
    """The largest value merged before position (i, j): where a part's walk starts from."""
    return max(reference[i - 1] if i > 0 else first, batch[j - 1] if j > 0 else first)


@njit(cache=True, nogil=True)
def merge(reference: np.ndarray, batch: np.ndarray) -> tuple[float, float]:
    n = reference.size
    m = batch.size
    total = n + m
    # Four parts of the merged order, cut on the merge path, advance in one loop: four independent
    # dependency chains (each part's gaps use global counts, so a part needs no other part's result).
    i1 = _merge_path(reference, batch, total // 4)
    i2 = _merge_path(reference, batch, total // 2)
    i3 = _merge_path(reference, batch, 3 * total // 4)
    j1, j2, j3 = total // 4 - i1, total // 2 - i2, 3 * total // 4 - i3
    first = min(reference[0], batch[0])
    ia, ja, previous_a, largest_a, area_a = 0, 0, first, 0, 0.0
    ib, jb, previous_b, largest_b, area_b = i1, j1, _value_before(reference, batch, i1, j1, first), 0, 0.0
    ic, jc, previous_c, largest_c, area_c = i2, j2, _value_before(reference, batch, i2, j2, first), 0, 0.0
    id_, jd, previous_d, largest_d, area_d = i3, j3, _value_before(reference, batch, i3, j3, first), 0, 0.0
    while ia < i1 and ja < j1 and ib < i2 and jb < j2 and ic < i3 and jc < j3 and id_ < n and jd < m:
        ia, ja, previous_a, largest_a, area_a = _merge_step(reference, batch, ia, ja, previous_a, largest_a, area_a)
        ib, jb, previous_b, largest_b, area_b = _merge_step(reference, batch, ib, jb, previous_b, largest_b, area_b)
        ic, jc, previous_c, largest_c, area_c = _merge_step(reference, batch, ic, jc, previous_c, largest_c, area_c)
        id_, jd, previous_d, largest_d, area_d = _merge_step(reference, batch, id_, jd, previous_d, largest_d, area_d)
    largest_a, area_a = _merge_tail(reference, batch, ia, ja, i1, j1, previous_a, largest_a, area_a)
    largest_b, area_b = _merge_tail(reference, batch, ib, jb, i2, j2, previous_b, largest_b, area_b)
    largest_c, area_c = _merge_tail(reference, batch, ic, jc, i3, j3, previous_c, largest_c, area_c)
    largest_d, area_d = _merge_tail(reference, batch, id_, jd, n, m, previous_d, largest_d, area_d)
    scale = float(n) * float(m)
    largest = max(max(largest_a, largest_b), max(largest_c, largest_d))
    return largest / scale, ((area_a + area_b) + (area_c + area_d)) / scale


@njit(cache=True, nogil=True)
def moments(values: np.ndarray) -> tuple[float, float, float]:
    n = values.size
    total = 0.0
    for i in range(n):
        total += values[i]
    mean = total / n
    second = 0.0
    third = 0.0
    for i in range(n):
        deviation = values[i] - mean
        square = deviation * deviation
        second += square
        third += square * deviation
    std = np.sqrt(second / n)
    skewness = (third / n) / (std * std * std) if std > 0.0 else 0.0
    return mean, std, skewness


# --- calibration ----------------------------------------------------------------------------------
# Numba runs numpy's own Generator algorithms on the Generator's bit stream, so these kernels draw
# exactly what the numpy code they replace drew (tested), minus the per-bin array temporaries.


@njit(cache=True, nogil=True)
def multinomial_counts(rng, total: int, shares: np.ndarray, replicates: int, normal_variance: float) -> np.ndarray:  # type: ignore[no-untyped-def]
    """``replicates`` multinomial count vectors (conditional binomials, bin by bin; see multinomial_draws)."""
    k = shares.size
    counts = np.zeros((replicates, k), dtype=np.int64)
    remaining = np.full(replicates, total, dtype=np.int64)
    left = 1.0
    for j in range(k - 1):
        share = shares[j]
        if left <= 0.0:
            break
        q = min(max(share / left, 0.0), 1.0)
        left -= share
        if q == 0.0:
            continue
        if q == 1.0:
            for r in range(replicates):
                counts[r, j] = remaining[r]
                remaining[r] = 0
            break
        if remaining.min() * q * (1.0 - q) >= normal_variance:
            for r in range(replicates):
                mean = remaining[r] * q
                draw = np.rint(mean + np.sqrt(mean * (1.0 - q)) * rng.standard_normal())
                taken = np.int64(min(max(draw, 0.0), remaining[r]))
                counts[r, j] = taken
                remaining[r] -= taken
        else:
            for r in range(replicates):
                taken = rng.binomial(remaining[r], q)
                counts[r, j] = taken
                remaining[r] -= taken
    for r in range(replicates):
        counts[r, k - 1] += remaining[r]
    return counts


@njit(cache=True, nogil=True)
def _shape_terms(p: float, q: float) -> tuple[float, float]:
    """One bin's terms of the Jensen-Shannon divergence (natural log) and of Hellinger's sum of squares."""
    mid = (p + q) / 2.0
    divergence = 0.0
    if p > 0.0:
        divergence += p * np.log(p / mid)
    if q > 0.0:
        divergence += q * np.log(q / mid)
    root_gap = np.sqrt(p) - np.sqrt(q)
    return divergence, root_gap * root_gap


@njit(cache=True, nogil=True)
def binned_distances(
    reference: np.ndarray, batch: np.ndarray, psi_epsilon: float, shape_distances: bool, stability: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of two count tables: (Jensen-Shannon distance, Hellinger distance, PSI) of their proportions.

    The same formulas as tasks.drift.profiling.jensen_shannon, hellinger and population_stability_index; the
    first two only when ``shape_distances``, PSI only when ``stability`` (the others stay zero).
    """
    rows, k = reference.shape
    js = np.zeros(rows)
    hellinger = np.zeros(rows)
    psi = np.zeros(rows)
    log2 = np.log(2.0)
    for r in range(rows):
        reference_total = 0.0
        batch_total = 0.0
        for j in range(k):
            reference_total += reference[r, j]
            batch_total += batch[r, j]
        divergence = 0.0
        squares = 0.0
        index = 0.0
        for j in range(k):
            p = reference[r, j] / reference_total
            q = batch[r, j] / batch_total
            if shape_distances:
                part, square = _shape_terms(p, q)
                divergence += part
                squares += square
            if stability:
                floor_p = max(p, psi_epsilon)
                floor_q = max(q, psi_epsilon)
                index += (floor_q - floor_p) * np.log(floor_q / floor_p)
        js[r] = np.sqrt(max(divergence / 2.0, 0.0) / log2)
        hellinger[r] = np.sqrt(squares) / np.sqrt(2.0)
        psi[r] = index
    return js, hellinger, psi


@njit(cache=True, nogil=True)
def brownian_bridges(steps: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Turn standard normal ``steps`` (replicates x atoms, float32) into |Brownian bridge| values at the
    atoms' cumulative masses, in place; returns each replicate's largest value."""
    replicates, atoms = steps.shape
    scale = np.sqrt(masses).astype(np.float32)
    cumulative = np.cumsum(masses).astype(np.float32)
    largest = np.empty(replicates, dtype=np.float32)
    for r in range(replicates):
        walk = np.float32(0.0)
        for j in range(atoms):
            walk += steps[r, j] * scale[j]
            steps[r, j] = walk
        peak = np.float32(0.0)
        for j in range(atoms):
            value = abs(steps[r, j] - cumulative[j] * walk)
            steps[r, j] = value
            if value > peak:
                peak = value
        largest[r] = peak
    return largest


@njit(cache=True, nogil=True)
def tail_scales(sample: np.ndarray) -> tuple[float, float]:
    """(lower, upper) scales of the exponential tails beyond sorted ``sample``'s ends: the mean distance of the
    k most extreme values beyond the (k+1)-th (k = sqrt of the size, at least 5), 0 at a tied end (an atom)."""
    size = sample.size
    if size < 20:
        return 0.0, 0.0
    k = min(max(5, int(np.sqrt(size))), size // 4)
    lower = 0.0
    if sample[0] != sample[1]:
        total = 0.0
        for i in range(k):
            total += sample[i]
        lower = sample[k] - total / k
    upper = 0.0
    if sample[size - 1] != sample[size - 2]:
        total = 0.0
        for i in range(size - k, size):
            total += sample[i]
        upper = total / k - sample[size - 1 - k]
    return lower, upper


@njit(cache=True, nogil=True)
def _sorted_draws(rng, sample: np.ndarray, out: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """Fill ``out`` with sorted draws from the quantile function of sorted ``sample``, interpolated between
    values seen once and extended by exponential tails beyond continuous ends (see tasks.drift.null): sorted
    uniform positions from normalised exponential spacings."""
    k = out.size
    top = sample.size - 1
    lower, upper = tail_scales(sample)
    running = 0.0
    for i in range(k):
        running += rng.standard_exponential()
        out[i] = running
    total = running + rng.standard_exponential()
    for i in range(k):
        # Positions -1 .. top + 1: a draw falls beyond each end with probability 1 / (size + 1).
        position = (out[i] / total) * (top + 2) - 1.0
        if position < 0.0:
            out[i] = sample[0] + lower * np.log(1.0 + position)
            continue
        if position > top:
            out[i] = sample[top] - upper * np.log(top + 1.0 - position)
            continue
        j = min(int(position), top - 1)
        fraction = position - j
        low = sample[j]
        high = sample[j + 1]
        # Between two values seen once: interpolated. Next to a tied value (an atom): the nearer of the two,
        # so atoms keep their exact values and no draw falls between them.
        tied = (j > 0 and sample[j - 1] == low) or low == high or (j + 2 <= top and sample[j + 2] == high)
        if tied:
            out[i] = low if fraction < 0.5 else high
        else:
            out[i] = low + fraction * (high - low)


@njit(cache=True, nogil=True)
def _doane_bins(values: np.ndarray) -> tuple[float, float, int]:
    """(first edge, last edge, bins) of numpy's "doane" histogram of sorted ``values`` (as statistics.doane_edges)."""
    n = values.size
    first = values[0]
    last = values[n - 1]
    width = 0.0
    if n > 2:
        _, std, skewness = moments(values)
        if std > 0.0:
            sg1 = np.sqrt(6.0 * (n - 2) / ((n + 1.0) * (n + 3)))
            width = (last - first) / (1.0 + np.log2(n) + np.log2(1.0 + abs(skewness) / sg1))
    if first == last:
        first = first - 0.5
        last = last + 0.5
    bins = int(np.ceil((last - first) / width)) if width != 0.0 else 1
    return first, last, bins


@njit(cache=True, nogil=True)
def _histogram(values: np.ndarray, edges: np.ndarray, counts: np.ndarray) -> None:
    """Counts of sorted ``values`` on ``edges`` (numpy.histogram: last bin closed), those outside them last."""
    bins = edges.size - 1
    counts[:] = 0
    j = 0
    for i in range(values.size):
        value = values[i]
        if value < edges[0] or value > edges[bins]:
            counts[bins] += 1
            continue
        while j < bins - 1 and value >= edges[j + 1]:
            j += 1
        counts[j] += 1


@njit(cache=True, nogil=True)
def _decile_counts(values: np.ndarray, edges: np.ndarray, ne: int, counts: np.ndarray) -> None:
    """Counts of sorted ``values`` in the bins of the first ``ne`` interior ``edges``: bin j holds
    edges[j-1] <= x < edges[j], as statistics._bin_counts."""
    counts[:] = 0
    d = 0
    for i in range(values.size):
        value = values[i]
        while d < ne and value >= edges[d]:
            d += 1
        counts[d] += 1


@njit(cache=True, nogil=True)
def resampled_distances(  # type: ignore[no-untyped-def]
    rng, sample: np.ndarray, n: int, m: int, replicates: int, psi_epsilon: float, deciles: int
) -> np.ndarray:
    """(KS, Wasserstein, Jensen-Shannon, Hellinger, PSI) x replicates of reference/chunk pairs of n and m sorted
    draws from ``sample``, each pair binned as a batch is binned against a reference fitted on the first."""
    out = np.zeros((5, replicates))
    reference = np.empty(n)
    batch = np.empty(m)
    decile_edges = np.empty(deciles - 1)
    reference_deciles = np.zeros(deciles, dtype=np.int64)
    batch_deciles = np.zeros(deciles, dtype=np.int64)
    log2 = np.log(2.0)
    for r in range(replicates):
        _sorted_draws(rng, sample, reference)
        _sorted_draws(rng, sample, batch)
        ks, wasserstein = merge(reference, batch)
        out[0, r] = ks
        out[1, r] = wasserstein
        first, last, bins = _doane_bins(reference)
        edges = np.empty(bins + 1)
        step = (last - first) / bins
        for j in range(bins):
            edges[j] = first + j * step
        edges[bins] = last
        reference_counts = np.zeros(bins + 1, dtype=np.int64)
        batch_counts = np.zeros(bins + 1, dtype=np.int64)
        _histogram(reference, edges, reference_counts)
        _histogram(batch, edges, batch_counts)
        divergence = 0.0
        squares = 0.0
        for j in range(bins + 1):
            part, square = _shape_terms(reference_counts[j] / n, batch_counts[j] / m)
            divergence += part
            squares += square
        out[2, r] = np.sqrt(max(divergence / 2.0, 0.0) / log2)
        out[3, r] = np.sqrt(squares) / np.sqrt(2.0)
        # Decile edges: the reference's quantiles above its minimum, distinct (they are sorted already).
        ne = 0
        for k in range(1, deciles):
            rank = min(max(int(np.ceil(n * (k / deciles))) - 1, 0), n - 1)
            value = reference[rank]
            if value > reference[0] and (ne == 0 or value > decile_edges[ne - 1]):
                decile_edges[ne] = value
                ne += 1
        _decile_counts(reference, decile_edges, ne, reference_deciles)
        _decile_counts(batch, decile_edges, ne, batch_deciles)
        index = 0.0
        for j in range(ne + 1):
            floor_p = max(reference_deciles[j] / n, psi_epsilon)
            floor_q = max(batch_deciles[j] / m, psi_epsilon)
            index += (floor_q - floor_p) * np.log(floor_q / floor_p)
        out[4, r] = index
    return out


# --- category counts ------------------------------------------------------------------------------

_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing's multiplier
_SHORT_STRING = np.uint64(12)
_LENGTH_MASK = np.uint64(0xFFFFFFFF)


@njit(cache=True, nogil=True)
def count_views(views: np.ndarray, first: np.ndarray, second: np.ndarray, counts: np.ndarray) -> int:
    """Add each Arrow string view of ``views`` (n x 2 words) to an open-addressing table: ``first`` and
    ``second`` hold a distinct view's words, ``counts`` how often it occurred (capacity a power of two).

    Returns the number of distinct views in the table, or -1 when a string is longer than 12 bytes (its
    view points into a data buffer instead of holding it) or the table would be more than half full.
    All arithmetic stays in uint64: mixing in signed integers makes numba convert through floats.
    """
    mask = np.uint64(counts.size - 1)
    distinct = 0
    for slot in range(counts.size):
        if counts[slot] != 0:
            distinct += 1
    for i in range(views.shape[0]):
        head = views[i, 0]
        tail = views[i, 1]
        if (head & _LENGTH_MASK) > _SHORT_STRING:
            return -1
        slot = (((head ^ (tail * _MIX)) * _MIX) >> np.uint64(52)) & mask
        while True:
            seen = counts[slot]
            if seen == 0:
                if 2 * (distinct + 1) > counts.size:
                    return -1
                first[slot] = head
                second[slot] = tail
                counts[slot] = 1
                distinct += 1
                break
            if first[slot] == head and second[slot] == tail:
                counts[slot] = seen + 1
                break
            slot = (slot + np.uint64(1)) & mask
    return distinct
