"""How many threads torch should use, decided once per process.

torch's default (one thread per core) is right on an idle machine and badly wrong elsewhere:
inside a DataLoader worker every worker would take all cores, and on a busy 2-core machine
a fit ran 15-20x slower with the default than with one thread, the threads waiting on each
other. :func:`default_threads` takes the cores this process may use, minus the load other
processes already put on them, and one inside a DataLoader worker.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import get_worker_info

from spin_diff.errors import BadInputError


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """1 in a DataLoader worker; else the idle cores (cores - 1-minute load average), at least 1."""
    if get_worker_info() is not None:
        return 1
    cores = available_cores()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads to ``threads`` (None or 0: :func:`default_threads`);
    returns the number set. Raises ValueError for a negative count."""
    if threads is not None and threads < 0:
        raise BadInputError(f"--threads must be >= 0 (0: choose from the idle cores), got {threads}")
    count = threads or default_threads()
    torch.set_num_threads(count)
    return count
