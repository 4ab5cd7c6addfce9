"""Stage `prepare`: write the embedded synthetic benchmark (when asked) and the file lists.

With ``prepare.generate: true`` the seeded two-domain benchmark is written in the GTA5 layout
(``prepare.out_dir``/gta5) and the Cityscapes layout (``prepare.out_dir``/cityscapes). With false, the
roots in ``data`` must hold the real datasets; ``prepare.out_dir`` then only gets a note saying so.
Either way the data is then checked in one pass (layout, labels, decoding, id ranges; see
globallocal.data.check), its statistics written to data/statistics/ (the `data_report` stage copies them to
reports/data/, so that a failed prepare never deletes the committed ones), and the lists of source train,
target train, target dev and target val files written to ``data.lists_dir``, which every later stage
reads. Target dev (``prepare.dev_size`` images drawn with ``prepare.dev_seed``) is a labelled subset of
target train that is removed from the unlabelled adaptation stream (and from the oracle's training
set): every choice is made on it, never on val.
"""

import time
from pathlib import Path

from globallocal import atomic, config
from globallocal.data import check
from globallocal.data.file_lists import (
    SOURCE_LIST,
    TARGET_DEV_LIST,
    TARGET_TRAIN_LIST,
    TARGET_VAL_LIST,
    list_cityscapes,
    list_gta5,
    list_synthia,
    split_dev,
    write_list,
)
from globallocal.data.synthetic import write_benchmark
from globallocal.stage_runner import run_stage

SOURCE_LISTERS = {"gta5": list_gta5, "synthia": list_synthia}
DATA_STATISTICS = Path("data/statistics")


def main() -> None:
    params = config.load_validated_params()
    data = params.data
    synthetic = params.synthetic_config()
    out_dir = params.prepare.out_dir
    if synthetic is not None:
        started_s = time.perf_counter()
        write_benchmark(out_dir, synthetic)  # whole or absent; also writes out_dir/synthetic_benchmark.json
        print(f"benchmark written to {out_dir} in {time.perf_counter() - started_s:.1f} s")
    else:
        atomic.write_text(
            out_dir / "NOT_GENERATED.txt",
            "prepare.generate is false: the pipeline reads the real datasets at data.source_root and "
            "data.target_root.\n",
        )
    report = check.check_datasets(data.source, data.source_root, data.target_root)
    print(check.describe(report))
    check.write_reports(report, DATA_STATISTICS, data.lists_dir)
    lists = data.lists_dir
    write_list(lists / SOURCE_LIST, SOURCE_LISTERS[data.source](data.source_root))
    target_train, target_dev = split_dev(
        list_cityscapes(data.target_root, "train"), params.prepare.dev_size, params.prepare.dev_seed
    )
    write_list(lists / TARGET_TRAIN_LIST, target_train)
    write_list(lists / TARGET_DEV_LIST, target_dev)
    write_list(lists / TARGET_VAL_LIST, list_cityscapes(data.target_root, "val"))


if __name__ == "__main__":
    run_stage(main)
