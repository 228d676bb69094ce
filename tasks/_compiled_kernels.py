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
    source, target = keys, spare
    for p in range(passes):
        row = counts[p]
        shared = False  # every key has the same digit here: the pass would not move anything
        for digit in range(radix):
            if row[digit] != 0:
                shared = row[digit] == n
                break
        if shared:
            continue
        total = 0
        for digit in range(radix):
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
    source = keys[start:end]
    target = scratch[start:end]
    length = end - start
    in_scratch = False
    for p in range(4):
        row = counts[p]
        shared = False
        for digit in range(256):
            if row[digit] != 0:
                shared = row[digit] == length
                break
        if shared:
            continue
        total = 0
        for digit in range(256):
            count = row[digit]
            row[digit] = total
            total += count
        shift = np.uint64(8 * p)
        for i in range(length):
            key = source[i]
            digit = (key >> shift) & np.uint64(255)
            target[row[digit]] = key
            row[digit] += 1
        source, target = target, source
        in_scratch = not in_scratch
    if in_scratch:
        keys[start:end] = source


@njit(cache=True, nogil=True)
def merge(reference: np.ndarray, batch: np.ndarray) -> tuple[float, float]:
    n = reference.size
    m = batch.size
    # +inf sentinels: the loop needs no bounds checks (the samples hold no inf: validation rejects it).
    padded_reference = np.empty(n + 1)
    padded_reference[:n] = reference
    padded_reference[n] = np.inf
    padded_batch = np.empty(m + 1)
    padded_batch[:m] = batch
    padded_batch[m] = np.inf
    i = 0
    j = 0
    largest = 0
    area = 0.0
    total = n + m
    for step in range(total):
        r = padded_reference[i]
        b = padded_batch[j]
        from_reference = r <= b
        value = r if from_reference else b
        i += 1 if from_reference else 0
        j += 0 if from_reference else 1
        r = padded_reference[i]
        b = padded_batch[j]
        following = r if r <= b else b
        if following != value:  # the end of a run of equal values: both ECDFs are final here
            gap = abs(i * m - j * n)  # n m |F_reference - F_batch|, exact in integers
            if gap > largest:
                largest = gap
            if step < total - 1:
                area += gap * (following - value)
    scale = float(n) * float(m)
    return largest / scale, area / scale


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
