"""Generating the benchmark on many cores writes the same bytes as on two (one thread per core)."""

import hashlib
import os

from test_synthetic_frozen import SMALL, SMALL_TREE_SHA256

from globallocal.data.synthetic import generate_benchmark, writing


def tree(root):
    return {path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


def test_one_thread_per_available_core_and_never_fewer_than_two():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert writing.GENERATOR_THREADS == max(2, cores)


def test_the_files_do_not_depend_on_the_number_of_threads(tmp_path, monkeypatch):
    for threads in (1, 5):
        monkeypatch.setattr(writing, "GENERATOR_THREADS", threads)
        generate_benchmark(tmp_path / str(threads), SMALL)
        assert tree(tmp_path / str(threads)) == SMALL_TREE_SHA256, threads
