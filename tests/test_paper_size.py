"""One adaptation iteration of the paper preset at paper resolution on the CPU (marked slow: minutes and
about 8 GiB of memory, so it is left out of the default run; `pytest -m slow` runs it)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_one_paper_size_adaptation_iteration_runs_and_reports_time_and_memory(capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import paper_speed

    # Two threads, as before tests/conftest.py set the unit tests' one: a paper-size step has work for them.
    args = paper_speed.parse_args(["--preset", "paper_gta5", "--iters", "1", "--warmup", "0", "--device", "cpu",
                                   "--threads", "2"])
    figures = paper_speed.measure(args)
    assert figures["source_size"] == (1280, 720) and figures["target_size"] == (1024, 512)
    assert figures["arch"] == "deeplabv2_resnet101" and figures["batch"] == 1
    assert figures["seconds_per_iter"] > 0 and figures["peak_rss_mib"] > 1000
