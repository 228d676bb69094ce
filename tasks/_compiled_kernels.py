"""numba kernels behind :mod:`tasks.kernels`; importing this module imports numba (about 0.7 s)."""

from __future__ import annotations

import numpy as np
from numba import njit

TOP_BITS = 32  # the radix passes order the keys by their top 32 bits; runs that tie there are finished after


@njit(cache=True, nogil=True)
def radix_sort(values: np.ndarray, bits: int) -> np.ndarray:
    n = values.size
    passes = (TOP_BITS + bits - 1) // bits
    low = 64 - TOP_BITS
    radix = 1 << bits
    mask = np.uint64(radix - 1)
    sign = np.uint64(1) << np.uint64(63)
    raw = values.view(np.uint64)
    # Negative floats: flip every bit; positive: flip the sign bit. Unsigned order is then numeric order.
    keys = np.empty(n, dtype=np.uint64)
    counts = np.zeros((passes, radix), dtype=np.int64)
    for i in range(n):
        key = raw[i]
        key = ~key if key & sign else key | sign
        keys[i] = key
        for p in range(passes):
            counts[p, (key >> np.uint64(low + p * bits)) & mask] += 1
    spare = np.empty_like(keys)
    source, target = (spare, keys) if _scatter_passes(keys, spare, counts, low, bits) else (keys, spare)
    # Keys are now ordered by their top 32 bits (sign, exponent, 20 mantissa bits: about 1e-6 relative);
    # each run that ties there is finished on the low 32 bits.
    shift = np.uint64(low)
    start = 0
    while start < n:
        top = source[start] >> shift
        end = start + 1
        while end < n and (source[end] >> shift) == top:
            end += 1
        if end - start > 1:
            _sort_run(source, target, start, end)
        start = end
    for i in range(n):  # back to float bits, in place: no third array
        key = source[i]
        source[i] = key & ~sign if key & sign else ~key
    return source.view(np.float64)


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
# Wasserstein area. The walk is cut in two halves at the median merged position (a binary search
# on the "merge path") that advance in the same loop: two independent dependency chains run about
# 1.6 times as fast as one.


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


@njit(cache=True, nogil=True)
def merge(reference: np.ndarray, batch: np.ndarray) -> tuple[float, float]:
    n = reference.size
    m = batch.size
    half = (n + m) // 2
    # The merge path: the first `half` merged elements are reference[:i_half] and batch[:half - i_half].
    low = max(0, half - m)
    high = min(n, half)
    while low < high:
        middle = (low + high) // 2
        if reference[middle] <= batch[half - middle - 1]:
            low = middle + 1
        else:
            high = middle
    i_half, j_half = low, half - low
    first = min(reference[0], batch[0])
    # The second half starts after the largest value of the first.
    previous_b = max(reference[i_half - 1] if i_half > 0 else first, batch[j_half - 1] if j_half > 0 else first)
    ia, ja, previous_a, largest_a, area_a = 0, 0, first, 0, 0.0
    ib, jb, largest_b, area_b = i_half, j_half, 0, 0.0
    while ia < i_half and ja < j_half and ib < n and jb < m:
        ia, ja, previous_a, largest_a, area_a = _merge_step(reference, batch, ia, ja, previous_a, largest_a, area_a)
        ib, jb, previous_b, largest_b, area_b = _merge_step(reference, batch, ib, jb, previous_b, largest_b, area_b)
    largest_a, area_a = _merge_tail(reference, batch, ia, ja, i_half, j_half, previous_a, largest_a, area_a)
    largest_b, area_b = _merge_tail(reference, batch, ib, jb, n, m, previous_b, largest_b, area_b)
    scale = float(n) * float(m)
    return max(largest_a, largest_b) / scale, (area_a + area_b) / scale


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
