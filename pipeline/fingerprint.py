"""Stage `fingerprint` (always run, a few seconds): what `prepare` depends on instead of the dataset folders.

With ``prepare.generate: false`` it writes a stat fingerprint (path, size, mtime) of the real datasets,
so a changed or replaced dataset re-runs ``prepare`` (which checks it and writes a content
fingerprint the training stages depend on). With the embedded benchmark the data follows from
``prepare``'s params and code, which DVC already tracks, so it writes a constant.

Being the first stage, it first runs the checks that take milliseconds (globallocal.config.fast_checks: the
backbone weights file, the dataset roots, a CUDA device where params ask for one), so that such a mistake
stops the run at once instead of after the data check.
"""

from pathlib import Path

from globallocal import atomic, config
from globallocal.config.fast_checks import check_fast
from globallocal.data.fingerprint import stat_fingerprint
from globallocal.stage_runner import run_stage

OUT = Path("data/fingerprint.json")


def main() -> None:
    params = config.load_validated_params()
    check_fast(params)
    data = params.data
    if params.synthetic_config() is not None:
        fingerprint = {"generated": True}
    else:
        fingerprint = stat_fingerprint(data.source, data.source_root, data.target_root)
    atomic.write_json(OUT, fingerprint)


if __name__ == "__main__":
    run_stage(main)
