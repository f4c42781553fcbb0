"""Encoder._run_batches with batches encoded on several threads: rows land in input order whatever order the batches
finish in, and a failing batch fails the call."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from retrievekit.core.errors import RetrievekitError
from retrievekit.encoders.base import Encoder


class SlowFirstEncoder(Encoder):
    """Encodes a text as [len, index of its first char]; the longest batch (sorted first) is the slowest."""

    backend = "test-parallel"
    name = "slow-first"

    def __init__(self, workers: int, fail_on: str | None = None) -> None:
        self.workers, self.fail_on = workers, fail_on
        self.threads: set[str] = set()
        self.entered = 0

    @property
    def dim(self) -> int:
        return 2

    def _parallel_batches(self) -> int:
        return self.workers

    def _enter_worker(self) -> None:
        self.entered += 1

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        if self.fail_on in texts:
            raise RetrievekitError(f"cannot encode {self.fail_on!r}")
        time.sleep(0.001 * max(len(t) for t in texts))
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


TEXTS = [chr(ord("a") + i) * (1 + (i * 7) % 23) for i in range(20)]


def test_rows_come_back_in_input_order() -> None:
    sequential, parallel = SlowFirstEncoder(1), SlowFirstEncoder(3)
    expected = sequential.encode(TEXTS, batch_size=3)
    got = parallel.encode(TEXTS, batch_size=3)
    np.testing.assert_array_equal(got, expected)
    assert len(parallel.threads) > 1 and parallel.entered > 1
    assert sequential.threads == {threading.current_thread().name} and sequential.entered == 0


def test_one_batch_runs_in_the_calling_thread() -> None:
    encoder = SlowFirstEncoder(4)
    encoder.encode(TEXTS[:2], batch_size=8)
    assert encoder.threads == {threading.current_thread().name} and encoder.entered == 0


def test_a_failing_batch_fails_the_call() -> None:
    with pytest.raises(RetrievekitError, match="cannot encode"):
        SlowFirstEncoder(3, fail_on=TEXTS[-1]).encode(TEXTS, batch_size=2)
