"""``synco finetune RUN``: semi-supervised fine-tuning of a run's encoder on 1 % or 10 % of the labels."""

from __future__ import annotations

from synco.commands.common import add_run_arguments, run_protocol


def add_parser(sub) -> None:
    p = sub.add_parser("finetune", help="semi-supervised: fine-tune the encoder on 1 %% or 10 %% of the labels, or k-shot; "
                                        "CE, CE + SupCon or CE + SCHaNe")
    add_run_arguments(p, "KEY=VALUE, e.g. finetune.fraction=0.1 'finetune.seeds=[0,1,2]' finetune.shots=5 "
                         "finetune.loss=schane")


def run(args) -> int:
    from synco.eval.protocols.finetune import run_finetune

    return run_protocol(run_finetune, args, summary_line)


def summary_line(r: dict) -> str:
    """One line of what ``run_finetune`` returned."""
    shots = r["finetune/shots"]
    labelled = f"{shots} images per class" if shots else f"{100 * r['finetune/fraction']:g} % of the labels"
    if r["finetune/loss"] != "ce":
        labelled += f" with CE + {r['finetune/loss']} (lambda {r['finetune/contrastive_weight']})"
    line = (f"fine-tuned on {labelled} ({r['finetune/labelled_images']} images, {r['finetune/subset_file']}), "
            f"{r['finetune/epochs']} epochs, seeds {r['finetune/seeds']}: "
            f"top-1 {r['finetune/top1_mean']:.2f} +- {r['finetune/top1_std']:.2f} %, "
            f"top-5 {r['finetune/top5_mean']:.2f} +- {r['finetune/top5_std']:.2f} %")
    if r.get("finetune/validation_images"):
        line += (f" at the best of {r['finetune/validation_images']} validation images' epochs (validation top-1 "
                 f"{r['finetune/val_top1_mean']:.2f} +- {r['finetune/val_top1_std']:.2f} %)")
    return line
