"""`helpers.profiling.measure_peak_memory`: the peak rise of resident memory, on Linux through the
kernel's high-water mark and elsewhere through psutil."""

import time

import torch

from helpers import profiling


def test_measure_peak_memory_sees_a_large_temporary_allocation():
    def allocate():
        x = torch.ones(64 * 2**20 // 4)  # 64 MB of float32, freed on return
        return float(x[0])

    seconds, mb = profiling.measure_peak_memory(allocate)
    assert seconds > 0
    assert 32 <= mb < 1024


def test_measure_peak_memory_counts_an_allocation_that_reuses_freed_heap():
    # Many small tensors, freed: the C allocator keeps their pages resident for reuse. A large
    # allocation served from them raises no resident memory unless they are handed back first.
    small = [torch.ones(25_000) for _ in range(4000)]  # 100 KB each, 400 MB in all
    keep = torch.ones(10)  # sits above them in the heap, so freeing them cannot shrink it
    del small

    def allocate():
        x = torch.ones(64 * 2**20 // 4)
        return float(x[0])

    _, mb = profiling.measure_peak_memory(allocate)
    assert float(keep[0]) == 1.0
    assert 32 <= mb < 1024


def test_memory_is_measured_through_psutil_where_proc_is_missing(monkeypatch):
    import psutil

    def no_proc(field):
        raise OSError("no /proc here")  # as on macOS and Windows

    monkeypatch.setattr(profiling, "_status_kb", no_proc)
    rss = profiling._rss_bytes()
    assert abs(rss - psutil.Process().memory_info().rss) < 64 * 2**20  # the same reading
    assert rss > 10 * 2**20  # a Python process with torch is not 0 bytes

    def allocate_and_hold():
        x = torch.ones(64 * 2**20 // 4)  # 64 MB of float32
        time.sleep(0.05)  # held long enough for a sampler reading every 1 ms
        return float(x[0])

    seconds, mb = profiling.measure_peak_memory(allocate_and_hold)
    assert seconds >= 0.05
    assert 32 <= mb < 1024
