"""The dev sweeps of benchmarks/ (selftrain_dev.py, regime_dev.py) share one loop: run each variant once,
keep what the CSV already holds for the same params."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from selftrain_dev import run_variants  # noqa: E402


def test_variants_already_measured_with_the_same_params_are_kept_and_changed_ones_rerun(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = []

    def run(overrides, scratch):
        calls.append(dict(overrides))
        assert scratch.is_dir()
        return {"dev": 10.0 + len(calls), "val": 5.0, "train_s": 1.0}

    spec = {"name": "demo", "variants": {"a": {"x.y": 1}, "b": {}}}
    first = run_variants(spec, run, seed=3)
    assert calls == [{"x.y": 1}, {}]
    assert [(r["variant"], r["dev_miou"], r["params"], r["seed"]) for r in first] == [
        ("a", 11.0, "x.y=1", 3), ("b", 12.0, "", 3)]
    assert (tmp_path / "reports/sweeps/demo.csv").read_text().splitlines()[0] == (
        "variant,seed,dev_miou,val_miou,train_s,params")

    again = run_variants(spec, run, seed=3)
    assert len(calls) == 2 and [r["dev_miou"] for r in again] == [11.0, 12.0]  # nothing re-run

    spec["variants"]["a"] = {"x.y": 2}
    changed = run_variants(spec, run, seed=3)
    assert calls[-1] == {"x.y": 2} and [r["dev_miou"] for r in changed] == [13.0, 12.0]
    run_variants(spec, run, seed=3, rerun=True)
    assert len(calls) == 5
