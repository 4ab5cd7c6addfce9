"""The ``globallocal`` command (also ``python -m globallocal``): presets and scoring any checkpoint.

    python -m globallocal --version
    python -m globallocal preset list
    python -m globallocal preset show paper_gta5 [--set ...]
    python -m globallocal preset apply paper_gta5 [--set data.source_root=/datasets/GTA5 ...]
    python -m globallocal preset exp-run paper_gta5 [--set ...] [--dry-run] [-- -n paper-gta5 --queue]
    python -m globallocal evaluate CHECKPOINT --target-root data/Cityscapes --split val --out DIR
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from globallocal import __version__
from globallocal.stage_runner import run_stage

PARAMS_FILE = Path("params.yaml")


class _DefaultsHelp(argparse.HelpFormatter):
    """Help that shows each option's default where it has a meaningful one (not None, False or [])."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (action.option_strings and default not in (None, False, [], argparse.SUPPRESS)
                and "%(default)" not in text):
            text += " (default: %(default)s)"
        return text


def _preset_parser(commands) -> None:
    preset = commands.add_parser("preset", help="list, show, apply or run a preset (presets/<name>.yaml)",
                                 formatter_class=_DefaultsHelp)
    actions = preset.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the available presets, one line each", formatter_class=_DefaultsHelp)
    listing.add_argument("--presets-dir", type=Path, default=Path("presets"))
    for action, text in (
        ("show", "what the preset would change in params.yaml (current -> new); writes nothing"),
        ("apply", "write the preset's values into params.yaml (comments kept)"),
        ("exp-run", "start `dvc exp run -S ...` with the preset's values; params.yaml stays as committed"),
    ):
        sub = actions.add_parser(action, help=text, formatter_class=_DefaultsHelp)
        sub.add_argument("name", help="preset name (paper_gta5, paper_synthia, embedded) or a YAML path")
        sub.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="also set a params key, after the preset (repeatable)")
        sub.add_argument("--presets-dir", type=Path, default=Path("presets"))
        if action in ("show", "apply"):
            sub.add_argument("--params", type=Path, default=PARAMS_FILE)
        else:
            sub.add_argument("--dry-run", action="store_true", help="print the dvc command instead of running it")


def _evaluate_parser(commands) -> None:
    sub = commands.add_parser("evaluate", help="score a checkpoint (ours or ADVENT's) on a Cityscapes-layout root",
                              formatter_class=_DefaultsHelp)
    sub.add_argument("checkpoint", type=Path, help="a checkpoint of this pipeline (models/*.pt) or an ADVENT .pth")
    sub.add_argument("--target-root", type=Path, required=True, help="Cityscapes layout: leftImg8bit/, gtFine/")
    sub.add_argument("--split", default="val", help="the Cityscapes split to score")
    sub.add_argument("--out", type=Path, required=True,
                     help="writes metrics.json, per_class_iou.json, labelIds/ and color/ predictions")
    sub.add_argument("--size", default=None,
                     help="input WIDTHxHEIGHT the images are resized to (default: the size the checkpoint was "
                          "trained at; required for one of ours that does not record it; 1024x512, announced, "
                          "for an ADVENT .pth, which cannot)")
    sub.add_argument("--synthia", action="store_true",
                     help="also report mIoU-16 and mIoU-13 (implied by a 16-class ADVENT checkpoint)")
    sub.add_argument("--scales", default="1.0",
                     help="comma-separated input scales averaged (multi-scale), e.g. 0.75,1.0,1.25")
    sub.add_argument("--flip", action="store_true", help="also average the horizontally flipped prediction")
    sub.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    sub.add_argument("--no-official-check", action="store_true",
                     help="skip re-scoring the labelId PNGs with cityscapesscripts")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="globallocal", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _preset_parser(commands)
    _evaluate_parser(commands)
    return parser


def _preset(args: argparse.Namespace) -> int:
    from globallocal import config
    from globallocal.config import presets

    if args.action == "list":
        names = presets.available_presets(args.presets_dir)
        width = max(map(len, names), default=0)
        for name in names:
            print(f"{name:<{width}}  {presets.preset_description(name, args.presets_dir)}".rstrip())
        return 0
    settings = presets.preset_settings(args.name, args.overrides, args.presets_dir)
    if args.action == "show":
        changes = presets.describe_changes(config.load_params(args.params), settings)
        print(f"preset '{args.name}' would change {len(changes)} of its {len(settings)} keys in {args.params}"
              + (":" if changes else ""))
        for line in changes:
            print(f"  {line}")
        return 0
    if args.action == "apply":
        return _apply(args, settings)
    # Only what differs from params.yaml, so the command (and `dvc exp show`) stays readable.
    settings = presets.changed_settings(config.load_params(PARAMS_FILE), settings)
    command = presets.exp_run_command(settings, args.dvc_args)
    print(presets.shell_line(command))
    if args.dry_run:
        return 0
    return subprocess.call(command)


def _apply(args: argparse.Namespace, settings: dict) -> int:
    """Write the preset; print each change (old -> new), warn about reverted values, then check the result
    against this machine (weights file, data roots, CUDA, a long schedule on the CPU)."""
    from globallocal import config
    from globallocal.config import fast_checks, presets

    override_keys = presets.parse_overrides(args.overrides).keys()
    changes = presets.apply_settings(args.params, settings, origin=f"preset '{args.name}'",
                                     override_keys=override_keys)
    print(f"{args.params}: preset '{args.name}' applied, {len(changes)} keys changed" + (":" if changes else ""))
    for change in changes:
        print(f"  {change}")
    warnings = presets.revert_warnings(changes, args.name, args.overrides, args.presets_dir)
    params = config.load_validated_params(args.params)
    warnings += [f"warning: {line}" for line in fast_checks.fast_problems(params) + fast_checks.long_cpu_run(params)]
    for line in warnings:
        print(line)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    # Every argument is checked before torch is imported (seconds): a mistake is reported at once.
    from globallocal.checkpoint_files import check_checkpoint_file
    from globallocal.errors import UserError
    from globallocal.evaluation.options import EvaluateOptions

    options = EvaluateOptions.from_strings(
        target_root=args.target_root, split=args.split, out_dir=args.out, size=args.size,
        synthia=args.synthia, scales=args.scales, flip=args.flip, device=args.device,
        official_check=not args.no_official_check,
    )
    check_checkpoint_file(args.checkpoint)
    if not args.target_root.is_dir():
        raise UserError(f"--target-root {args.target_root} is not a folder; pass the Cityscapes-layout root "
                        "(the folder holding leftImg8bit/ and gtFine/)")
    from globallocal.evaluation.scoring import score_checkpoint

    metrics = score_checkpoint(args.checkpoint, options)
    summary = ", ".join(f"{key} {value}" for key, value in metrics.items() if key.startswith("miou"))
    print(f"{args.checkpoint}: {summary} -> {args.out}")
    return 0


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" goes to `dvc exp run` untouched (-n NAME, --queue, --temp, ...).
    dvc_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    args = build_parser().parse_args(argv)
    args.dvc_args = dvc_args
    handler = {"preset": _preset, "evaluate": _evaluate}[args.command]
    status = 0

    def call() -> None:
        nonlocal status
        status = handler(args)

    run_stage(call)
    if status:
        sys.exit(status)


if __name__ == "__main__":
    main()
