"""Which device a run trains and predicts on: the one place that names devices.

Why: users train where their hardware is (``training.device: auto | cpu | cuda | cuda:N | mps``);
every other module asks this one for a ``torch.device`` and moves tensors with ``.to(device)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polytask.errors import ConfigError

if TYPE_CHECKING:
    import torch

from polytask.config import check_device_name

DEVICE_FIELD = "training.device"
CPU = "cpu"
AUTO = "auto"


def resolve_device(name: str = AUTO, *, local_rank: int | None = None, field: str = DEVICE_FIELD) -> torch.device:
    """The ``torch.device`` for ``name``; one that this machine lacks is a ConfigError naming ``field``.

    ``auto`` is CUDA when available, else CPU. Under ``torchrun`` (``local_rank`` given), plain
    ``cuda`` and ``auto`` mean the local rank's GPU.
    """
    import torch

    check_device_name(name, field)
    if name == AUTO:
        name = "cuda" if torch.cuda.is_available() else CPU
    if name == CPU:
        return torch.device(CPU)
    if name == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise ConfigError("mps requested but this machine has no MPS (Apple GPU) backend", field=field)
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ConfigError(f"{name} requested but CUDA is not available on this machine (use cpu or auto)", field=field)
    count = torch.cuda.device_count()
    index = int(name.split(":", 1)[1]) if ":" in name else (local_rank or 0)
    if index >= count:
        raise ConfigError(f"{name} requested (device index {index}) but this machine has {count} CUDA device(s)",
                          field=field)
    return torch.device("cuda", index)


def device_type(device: torch.device) -> str:
    """``"cuda"``, ``"cpu"`` or ``"mps"``: what ``torch.autocast`` and ``GradScaler`` take."""
    return device.type


def is_cpu(device: torch.device) -> bool:
    return device.type == CPU


def is_cuda(device: torch.device) -> bool:
    return device.type == "cuda"


def collective_backend(device: torch.device) -> str:
    """The ``torch.distributed`` backend for ranks on ``device``: NCCL for CUDA, gloo otherwise."""
    return "nccl" if is_cuda(device) else "gloo"


def cpu_device() -> torch.device:
    """Where checkpoints are mapped when loaded (then copied onto the run's device)."""
    import torch

    return torch.device(CPU)


def load_tensors(path: Any, device: torch.device | None = None) -> Any:
    """``torch.load`` of a checkpoint written on any device, its tensors mapped onto ``device`` (default CPU)."""
    import torch

    return torch.load(path, map_location=device or cpu_device(), weights_only=True)


__all__ = ["check_device_name", "collective_backend", "cpu_device", "device_type", "is_cpu", "is_cuda", "load_tensors",
           "resolve_device"]
