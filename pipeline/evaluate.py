"""Stage `evaluate`: score the source-only, AdaBN, adapted, oracle, self-trained and self-training-control
models on target val and on the held-out target dev split (docs/method.md, "Evaluation protocol").

Writes reports/metrics.json (the headline mIoU of each model on val), reports/metrics_dev.json (the same
on target dev: the numbers every choice is made on), reports/per_class_iou.json (per-class val IoU of
each model, in percent), each model's confusion matrix and a few qualitative samples under reports/eval/, and the
predictions under predictions/<model>/labelIds (labelId PNGs with
Cityscapes result names, the official evaluation's input) and predictions/<model>/color. It then
scores the exported labelId PNGs with cityscapesscripts and records the largest per-class difference
to our own numbers in reports/eval/official_check.json. reports/eval/local_diagnostics.json holds, per
model, the precision on dev of the pseudo-classes the local term's target filter keeps (not a DVC metric).
reports/probe_auc.json holds, per model, the domain probe's held-out ROC AUC: a fresh discriminator trained
on the model's source-train vs target-dev outputs (globallocal.evaluation.probe; docs/fair_game.md).

Whole or absent: predictions/ and reports/eval/ are built beside their place and swapped in at the
end, then the JSON files are renamed into place, so a kill leaves the previous complete ones or none.

The two metrics files hold the same keys ({model: {"miou": ...}}), so `dvc metrics show` prints one
row per split and one column per model: the headline numbers, in a width a terminal shows.
"""

import math
import shutil
import time
from pathlib import Path

import numpy as np

from globallocal import atomic, config
from globallocal.checkpoints import model_from_checkpoint
from globallocal.config.sections import DataSection
from globallocal.data.file_lists import SOURCE_LIST, TARGET_DEV_LIST, TARGET_VAL_LIST, read_list
from globallocal.data.labels import CLASS_NAMES, NUM_CLASSES
from globallocal.data.loading import source_dataset, target_dataset
from globallocal.data.transforms import to_display_rgb
from globallocal.evaluation.local_diagnostics import local_filter_precision
from globallocal.evaluation.metrics import evaluate, official_cityscapes_evaluation
from globallocal.evaluation.probe import ProbeConfig, common_size, domain_probe, output_maps
from globallocal.runtime import resolve_device, use_cpu_threads
from globallocal.stage_runner import run_stage

MODELS = {
    "source_only": Path("models/source_only.pt"),
    "adabn": Path("models/adabn.pt"),
    "adapted": Path("models/adapted.pt"),
    "oracle": Path("models/oracle.pt"),
    "selftrained": Path("models/selftrained.pt"),
    "selftrain_control": Path("models/selftrain_control.pt"),
}
PREDICTIONS = Path("predictions")
EVAL_DIR = Path("reports/eval")
METRICS = Path("reports/metrics.json")
METRICS_DEV = Path("reports/metrics_dev.json")
PER_CLASS_IOU = Path("reports/per_class_iou.json")
PROBE_AUC = Path("reports/probe_auc.json")
IMAGE_SUFFIX = "_leftImg8bit.png"


def official_difference(ours: dict, official: dict) -> float:
    """Largest |ours - official| per-class IoU (percent); classes undefined on both sides are skipped."""
    worst = 0.0
    for name in CLASS_NAMES:
        mine, theirs = ours[name], official[name]
        if mine is None and math.isnan(theirs):
            continue
        if mine is None or math.isnan(theirs):
            return math.inf
        worst = max(worst, abs(mine - theirs))
    return worst


def main() -> None:
    params = config.load_validated_params()
    use_cpu_threads(params.train.cpu_threads)
    data = params.data
    device = resolve_device(params.device)
    num_keep = params.evaluate.num_qualitative
    names = read_list(data.lists_dir / TARGET_VAL_LIST)
    dev_names = read_list(data.lists_dir / TARGET_DEV_LIST)
    synthia = data.source == "synthia"
    local = params.alignment_config().local
    probe_config = params.probe_config()
    probe_names = read_list(data.lists_dir / SOURCE_LIST)[:len(dev_names)]
    probe_size = common_size([data.source_size, data.target_size], data.train_crop)
    probes, probe_seconds = {}, 0.0
    predictions, eval_dir = atomic.staging_dir(PREDICTIONS), atomic.staging_dir(EVAL_DIR)

    metrics, dev_metrics, per_class, official, qualitative, diagnostics = {}, {}, {}, {}, {}, {}
    models = dict(MODELS)
    copies = {}
    if params.selftrain.iterations == 0:
        # Both self-training stages then copy their start model (selftrain.start: adapted or source_only, the
        # very same weights): `selftrained` stays in the table with the start model's scores, taken over
        # rather than computed a second time; its control is left out, which keeps `dvc metrics show` within
        # a terminal's width.
        del models["selftrain_control"]
        copies["selftrained"] = params.selftrain.start
    for model_name, checkpoint in models.items():
        if model_name in copies:
            start = copies[model_name]
            for scores in (metrics, dev_metrics, per_class, official, qualitative, diagnostics, probes):
                scores[model_name] = scores[start]
            np.save(eval_dir / f"confusion_{model_name}.npy", np.load(eval_dir / f"confusion_{start}.npy"))
            shutil.copytree(predictions / start, predictions / model_name)
            print(f"{model_name}: a copy of {start} (selftrain.iterations 0), its scores taken over")
            continue
        model, _ = model_from_checkpoint(checkpoint)
        dataset = target_dataset(
            data.target_root, "val", names, data.target_size, model.input_normalization,
            with_labels=True, resize_label=False,
        )
        labelid_dir = predictions / model_name / "labelIds"
        result, kept = evaluate(
            model, dataset, device, NUM_CLASSES, labelid_dir=labelid_dir,
            color_dir=predictions / model_name / "color", num_keep=num_keep, progress=True,
        )
        scored = result.to_metrics(synthia=synthia)
        per_class[model_name] = scored.pop("per_class_iou")
        metrics[model_name] = scored
        np.save(eval_dir / f"confusion_{model_name}.npy", result.confusion)
        scores = official_cityscapes_evaluation(data.target_root, "val", labelid_dir)
        official[model_name] = official_difference(per_class[model_name], scores)
        qualitative[model_name] = kept
        dev_set = target_dataset(
            data.target_root, "train", dev_names, data.target_size, model.input_normalization,
            with_labels=True, resize_label=False,
        )
        dev_result, _ = evaluate(model, dev_set, device, NUM_CLASSES, progress=True)
        dev_metrics[model_name] = dev_result.to_metrics(synthia=synthia)
        dev_metrics[model_name].pop("per_class_iou")
        # The local term's filter as training applies it: dev images and labels at the training size.
        dev_train_size = target_dataset(
            data.target_root, "train", dev_names, data.target_size, model.input_normalization, with_labels=True
        )
        diagnostics[model_name] = local_filter_precision(
            model, dev_train_size, device, local.window, local.conf_threshold, local.min_purity, NUM_CLASSES
        ).to_dict(CLASS_NAMES)
        started = time.perf_counter()
        probes[model_name] = probe_model(model, probe_names, dev_names, probe_size, probe_config, data, device)
        probe_seconds += time.perf_counter() - started
        print(f"{model_name}: mIoU val {metrics[model_name]['miou']}, dev {dev_metrics[model_name]['miou']}, "
              f"domain probe AUC {probes[model_name]['auc']:.3f}")

    atomic.write_json(eval_dir / "official_check.json", {"max_abs_per_class_iou_difference": official})
    atomic.write_json(eval_dir / "local_diagnostics.json", {
        "split": "dev", "head": "main", "window": local.window, "conf_threshold": local.conf_threshold,
        "min_purity": local.min_purity, "models": diagnostics,
    })
    save_qualitative(eval_dir / "qualitative.npz", qualitative, data, names[:num_keep])
    atomic.replace_dir(predictions, PREDICTIONS)
    atomic.replace_dir(eval_dir, EVAL_DIR)
    print(f"evaluate: the domain probes took {probe_seconds:.1f} s")
    atomic.write_json(PROBE_AUC, {
        "what": "held-out ROC AUC of a fresh discriminator telling the model's source-train outputs from its "
                "target-dev outputs (0.5: indistinguishable)",
        "head": "main", "representation": "softmax", "map_size": list(probe_size), "pool": probe_config.pool,
        "images_per_domain": len(dev_names), "steps": probe_config.steps, "width": probe_config.width,
        "models": probes,
    })
    atomic.write_json(PER_CLASS_IOU, per_class)
    atomic.write_json(METRICS_DEV, dev_metrics)
    atomic.write_json(METRICS, metrics)


def probe_model(model, source_names: list[str], dev_names: list[str], size_wh: tuple[int, int],
                config: ProbeConfig, data: DataSection, device) -> dict:
    """The domain probe on ``model``: its source-train and target-dev maps, cut to ``size_wh``, two folds."""
    norm = model.input_normalization
    source = source_dataset(data.source, data.source_root, source_names, data.source_size, norm)
    dev = target_dataset(data.target_root, "train", dev_names, data.target_size, norm, with_labels=False)
    source_maps = output_maps(model, source, size_wh, config.pool, device)
    target_maps = output_maps(model, dev, size_wh, config.pool, device)
    return domain_probe(source_maps, target_maps, config)


def save_qualitative(path: Path, qualitative: dict, data: DataSection, names: list[str]) -> None:
    """The first val images at label resolution, their labels, and each model's prediction and entropy."""
    dataset = target_dataset(
        data.target_root, "val", names, None, "imagenet", with_labels=True, resize_label=False
    )
    arrays = {}
    for index in range(len(names)):
        item = dataset[index]
        arrays[f"image_{index}"] = to_display_rgb(item["image"], "imagenet")
        arrays[f"label_{index}"] = item["label"].numpy().astype(np.uint8)
        for model_name, kept in qualitative.items():
            arrays[f"pred_{model_name}_{index}"] = kept[index]["pred"]
            arrays[f"entropy_{model_name}_{index}"] = kept[index]["entropy"]
    short_names = [Path(name).name.removesuffix(IMAGE_SUFFIX) for name in names]  # figure titles
    np.savez_compressed(path, names=np.array(short_names), **arrays)


if __name__ == "__main__":
    run_stage(main)
