"""The report and the sweep tables: ``figures`` (PNG figures), ``curves`` (the training curves),
``markdown`` (the report's layout and its IoU tables), ``prose`` (the report's notes, speaking of what
ran), ``tables`` (the one Markdown table renderer and ``mean ± std``), ``ablation`` (the one reader of
reports/ablation.csv), ``sweeps`` (seed-sweep and ablation tables and figures), ``selftrain`` (the
report's self-training section), ``inputs`` (reading the metrics all use). The names below are the
public API."""

from globallocal.reporting.curves import (
    CURVE_PANEL_HEIGHT_PX,
    CURVE_PANEL_WIDTH_PX,
    metric_group,
    moving_average,
    plot_training_curves,
    read_dvclive_metrics,
    training_curves_figure,
)
from globallocal.reporting.figures import (
    CONFUSION_FIGURE_PX,
    ENTROPY_BAR_LABEL,
    FIGURE_DPI,
    PER_CLASS_FIGURE_PX,
    QUALITATIVE_KEY_HEIGHT_PX,
    QUALITATIVE_PANEL_WIDTH_PX,
    QUALITATIVE_ROW_MARGIN_PX,
    entropy_to_rgb,
    plot_class_frequencies,
    plot_confusion,
    plot_per_class_iou,
    plot_qualitative,
    qualitative_figure,
    qualitative_panels,
    row_normalized_confusion,
)
from globallocal.reporting.inputs import MISSING_VALUE
from globallocal.reporting.markdown import class_frequency_table, iou_table, write_report
from globallocal.reporting.selftrain import (
    load_dev_samples,
    plot_pseudo_labels,
    precision_table,
    selftrain_note,
    selftrain_table,
)
from globallocal.reporting.sweeps import (
    ablation_table,
    alignment_table,
    diagnostics_table,
    plot_ablation,
    plot_sweep,
    sweep_table,
)
from globallocal.reporting.tables import markdown_table, mean_std, pm

__all__ = [
    "CONFUSION_FIGURE_PX", "CURVE_PANEL_HEIGHT_PX", "CURVE_PANEL_WIDTH_PX", "PER_CLASS_FIGURE_PX",
    "ENTROPY_BAR_LABEL", "FIGURE_DPI", "MISSING_VALUE", "QUALITATIVE_KEY_HEIGHT_PX",
    "QUALITATIVE_PANEL_WIDTH_PX", "QUALITATIVE_ROW_MARGIN_PX", "ablation_table", "class_frequency_table",
    "alignment_table", "diagnostics_table",
    "entropy_to_rgb", "iou_table", "markdown_table", "pm", "load_dev_samples", "mean_std", "metric_group",
    "moving_average",
    "plot_ablation", "plot_class_frequencies", "plot_confusion", "plot_per_class_iou", "plot_pseudo_labels",
    "plot_qualitative", "plot_sweep", "plot_training_curves", "precision_table", "qualitative_figure",
    "qualitative_panels", "read_dvclive_metrics", "row_normalized_confusion", "selftrain_note", "selftrain_table",
    "sweep_table", "training_curves_figure", "write_report",
]
