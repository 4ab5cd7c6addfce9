"""The report's Markdown: the per-class IoU table, the notes, links to the figures, the class
frequency table. Metrics: ``{model: {"miou": float, "per_class_iou": {class_name: float | None}}}``,
IoU in percent, ``None`` when undefined."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from globallocal import atomic
from globallocal.data.labels import CLASS_NAMES
from globallocal.reporting.inputs import FREQUENCY_DOMAINS, MISSING_VALUE, PERCENT, check_models, format_iou
from globallocal.reporting.tables import markdown_table

#: Optional subset mIoU keys (SYNTHIA protocols) and their row names in the table.
SUBSET_MIOU_ROWS = (("miou_16", "mIoU-16"), ("miou_13", "mIoU-13"))
#: Notes with a known place and heading; any other note follows the figures under its own key.
NOTE_HEADINGS = {"setup": "Setup", "fairness": "Fair comparison", "reproduce": "How to reproduce"}


# --- Markdown ----------------------------------------------------------------------------------


def iou_table(metrics: dict) -> str:
    """Markdown table: one row per class, one column per model (metrics' key order), then mIoU.

    IoUs print with one decimal; undefined ones as "—". ``miou_16`` / ``miou_13`` rows are
    added when any model has them.
    """
    models = list(metrics)
    check_models(metrics, models)
    body = [[name, *(format_iou(metrics[model]["per_class_iou"].get(name)) for model in models)]
            for name in CLASS_NAMES]
    body.append(["mIoU", *(format_iou(metrics[model]["miou"]) for model in models)])
    for key, row_name in SUBSET_MIOU_ROWS:
        if any(key in metrics[model] for model in models):
            body.append([row_name, *(format_iou(metrics[model].get(key)) for model in models)])
    return markdown_table(["class", *models], "l" + "r" * len(models), body)


def write_report(
    out_path: Path, metrics: dict, figures: dict[str, Path], notes: dict
) -> str:
    """Write the Markdown report to ``out_path`` and return its text.

    Sections: notes["setup"], the per-class IoU table, notes["fairness"], the figures (each
    ``figures`` key is its caption; links are relative to ``out_path``'s folder), any other
    notes under their key, and notes["reproduce"] last. Notes are Markdown, inserted verbatim;
    a missing note leaves its section out.
    """
    out_path = Path(out_path)
    sections = ["# Domain adaptation report"]
    sections += _note_section("setup", notes)
    sections.append(
        "## Per-class IoU on the target validation set (%)\n\n"
        + iou_table(metrics)
        + f"\n\n{MISSING_VALUE} = undefined (class absent from both ground truth and predictions)."
    )
    sections += _note_section("fairness", notes)
    if figures:
        sections.append("## Figures")
        for caption, figure_path in figures.items():
            link = _relative_link(figure_path, out_path.parent)
            sections.append(f"### {caption}\n\n![{caption}]({link})")
    for key in notes:
        if key not in NOTE_HEADINGS:
            sections += _note_section(key, notes)
    sections += _note_section("reproduce", notes)
    text = "\n\n".join(sections) + "\n"
    atomic.write_text(out_path, text)
    return text


def _note_section(key: str, notes: Mapping[str, str]) -> list[str]:
    if key not in notes:
        return []
    heading = NOTE_HEADINGS.get(key, key)
    return [f"## {heading}\n\n{notes[key].strip()}"]


def _relative_link(target: Path, report_dir: Path) -> str:
    relative = os.path.relpath(Path(target).resolve(), Path(report_dir).resolve())
    return Path(relative).as_posix()


def class_frequency_table(records: Sequence[Mapping]) -> str:
    """Markdown table: class, then each domain's share of labelled pixels in percent."""
    body = [[record["class"], *(f"{PERCENT * record[d]:.2f}" for d in FREQUENCY_DOMAINS)] for record in records]
    return markdown_table(["class", *(f"{domain} (%)" for domain in FREQUENCY_DOMAINS)],
                          "l" + "r" * len(FREQUENCY_DOMAINS), body)
