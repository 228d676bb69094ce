"""Scoring with LightGBM's own C library, without importing its Python package.

``import lightgbm`` costs about 3 s per fresh process (it pulls scikit-learn and pandas through its compat
layer), and the monitor scores every unscored batch. The package ships its engine as ``lib_lightgbm.so``;
loading that through ``ctypes`` takes milliseconds, and its C API (``LGBM_BoosterLoadModelFromString``,
``LGBM_BoosterPredictForMat``) is exactly what ``Booster.predict`` calls. So the probabilities are
LightGBM's own, for every model LightGBM can load (linear trees, categorical bitsets, any missing-value
handling), and nothing is reimplemented. The library is found through the package's import spec, which
does not run the package.

A model is loaded once per process (cached by the text's digest) and freed when the process ends. ctypes
releases the GIL during the call; LightGBM parallelises rows over ``num_threads`` OpenMP threads.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.core.errors import TrainingError

if TYPE_CHECKING:
    import numpy as np

_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
_ROW_MAJOR = 1
_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: the objective's output (a probability for binary)


class NativeUnavailable(RuntimeError):
    """lib_lightgbm could not be found or loaded here; the caller scores through the Python package."""


@functools.cache
def _library() -> ctypes.CDLL:
    spec = importlib.util.find_spec("lightgbm")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "lib" / "lib_lightgbm.so"
        if path.is_file():
            try:
                lib = ctypes.CDLL(str(path))
            except OSError as exc:
                raise NativeUnavailable(f"{path.name} does not load: {exc}") from exc
            lib.LGBM_GetLastError.restype = ctypes.c_char_p
            return lib
    raise NativeUnavailable("lib_lightgbm.so is not in the installed lightgbm package")


def _check(code: int, action: str) -> None:
    if code != 0:
        message = (_library().LGBM_GetLastError() or b"").decode(errors="replace")
        raise TrainingError(f"LightGBM could not {action}: {message}")


class NativeBooster:
    """A LightGBM model loaded into the C library from its text form."""

    def __init__(self, model_text: str) -> None:
        lib = _library()
        self._lib = lib
        self.digest = hashlib.sha256(model_text.encode()).hexdigest()
        self._handle = ctypes.c_void_p()
        iterations = ctypes.c_int()
        _check(
            lib.LGBM_BoosterLoadModelFromString(
                ctypes.c_char_p(model_text.encode()), ctypes.byref(iterations), ctypes.byref(self._handle)
            ),
            f"load model sha256:{self.digest[:12]}",
        )
        features = ctypes.c_int()
        _check(lib.LGBM_BoosterGetNumFeature(self._handle, ctypes.byref(features)), "count the model's features")
        self.num_features = int(features.value)
        classes = ctypes.c_int()
        _check(lib.LGBM_BoosterGetNumClasses(self._handle, ctypes.byref(classes)), "count the model's classes")
        # predict() writes one double per row: a model with several outputs per row would overrun it.
        if classes.value != 1:
            raise NativeUnavailable(f"model sha256:{self.digest[:12]} has {classes.value} outputs per row")

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and handle.value:
            self._lib.LGBM_BoosterFree(handle)

    def predict(self, matrix: np.ndarray, *, num_threads: int = 1) -> np.ndarray:
        """The model's output (the positive-class probability of a binary model) per row of a float64 matrix."""
        import numpy as np

        rows = np.ascontiguousarray(matrix, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.num_features:
            raise ValueError(f"expected a matrix with {self.num_features} columns, got shape {rows.shape}")
        out = np.empty(rows.shape[0], dtype=np.float64)
        if not rows.shape[0]:
            return out
        written = ctypes.c_int64()
        _check(
            self._lib.LGBM_BoosterPredictForMat(
                self._handle,
                rows.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_int(_FLOAT64),
                ctypes.c_int32(rows.shape[0]),
                ctypes.c_int32(rows.shape[1]),
                ctypes.c_int(_ROW_MAJOR),
                ctypes.c_int(_PREDICT_NORMAL),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(-1),  # every iteration
                ctypes.c_char_p(f"num_threads={max(int(num_threads), 1)}".encode()),
                ctypes.byref(written),
                out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            ),
            f"score with model sha256:{self.digest[:12]}",
        )
        if written.value != rows.shape[0]:
            raise TrainingError(
                f"model sha256:{self.digest[:12]} gave {written.value} outputs for {rows.shape[0]} rows "
                "(not a single-output model)"
            )
        return out


@functools.lru_cache(maxsize=8)
def _cached(digest: str, model_text: str) -> NativeBooster:
    return NativeBooster(model_text)


def load_native(model_text: str) -> NativeBooster:
    """The model loaded into lib_lightgbm (once per process and model). Raises NativeUnavailable when the
    library cannot be loaded here."""
    return _cached(hashlib.sha256(model_text.encode()).hexdigest(), model_text)
