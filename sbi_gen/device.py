"""Where networks run: one function turns a device name into a :class:`torch.device` or a clear error.

A device that is asked for but not present is an error, never a silent fall-back
to the CPU; only ``"auto"`` chooses (the first CUDA GPU if there is one, else the CPU).
"""

from __future__ import annotations

import torch

from sbi_gen.errors import DeviceError

__all__ = ["resolve_device"]

#: device types sbi-gen can place a network on
KNOWN_TYPES = ("cpu", "cuda", "mps")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"`` as a :class:`torch.device`.

    Raises :class:`~sbi_gen.errors.DeviceError` for an unknown name, a device type
    sbi-gen does not support, or hardware that is not available (with what is).

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("banana")
        Traceback (most recent call last):
        ...
        sbi_gen.errors.DeviceError: unknown device 'banana': use cpu, cuda, cuda:N, mps or auto
    """
    if isinstance(device, torch.device):
        resolved = device
    else:
        text = str(device).strip()
        if text == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            resolved = torch.device(text)
        except (RuntimeError, ValueError):
            raise DeviceError(f"unknown device {text!r}: use cpu, cuda, cuda:N, mps or auto") from None
    if resolved.type not in KNOWN_TYPES:
        raise DeviceError(f"device {str(resolved)!r} is not supported: use cpu, cuda, cuda:N, mps or auto")
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"device {str(resolved)!r} was asked for, but no CUDA GPU is available: use --device cpu")
        if resolved.index is not None and resolved.index >= count:
            raise DeviceError(
                f"device {str(resolved)!r} was asked for, but only {count} CUDA GPU(s) exist "
                f"(cuda:0 .. cuda:{count - 1})"
            )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("device 'mps' was asked for, but Apple's MPS backend is not available: use --device cpu")
    return resolved
