"""benchmarks/gpu_check.py's bookkeeping: what it reports missing, the goals it computes, the stage order.

The check itself runs on a GPU (or `benchmarks/gpu_check.sh --cpu-dry-run`, minutes); here its pieces.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_check  # noqa: E402

REFERENCE = "reference (ADVENT-style fp32)"


def measured_report(dry_run=False):
    return {
        "date": "2026-11-30T00:00:00+00:00", "device": "NVIDIA H200", "torch": "2.x", "dry_run": dry_run,
        "tests": {"passed": 7, "failures": 0, "errors": 0, "skipped": 1, "failed": []},
        "paper_step": {"variants": {
            REFERENCE: {"s_per_iter": 0.15, "peak_mib": 5000},
            "configured fp32": {"s_per_iter": 0.10, "peak_mib": 4000},
            "configured bf16": {"s_per_iter": 0.05, "peak_mib": 2500},
            "configured fp16": {"skipped": "fp16 is CUDA only"},
        }},
        "embedded_step": {"configured_s_per_iter": 0.0173, "device": "cuda"},
        "pipeline": {"status": 0, "total_s": 77.0, "runner": "dvc repro -s <stage>",
                     "stages_s": {"prepare": 30.0, "pretrain": 47.0}},
    }


def test_a_missing_package_is_named_and_a_dotted_name_with_a_missing_parent_too():
    assert gpu_check.missing(["os", "json.decoder", "no_such_package_xyz", "no_such_parent_xyz.child"]) == [
        "no_such_package_xyz", "no_such_parent_xyz.child"]


def test_the_goals_take_the_fastest_configured_variant_against_the_reference():
    report = measured_report()
    goals = list(gpu_check.goals(report).values())
    # 0.15 / 0.05 = 3x; 2500 / 5000 MiB = 0.5; 0.173 / 0.0173 = 10x; 77 / 154 s = 0.5
    assert goals == [3.0, 0.5, 10.0, 0.5]


def test_a_dry_run_measures_no_goal_and_says_so():
    report = measured_report(dry_run=True)
    report["goals"] = gpu_check.goals(report)
    assert set(report["goals"].values()) == {None}
    assert "as in every dry run" in gpu_check.table(report)


def test_the_table_shows_each_variant_with_its_ratio_and_memory():
    report = measured_report()
    report["goals"] = gpu_check.goals(report)
    lines = gpu_check.table(report).splitlines()
    assert any("configured bf16" in line and "0.0500 s/it" in line and "3.00x" in line and "2500 MiB" in line
               for line in lines)
    assert any("configured fp16" in line and "CUDA only" in line for line in lines)
    assert "pipeline (dvc repro -s <stage>): 77 s: prepare 30, pretrain 47" in lines


def test_the_stages_run_in_the_order_dvc_yaml_lists_them():
    names = [name for name, _ in gpu_check.stage_commands()]
    assert names[:4] == ["fingerprint", "prepare", "data_report", "pretrain"] and names[-1] == "report"
    assert dict(gpu_check.stage_commands())["source_only"] == "python pipeline/adapt.py --source-only"


def test_the_budget_cuts_a_part_to_what_is_left_after_the_reserve():
    budget = gpu_check.Budget(100.0)
    assert budget.limit("tests", reserve=50) == pytest.approx(50, abs=1)
    assert budget.limit("embedded_step") == gpu_check.CAPS["embedded_step"]  # 60 s cap < 100 s left


def test_the_table_shows_the_host_syncs_per_step_with_their_sources():
    report = measured_report()
    report["syncs"] = {"device": "cuda", "mean_syncs_per_other_step": 4.0, "mean_syncs_per_log_step": 5.0,
                       "sources_per_other_step": {"local.py:123": 2.0, "local.py:104": 2.0}}
    report["goals"] = gpu_check.goals(report)
    assert ("host syncs per adapt step on cuda: 4 between log steps (local.py:123 x2, local.py:104 x2), "
            "5.0 at a log step") in gpu_check.table(report).splitlines()


def test_the_sync_count_part_runs_on_the_cpu_in_a_dry_run(tmp_path):
    # The dry run's own scale (as the script's --cpu-dry-run): the part's 40-s GPU cap timed out on a loaded CPU.
    budget = gpu_check.Budget(1800.0, scale=gpu_check.DRY_RUN_BUDGET_S / gpu_check.GPU_BUDGET_S)
    result = gpu_check.part_syncs(budget, tmp_path, dry_run=True)
    assert result["status"] == 0, result.get("output_tail")
    assert result["device"] == "cpu" and result["syncs_per_step"] == [0, 0, 0, 0]  # nothing synchronises on a CPU
