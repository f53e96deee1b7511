"""``synco export RUN --format torchvision|detectron2 --out FILE``: a run's backbone for other libraries."""

from __future__ import annotations

from synco.commands.common import guarded


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a run's backbone for torchvision or Detectron2")
    p.add_argument("target", help="run directory or checkpoint file")
    p.add_argument("--format", required=True, choices=["torchvision", "detectron2"])
    p.add_argument("--out", required=True, help="output file (.pth for torchvision, .pkl for detectron2)")


def run(args) -> int:
    from synco.export import export_run

    info = guarded(export_run, args.target, args.format, args.out)
    if info is None:
        return 2
    print(f"wrote {info['out']}: {info['tensors']} tensors of the {info['backbone']} query backbone "
          f"(epoch {info['epoch']}) in {args.format}'s names")
    if info["small_stem"]:
        print("note: this backbone has the CIFAR stem (3x3 conv1, no max-pool); replace conv1 and maxpool "
              "of the torchvision model before loading")
    return 0
