"""The parity tests run both sides, numpy's BLAS and torch's intra-op pool, on the thread count the
server would use: ATTNSCOPE_BLAS_THREADS when set (CI runs them with 1 and with 2), else the
libraries' defaults. Float32 results depend on it (tests/engine/tolerances.py)."""

import pytest
import torch
from threadpoolctl import threadpool_limits

from app.settings import Settings


@pytest.fixture(scope="session", autouse=True)
def blas_threads():
    n = Settings().blas_threads
    if not n:
        yield None
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    with threadpool_limits(n, user_api="blas"):
        yield n
    torch.set_num_threads(before)
