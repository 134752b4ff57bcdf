"""Measuring what a computation costs: wall time and the peak rise of resident memory.

Used by chapter 11's memory table and by the benchmarks `benchmarks/attention.py` and
`benchmarks/nadaraya_watson.py`, so a notebook and a benchmark measure memory the same way.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

__all__ = ["measure_peak_memory"]


def _status_kb(field: str) -> int:
    """A memory field of /proc/self/status in kB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _rss_bytes() -> int:
    """Resident memory of this process in bytes (Linux /proc, else psutil: macOS, Windows)."""
    try:
        return _status_kb("VmRSS") * 1024
    except OSError:
        import psutil  # in requirements.txt; imported only where /proc is missing

        return psutil.Process().memory_info().rss


def _release_free_heap() -> None:
    """Hand memory that the C allocator holds free back to the system (glibc's malloc_trim).

    Without this, a tensor can reuse heap pages that earlier, freed tensors left resident, and
    its allocation would not raise the resident memory at all. Does nothing outside glibc.
    """
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


def measure_peak_memory(fn, interval: float = 0.001) -> tuple[float, float]:
    """Run fn() once; return (seconds, peak rise of resident memory in MB while it ran).

    Free memory that the allocator still holds is returned to the system first, so what fn()
    allocates shows as a rise even where it reuses freed memory. On Linux the kernel's own
    high-water mark is then reset (/proc/self/clear_refs) and read after the call, so no peak is
    missed. Elsewhere (macOS, Windows) a thread samples the resident memory through psutil every
    `interval` seconds; it can miss a peak shorter than that.
    """
    _release_free_heap()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak resident set size (VmHWM) to the current one
        base = _status_kb("VmRSS")
    except OSError:
        base = None
    if base is not None:
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
        return seconds, max(_status_kb("VmHWM") - base, 0) / 1024
    start = _rss_bytes()
    peak = start
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_bytes())
            time.sleep(interval)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    done.set()
    watcher.join()
    peak = max(peak, _rss_bytes())
    return seconds, (peak - start) / 2**20
