"""uhi.parallel.imap_tasks (ordered, bounded look-ahead) and uhi.buffers.ArrayPool (reuse)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from uhi.buffers import ArrayPool
from uhi.parallel import imap_tasks


class _Counter:
    """How many items have started and not yet been handed to the caller."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = 0
        self.taken = 0
        self.most_ahead = 0

    def work(self, x: int) -> int:
        with self.lock:
            self.started += 1
            self.most_ahead = max(self.most_ahead, self.started - self.taken)
        time.sleep(0.002 * (x % 3))  # finish out of order
        return x * x


@pytest.mark.parametrize(("threads", "ahead"), [(1, None), (2, 3), (3, 1)])
def test_imap_tasks_yields_in_input_order_with_bounded_look_ahead(threads, ahead):
    counter = _Counter()
    out = []
    for value in imap_tasks(counter.work, range(25), threads=threads, ahead=ahead):
        time.sleep(0.003)  # a slow caller: the workers must not run away from it
        out.append(value)
        with counter.lock:
            counter.taken += 1
    assert out == [i * i for i in range(25)]
    window = 1 if threads == 1 else ahead
    # submitted and not yet yielded: at most the window, +1 refilled while the caller holds one
    assert counter.most_ahead <= window + 1


def test_imap_tasks_raises_the_failing_item_in_its_turn():
    def fail_on_five(x: int) -> int:
        if x == 5:
            raise ValueError("five")
        return x

    got = []
    with pytest.raises(ValueError, match="five"):
        for value in imap_tasks(fail_on_five, range(20), threads=2, ahead=4):
            got.append(value)
    assert got == [0, 1, 2, 3, 4]


def test_array_pool_reuses_arrays_by_shape_and_dtype_within_its_budget():
    pool = ArrayPool(max_bytes=2 * 8000)
    a = pool.take((10, 100), np.float64)
    assert a.shape == (10, 100) and a.dtype == np.float64
    pool.give(a)
    assert pool.held_bytes == 8000
    assert pool.take((10, 100), np.float32) is not a  # another dtype
    assert pool.take((100, 10), np.float64) is not a  # another shape
    assert pool.take((10, 100), np.float64) is a and pool.held_bytes == 0
    pool.give(a, a)  # given twice: kept once
    assert pool.take((10, 100), np.float64) is a
    assert pool.take((10, 100), np.float64) is not a
    pool.give(a[:5], None)  # a view would pin its base: dropped
    assert pool.held_bytes == 0
    b, c, d = (np.empty((10, 100)) for _ in range(3))
    pool.give(b, c, d)  # over the budget: the third is dropped
    assert pool.held_bytes == 16000
    pool.clear()
    fresh = pool.take((10, 100), np.float64)
    assert pool.held_bytes == 0 and all(fresh is not kept for kept in (b, c, d))
