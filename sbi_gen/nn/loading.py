"""Tell networks whether they are being rebuilt only to receive saved weights.

Some embedding nets initialize themselves from data (e.g. an SVD of simulated
waveforms), which can take seconds. When an estimator is loaded, every buffer
and parameter is overwritten from ``weights.safetensors`` right after the
network is built, so that work is wasted and its result must not matter.
:meth:`sbi_gen.PosteriorEstimator.from_config` builds the network inside
:func:`loading_weights`; a module whose whole initialization lives in its
state dict may then skip it (allocating tensors of the right shapes only).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["loading_weights", "weights_will_be_loaded"]

_LOADING: ContextVar[bool] = ContextVar("sbi_gen_loading_weights", default=False)


@contextmanager
def loading_weights() -> Iterator[None]:
    """Within this block, networks being built will have their state dict loaded before use."""
    token = _LOADING.set(True)
    try:
        yield
    finally:
        _LOADING.reset(token)


def weights_will_be_loaded() -> bool:
    """Whether the caller is building a network whose weights and buffers are about to be loaded."""
    return _LOADING.get()
