"""Seed-sweep tables and figures (``python -m globallocal.experiments``) and the main ablation table the report shows:
mean ± std over seeds, the best variant on dev marked, per-seed paired differences."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from globallocal.reporting.figures import (
    BAR_GROUP_WIDTH,
    CLASS_LABEL_ROTATION_DEG,
    LEGEND_FONT_SIZE_PT,
    new_figure,
    save_png,
)
from globallocal.reporting.inputs import MISSING_VALUE
from globallocal.reporting.tables import interval, markdown_table, mean_std, pm, signed

SWEEP_FIGURE_PX = (1100, 520)
ABLATION_FIGURE_PX = (900, 500)
#: The ablation's bars: global-only (local = 0) and joint global + local (local = 1).
LOCAL_ARMS = ((0, "global only"), (1, "global + local"))
REFERENCE_MODELS = ("source_only", "oracle")


def sweep_table(rows: Sequence[dict]) -> str:
    """Markdown: one line per variant, mean ± std of adapted dev and val mIoU over seeds; the best mean
    dev mIoU is marked (the choice is made on dev only)."""
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    dev = {v: [r["dev_miou"] for r in rows if r["variant"] == v] for v in variants}
    val = {v: [r["val_miou"] for r in rows if r["variant"] == v] for v in variants}
    best = max(variants, key=lambda v: mean_std(dev[v])[0])
    body = []
    for v in variants:
        params = next(r["params"] for r in rows if r["variant"] == v)
        mark = " **(best dev)**" if v == best else ""
        body.append([f"{v}{mark}", len(dev[v]), pm(dev[v]), pm(val[v]), f"`{params}`"])
    return markdown_table(["variant", "seeds", "dev mIoU", "val mIoU", "params"], "lrrrl", body)


def plot_sweep(rows: Sequence[dict], out_path: Path, title: str) -> None:
    """Bars of mean adapted mIoU per variant on dev and val, error bars one std over seeds."""
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    figure = new_figure(*SWEEP_FIGURE_PX)
    axis = figure.subplots()
    x = np.arange(len(variants))
    width = BAR_GROUP_WIDTH / 2
    for offset, key, label in ((-0.5, "dev_miou", "dev (choices)"), (0.5, "val_miou", "val (reported)")):
        stats = [mean_std([r[key] for r in rows if r["variant"] == v]) for v in variants]
        axis.bar(x + offset * width, [m for m, _ in stats], width, yerr=[s for _, s in stats], capsize=3, label=label)
    axis.set_xticks(x, variants, rotation=CLASS_LABEL_ROTATION_DEG, ha="right")
    axis.set_ylabel("adapted mIoU (%)")
    axis.set_title(title)
    axis.legend(fontsize=LEGEND_FONT_SIZE_PT)
    axis.grid(axis="y", alpha=0.3)
    save_png(figure, out_path)


def _by(rows: Sequence[dict], family: str, local: int, key: str) -> dict[int, float]:
    return {r["seed"]: r[key] for r in rows if r["family"] == family and int(r["local"]) == local}


def ablation_table(rows: Sequence[dict]) -> str:
    """Markdown: per global family, val mIoU mean ± std without and with local alignment, the per-seed
    paired difference (joint minus global-only) with its mean ± std, and the dev numbers; then the
    source-only and oracle rows."""
    families = [f for f in dict.fromkeys(r["family"] for r in rows) if f not in REFERENCE_MODELS]
    seeds = sorted({r["seed"] for r in rows})
    header = ["family", "val: global only", "val: global + local",
              "paired diff per seed (" + ", ".join(f"s{s}" for s in seeds) + ")", "paired diff mean ± std",
              "dev: global only", "dev: global + local"]
    body = []
    for family in families:
        off, on = _by(rows, family, 0, "val_miou"), _by(rows, family, 1, "val_miou")
        paired = [on[s] - off[s] for s in seeds if s in on and s in off]
        body.append([family, pm(list(off.values())), pm(list(on.values())), signed(paired), pm(paired),
                     pm(list(_by(rows, family, 0, "dev_miou").values())),
                     pm(list(_by(rows, family, 1, "dev_miou").values()))])
    for model in REFERENCE_MODELS:
        val = list(_by(rows, model, 0, "val_miou").values())
        if val:
            dev = list(_by(rows, model, 0, "dev_miou").values())
            body.append([model, pm(val), MISSING_VALUE, MISSING_VALUE, MISSING_VALUE, pm(dev), MISSING_VALUE])
    return markdown_table(header, "lrrlrrr", body)


def plot_ablation(rows: Sequence[dict], out_path: Path) -> None:
    """Val mIoU bars per family, global-only vs global + local, error bars one std over seeds, each seed's
    value a dot; source-only and oracle as horizontal reference lines. Without a row of this cell the
    figure says so (the pipeline declares it, so it always exists)."""
    families = [f for f in dict.fromkeys(r["family"] for r in rows) if f not in REFERENCE_MODELS]
    figure = new_figure(*ABLATION_FIGURE_PX)
    axis = figure.subplots()
    if not families:
        axis.text(0.5, 0.5, "No run of this benchmark cell in reports/ablation.csv yet:\n"
                  "python -m globallocal.experiments ablation --seeds 0 1 2", ha="center", va="center",
                  transform=axis.transAxes)
        axis.set_axis_off()
        save_png(figure, out_path)
        return
    x = np.arange(len(families))
    width = BAR_GROUP_WIDTH / len(LOCAL_ARMS)
    for index, (local, label) in enumerate(LOCAL_ARMS):
        offset = (index - (len(LOCAL_ARMS) - 1) / 2) * width
        legend_label = label  # on the arm's first bar only
        for position, family in zip(x + offset, families):
            values = list(_by(rows, family, local, "val_miou").values())
            if not values:  # an arm that was not run: said, not drawn as a bar of height 0
                axis.text(position, 0, "not run", rotation=90, ha="center", va="bottom", fontsize="small")
                continue
            mean, std = mean_std(values)
            axis.bar(position, mean, width, yerr=std, capsize=4, color=f"C{index}", label=legend_label)
            legend_label = None
            axis.plot([position] * len(values), values, "k.", markersize=4)
    for model, style in zip(REFERENCE_MODELS, ("--", ":")):
        values = list(_by(rows, model, 0, "val_miou").values())
        if values:
            axis.axhline(mean_std(values)[0], color="grey", linestyle=style, label=f"{model} (mean)")
    axis.set_xticks(x, families)
    axis.set_ylabel("target val mIoU (%)")
    seeds = sorted({r["seed"] for r in rows})
    spread = "mean ± std, dots: seeds" if len(seeds) > 1 else "one seed: no spread"
    axis.set_title(f"Global families with and without local alignment ({spread}; "
                   f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})")
    axis.legend(fontsize=LEGEND_FONT_SIZE_PT)
    axis.grid(axis="y", alpha=0.3)
    save_png(figure, out_path)


#: The training statistics of a ``local_diagnostics`` row (experiments.LOCAL_LOGS), in column order.
LOCAL_TRAIN_KEYS = ("kept_source", "kept_target", "d_acc_source", "d_acc_target")


def diagnostics_table(rows: list[dict], cell: dict) -> str:
    """Markdown of ``local_diagnostics`` rows: shares and accuracies in %, one row per family and seed."""
    def pct(value) -> str:
        return "—" if value in ("", None) else f"{100 * float(value):.1f}"

    intro = (f"Local term diagnostics, cell shift {cell['shift']}, bn {cell['bn']} (%). Dev: share of the target "
             "dev local outputs the filter keeps, and how often their pseudo-class is the majority ground-truth "
             "class. Training: share kept per domain and D_l's accuracy per domain, mean over the adapt run's log "
             "intervals (last interval in brackets).")
    header = ["family + local", "seed", "dev kept: start -> adapted", "dev precision: start -> adapted",
              "train kept source", "train kept target", "D_l acc source", "D_l acc target"]
    body = []
    for r in rows:
        train = [f"{pct(r[f'train_{key}_mean'])} ({pct(r[f'train_{key}_last'])})" for key in LOCAL_TRAIN_KEYS]
        body.append([r["family"], r["seed"], f"{pct(r['dev_kept_source_only'])} -> {pct(r['dev_kept_adapted'])}",
                     f"{pct(r['dev_precision_source_only'])} -> {pct(r['dev_precision_adapted'])}", *train])
    return intro + "\n\n" + markdown_table(header, "lrllrrrr", body)


def alignment_table(rows: list[dict], families: tuple[str, ...]) -> str:
    """Markdown: val and dev mean ± std and the domain probe's AUC of every model of one cell; the per-seed
    paired val difference of each family against the weight-0 run (``none``) and of each ``+ local`` against
    its family, with its mean and 95% t-interval on val and dev; and each adapted model against AdaBN (the
    no-training baseline) per seed."""
    def scores(family: str, local: int, key: str) -> dict[int, float]:
        return {int(r["seed"]): float(r[key]) for r in rows if r["family"] == family and int(r["local"]) == local
                and r.get(key) not in (None, "")}

    seeds = sorted({int(r["seed"]) for r in rows})
    head = ", ".join(f"s{s}" for s in seeds)
    header = ["model", "val mIoU", "dev mIoU", "probe AUC", "compared with", f"val paired diff ({head})",
              "val diff, 95% CI", "dev diff, 95% CI", f"val diff vs AdaBN ({head})"]
    body = []
    zero_val, zero_dev = scores("none", 0, "val_miou"), scores("none", 0, "dev_miou")
    adabn_val = scores("adabn", 0, "val_miou")
    labels = {"source_only": "source-only", "adabn": "AdaBN (source-only + target statistics)",
              "none": "adapt, every alignment weight 0", "oracle": "oracle (target labels)"}
    order = [("source_only", 0), ("adabn", 0), ("none", 0)]
    order += [(family, local) for family in families for local in (0, 1)] + [("oracle", 0)]
    for family, local in order:
        val, dev = scores(family, local, "val_miou"), scores(family, local, "dev_miou")
        if not val:
            continue
        name = labels.get(family, family + (" + local" if local else ""))
        against, base_val, base_dev = "", {}, {}
        if family in families:
            against = f"{family}" if local else "weight 0"
            base_val = scores(family, 0, "val_miou") if local else zero_val
            base_dev = scores(family, 0, "dev_miou") if local else zero_dev
        diff = [val[s] - base_val[s] for s in seeds if s in val and s in base_val]
        diff_dev = [dev[s] - base_dev[s] for s in seeds if s in dev and s in base_dev]
        adapted = family in families or family == "none"
        vs_adabn = [val[s] - adabn_val[s] for s in seeds if s in val and s in adabn_val] if adapted else []
        body.append([name, pm(list(val.values())), pm(list(dev.values())),
                     pm(list(scores(family, local, "probe_auc").values()), digits=3), against, signed(diff),
                     interval(diff), interval(diff_dev), signed(vs_adabn)])
    return markdown_table(header, "lrrrllrrl", body)
