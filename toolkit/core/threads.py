"""Thread settings shared by the rooms that use faiss (product quantization, two-stage clustering)."""

from __future__ import annotations

import contextlib

# faiss runs single-threaded: next to torch's OpenMP pool (two OpenMP runtimes in one process) two
# threads were 2-7x slower than one on the 2-core build machine (k-means and search, 5k-200k rows)
FAISS_THREADS = 1


@contextlib.contextmanager
def faiss_threads(threads: int = FAISS_THREADS):
    """`with faiss_threads() as faiss:` the faiss module, its OpenMP threads set for the block."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield faiss
    finally:
        faiss.omp_set_num_threads(before)
