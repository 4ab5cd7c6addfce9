"""The main table's runs (names, overrides), the reuse guard of finished experiments, and the rows it writes."""

import csv

import pytest
import yaml

from globallocal.experiments import main_table
from globallocal.experiments import queue as experiment_queue

CELL = {"prepare.shift": "scale", "prepare.shift_severity": 1}


@pytest.fixture
def committed(tmp_path, monkeypatch):
    """A workspace whose params.yaml has the keys the main table reads (selftrain.iterations 0, as committed)."""
    monkeypatch.chdir(tmp_path)
    params = {"prepare": {"shift": "none", "shift_severity": 1},
              "model": {"bn_protocol": "learned", "arch": "efficientnet_lite0", "backbone_weights": "imagenet"},
              "adapt": {"bn_stats": "reestimate"}, "selftrain": {"iterations": 0, "max_iters": 150}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def test_a_self_training_run_is_named_apart_and_runs_the_committed_schedule(committed):
    runs = main_table.ablation_runs([0], CELL, True, ("advent", "source_only"), ("advent", "minent"))
    assert set(runs) == {("none", 0, 0), ("advent", 0, 0), ("advent", 1, 0), ("minent", 0, 0), ("minent", 1, 0),
                         ("source_only", 0, 0)}
    names = {key: name for key, (name, _) in runs.items()}
    assert names[("advent", 1, 0)] == "ablation-scale-1-learned-advent-local1-st-s0"
    assert names[("minent", 1, 0)] == "ablation-scale-1-learned-minent-local1-s0"
    assert names[("none", 0, 0)] == "ablation-scale-1-learned-none-local0-s0"
    assert names[("source_only", 0, 0)] == "ablation-scale-1-learned-source-only-local0-s0"
    assert len(set(names.values())) == len(names)
    assert runs[("advent", 1, 0)][1] == {**CELL, "adapt.global_family": "advent", "seed": 0,
                                         "selftrain.iterations": 150}
    assert runs[("advent", 0, 0)][1]["adapt.lambda_adv_local"] == 0
    assert "selftrain.iterations" not in runs[("minent", 1, 0)][1]  # adapt-only: the committed 0 applies
    assert runs[("none", 0, 0)][1] == {**CELL, "adapt.global_family": "none", "adapt.lambda_adv_local": 0,
                                       "seed": 0}
    assert runs[("source_only", 0, 0)][1] == {**CELL, "selftrain.start": "source_only", "seed": 0,
                                              "selftrain.iterations": 150}


def test_only_the_local_run_of_a_family_self_trains_when_asked(committed):
    runs = main_table.ablation_runs([0], CELL, True, ("advent",), ("advent",), selftrain_locals=(1,))
    assert runs[("advent", 1, 0)][0] == "ablation-scale-1-learned-advent-local1-st-s0"
    assert runs[("advent", 1, 0)][1]["selftrain.iterations"] == 150
    assert runs[("advent", 0, 0)][0] == "ablation-scale-1-learned-advent-local0-s0"
    assert "selftrain.iterations" not in runs[("advent", 0, 0)][1]


def test_a_rows_cell_names_its_statistics_setting_and_backbone(committed):
    assert main_table.cell_of({}) == {"bn": "learned", "shift": "none", "stats": "reestimate",
                                      "backbone": "efficientnet_lite0/imagenet"}
    other = main_table.cell_of({"model.arch": "mobilenetv3_small", "model.backbone_weights": None,
                                "adapt.bn_stats": "mixed", **CELL})
    assert other == {"bn": "learned", "shift": "scale-1", "stats": "mixed", "backbone": "mobilenetv3_small/random"}


def test_a_cell_run_with_another_backbone_is_named_apart(committed):
    """The committed params' backbone is efficientnet_lite0/imagenet here: a MobileNet run of the same cell must
    not share its experiment names (a name found finished would be taken as this run's results)."""
    mobilenet = {**CELL, "model.arch": "mobilenetv3_small", "model.backbone_weights": None}
    assert main_table.backbone_label(CELL) == ""
    assert main_table.backbone_label(mobilenet) == "mobilenetv3_small-random"
    assert main_table.ablation_prefix(CELL) == "ablation-scale-1-learned"
    assert main_table.ablation_prefix(mobilenet) == "ablation-scale-1-learned-mobilenetv3_small-random"
    names = {name for name, _ in main_table.ablation_runs([0], mobilenet, False, (), ("advent",)).values()}
    assert names == {"ablation-scale-1-learned-mobilenetv3-small-random-none-local0-s0",
                     "ablation-scale-1-learned-mobilenetv3-small-random-advent-local0-s0",
                     "ablation-scale-1-learned-mobilenetv3-small-random-advent-local1-s0"}


def test_an_adapt_only_run_switches_self_training_off_when_the_committed_params_self_train(committed):
    params = yaml.safe_load((committed / "params.yaml").read_text())
    params["selftrain"]["iterations"] = 40
    (committed / "params.yaml").write_text(yaml.safe_dump(params))
    runs = main_table.ablation_runs([0], CELL, True, ("advent",), ("advent", "minent"))
    assert runs[("minent", 0, 0)][1]["selftrain.iterations"] == 0
    assert runs[("none", 0, 0)][1]["selftrain.iterations"] == 0
    assert runs[("advent", 0, 0)][1]["selftrain.iterations"] == 150


def test_family_overrides_go_to_that_family_only_under_the_tag(committed):
    weights = {"advent": {"adapt.lambda_adv_main": 0.1, "adapt.lambda_adv_aux": 0.02}}
    runs = main_table.ablation_runs([2], CELL, False, (), ("advent", "minent"), weights, "x100")
    assert runs[("advent", 1, 2)] == ("ablation-scale-1-learned-x100-advent-local1-s2",
                                      {**CELL, "adapt.global_family": "advent", "seed": 2,
                                       "adapt.lambda_adv_main": 0.1, "adapt.lambda_adv_aux": 0.02})
    assert runs[("minent", 0, 2)][0] == "ablation-scale-1-learned-minent-local0-s2"
    assert "adapt.lambda_adv_main" not in runs[("minent", 0, 2)][1]
    assert runs[("none", 0, 2)][0] == "ablation-scale-1-learned-none-local0-s2"
    with pytest.raises(ValueError, match="need a tag"):
        main_table.ablation_runs([2], CELL, False, (), ("advent",), weights)


def test_a_family_override_of_the_local_weight_leaves_the_run_without_local_alignment_at_zero(committed):
    local = {"adaptsegnet": {"adapt.lambda_adv_local": 0.1, "adapt.local_representation": "self_information"}}
    runs = main_table.ablation_runs([0], CELL, False, (), ("adaptsegnet",), local, "dev-local")
    assert runs[("adaptsegnet", 1, 0)][1]["adapt.lambda_adv_local"] == 0.1
    assert runs[("adaptsegnet", 0, 0)][1]["adapt.lambda_adv_local"] == 0
    assert runs[("adaptsegnet", 0, 0)][1]["adapt.local_representation"] == "self_information"
    assert runs[("none", 0, 0)][1]["adapt.lambda_adv_local"] == 0


def test_params_mismatch_names_each_override_a_finished_experiment_did_not_run():
    recorded = {"seed": 0, "adapt": {"global_family": "advent", "lambda_adv_local": 1.0},
                "selftrain": {"iterations": 150}}
    wanted = {"seed": 0, "adapt.global_family": "advent", "selftrain.iterations": 0, "adapt.lambda_adv_main": 0.1}
    assert experiment_queue.params_mismatch(recorded, wanted) == [
        "selftrain.iterations: 150 -> 0", "adapt.lambda_adv_main: (absent) -> 0.1"]
    assert experiment_queue.params_mismatch(recorded, {"seed": 0, "adapt.lambda_adv_local": 1}) == []
    assert experiment_queue.params_mismatch(None, wanted) == []


def test_a_finished_experiment_with_other_params_stops_the_run_before_anything_is_queued(monkeypatch):
    queued = []
    monkeypatch.setattr(experiment_queue, "check_no_repro_running", lambda: None)
    monkeypatch.setattr(experiment_queue, "finished_experiments",
                        lambda: {"a-s0": {"adapted": {"miou": 1.0},
                                          "_params": {"seed": 0, "selftrain": {"iterations": 0}}}})
    monkeypatch.setattr(experiment_queue.subprocess, "run", lambda *args, **kwargs: queued.append(args))
    with pytest.raises(SystemExit,
                       match=r"experiment a-s0 exists with other params \(selftrain.iterations: 0 -> 150\)"):
        experiment_queue.run_all({"b-s0": {"seed": 0}, "a-s0": {"seed": 0, "selftrain.iterations": 150}}, 1)
    assert queued == []


def _metrics(adapted: float, selftrained: float | None = None) -> dict:
    models = {"adapted": adapted, "source_only": 9.0, "adabn": 12.0, "oracle": 21.0}
    if selftrained is not None:
        models.update(selftrained=selftrained, selftrain_control=adapted + 1.0)
    val = {model: {"miou": value} for model, value in models.items()}
    return {**val, "dev": {model: {"miou": value + 0.5} for model, value in models.items()}}


def test_every_queued_experiment_runs_one_torch_thread_as_a_param(monkeypatch):
    # a param, not only OMP_NUM_THREADS: DVC's run cache keys stages on params, so a 1-thread job's stages are
    # never restored into a default `dvc repro` (whose numbers differ with the thread count)
    commands = []
    monkeypatch.setattr(experiment_queue, "check_no_repro_running", lambda: None)
    monkeypatch.setattr(experiment_queue, "_queued_or_running", lambda: set())
    monkeypatch.setattr(experiment_queue, "_queue_busy", lambda: False)
    monkeypatch.setattr(experiment_queue, "finished_experiments",
                        lambda: {"a-s0": {"adapted": {"miou": 1.0}}} if commands else {})
    monkeypatch.setattr(experiment_queue.subprocess, "run", lambda args, **kwargs: commands.append(args))
    experiment_queue.run_all({"a-s0": {"seed": 0}}, 1)
    queued = commands[0]
    assert queued[queued.index("--queue"):] == ["--queue", "-n", "a-s0", "-S", "train.cpu_threads=1", "-S", "seed=0"]


def test_the_table_takes_baselines_from_the_weight_0_run_and_keeps_other_settings_rows(committed, monkeypatch):
    finished = {"ablation-scale-1-learned-none-local0-s0": _metrics(13.0),
                "ablation-scale-1-learned-advent-local0-st-s0": _metrics(13.5, 12.0),
                "ablation-scale-1-learned-advent-local1-st-s0": _metrics(13.25, 12.5),
                "ablation-scale-1-learned-x100-advent-local0-s0": _metrics(15.0),
                "ablation-scale-1-learned-x100-advent-local1-s0": _metrics(15.5)}
    monkeypatch.setattr(main_table, "finished_experiments", lambda: finished)
    monkeypatch.setattr(main_table, "experiment_refs", lambda: {name: f"refs/exps/{name}" for name in finished})
    probe = b'{"models": {"adapted": {"auc": 0.75}, "source_only": {"auc": 0.9}}}'
    monkeypatch.setattr(main_table, "committed_file",
                        lambda ref, path: probe if ref.endswith("none-local0-s0") else None)
    main_table.ablation([0], 1, True, sets=CELL, selftrain_families=("advent",), families=("advent",))
    main_table.ablation([0], 1, True, selftrain=False, sets=CELL, families=("advent",),
                        family_sets={"advent": {"adapt.lambda_adv_main": 0.1}}, tag="x100")
    with open("reports/ablation.csv", newline="") as handle:
        rows = {(r["setting"], r["family"], r["local"], r["selftrain"]): r for r in csv.DictReader(handle)}
    assert len(rows) == 8 + 6  # committed: 6 models + 2 self-trained; x100: 6 models
    assert rows[("committed", "advent", "1", "1")]["val_miou"] == "12.5"
    assert rows[("committed", "advent", "1", "1")]["control_val_miou"] == "14.25"
    assert rows[("x100", "advent", "1", "0")]["val_miou"] == "15.5"
    assert rows[("x100", "none", "0", "0")]["dev_miou"] == "13.5"
    assert rows[("x100", "oracle", "0", "0")]["val_miou"] == "21.0"
    assert {r["shift"] for r in rows.values()} == {"scale-1"}
    assert {(r["stats"], r["backbone"]) for r in rows.values()} == {("reestimate", "efficientnet_lite0/imagenet")}
    # the probe's AUC of the row's own model, from the run's reports/probe_auc.json; none written: empty
    assert rows[("committed", "none", "0", "0")]["probe_auc"] == "0.75"
    assert rows[("committed", "source_only", "0", "0")]["probe_auc"] == "0.9"
    assert rows[("committed", "oracle", "0", "0")]["probe_auc"] == ""
    assert rows[("committed", "advent", "1", "0")]["probe_auc"] == ""
    assert (committed / "reports" / "ablation_scale-1_learned_x100.md").read_text().startswith(
        "Cell: shift scale-1, bn learned, setting x100; seeds [0]. Per-family overrides: advent: "
        "`adapt.lambda_adv_main=0.1`.")


def test_a_cell_scored_again_keeps_the_rows_of_runs_it_did_not_score_and_replaces_its_own(committed, monkeypatch):
    # seed 0's experiments were lost with their machine (DVC keeps experiments in local refs); seed 1 runs now
    # and its weight-0 run is scored again with another result: seed 0's rows stay, seed 1's old row goes
    earlier = {"ablation-scale-1-learned-none-local0-s0": _metrics(13.0),
               "ablation-scale-1-learned-none-local0-s1": _metrics(14.0)}
    now = {"ablation-scale-1-learned-none-local0-s1": _metrics(14.5),
           "ablation-scale-1-learned-minent-local0-s1": _metrics(15.0)}
    monkeypatch.setattr(main_table, "experiment_refs", lambda: {})
    monkeypatch.setattr(main_table, "finished_experiments", lambda: earlier)
    main_table.ablation([0, 1], 1, True, selftrain=False, sets=CELL, families=())
    monkeypatch.setattr(main_table, "finished_experiments", lambda: now)
    main_table.ablation([1], 1, True, selftrain=False, sets=CELL, families=("minent",))
    with open("reports/ablation.csv", newline="") as handle:
        rows = sorted((r["family"], r["seed"], r["val_miou"]) for r in csv.DictReader(handle))
    assert rows == [("adabn", "0", "12.0"), ("adabn", "1", "12.0"), ("minent", "1", "15.0"), ("none", "0", "13.0"),
                    ("none", "1", "14.5"), ("oracle", "0", "21.0"), ("oracle", "1", "21.0"),
                    ("source_only", "0", "9.0"), ("source_only", "1", "9.0")]
    table = (committed / "reports" / "ablation_scale-1_learned.md").read_text()
    assert table.startswith("Cell: shift scale-1, bn learned, setting committed; seeds [0, 1].")


def test_rows_written_before_the_setting_column_read_as_the_committed_setting(tmp_path):
    path = tmp_path / "ablation.csv"
    path.write_text("family,local,seed,val_miou,dev_miou\nadvent,1,0,15.0,16.0\n")
    from globallocal.reporting.ablation import read_ablation

    old = read_ablation(path)[0]
    assert (old["setting"], old["stats"], old["backbone"], old["probe_auc"]) == (
        "committed", "mixed", "mobilenetv3_small/random", None)


def test_the_report_shows_only_the_committed_setting_of_its_own_cell(tmp_path):
    from globallocal.reporting.ablation import read_ablation, rows_of_cell

    path = tmp_path / "ablation.csv"
    path.write_text("family,local,seed,val_miou,dev_miou,bn,shift,setting\n"
                    "advent,1,0,15.0,16.0,learned,none,\n"          # written before the setting column
                    "advent,1,0,17.0,18.0,learned,none,x100\n"
                    "advent,1,0,13.0,14.0,learned,scale-1,committed\n")
    shown = rows_of_cell(read_ablation(path), "none", "learned")
    assert [(row["val_miou"], row["setting"]) for row in shown] == [(15.0, "committed")]


def test_the_report_can_ask_for_one_statistics_setting_and_backbone(tmp_path):
    from globallocal.reporting.ablation import read_ablation, rows_of_cell

    path = tmp_path / "ablation.csv"
    path.write_text("family,local,seed,val_miou,dev_miou,bn,shift,setting,stats,backbone\n"
                    "advent,1,0,15.0,16.0,learned,none,committed,,\n"  # written before the two columns
                    "advent,1,0,17.0,18.0,learned,none,committed,reestimate,efficientnet_lite0/imagenet\n")
    rows = read_ablation(path)
    assert [r["val_miou"] for r in rows_of_cell(rows, "none", "learned")] == [15.0, 17.0]
    assert [r["val_miou"] for r in rows_of_cell(rows, "none", "learned", stats="mixed",
                                                backbone="mobilenetv3_small/random")] == [15.0]
    assert [r["val_miou"] for r in rows_of_cell(rows, "none", "learned", stats="reestimate")] == [17.0]


def test_the_goals_read_one_regime_every_cell_and_setting(tmp_path):
    from globallocal.reporting.ablation import read_ablation, rows_of_regime

    path = tmp_path / "ablation.csv"
    path.write_text("family,local,seed,val_miou,dev_miou,bn,shift,setting,stats,backbone\n"
                    "advent,1,0,15.0,16.0,learned,none,committed,reestimate,mobilenetv3_small/random\n"
                    "advent,1,0,16.0,17.0,learned,swap-3,dev-weights,reestimate,mobilenetv3_small/random\n"
                    "advent,1,0,17.0,18.0,learned,none,committed,mixed,mobilenetv3_small/random\n"
                    "advent,1,0,18.0,19.0,learned,none,committed,reestimate,efficientnet_lite0/imagenet\n"
                    "advent,1,0,19.0,20.0,frozen,none,committed,reestimate,mobilenetv3_small/random\n")
    rows = rows_of_regime(read_ablation(path), "learned", "reestimate", "mobilenetv3_small/random")
    assert [row["val_miou"] for row in rows] == [15.0, 16.0]
