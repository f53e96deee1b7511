"""``synco continual CONFIG [KEY=VALUE ...] [--resume]``: a stream of tasks, then the accuracy matrix."""

from __future__ import annotations

from synco.commands.common import add_recipe_arguments, load_recipe, run_training


def add_parser(sub) -> None:
    p = sub.add_parser("continual", help="continual SSL: train a task stream (continual.*), report R and forgetting")
    add_recipe_arguments(p, "configs/continual/cifar10_5tasks_mocov2plus.yaml",
                         "continual.tasks=5 continual.split=data", "continue the stream in run_dir")


def run(args) -> int:
    cfg = load_recipe(args)
    if cfg is None:
        return 2
    from synco.pipelines.continual import run_continual

    command = " ".join(["synco continual", args.recipe, *args.overrides, "--resume",
                        *(["--device", args.device] if args.device else [])])
    record, code = run_training(lambda: run_continual(cfg, resume=args.resume),
                                lambda: f"Every task's run keeps its last checkpoint; continue with: {command}",
                                requeue=cfg.trainer.requeue)
    if code is not None:
        return code
    if not record["finished"]:
        print(f"stopped inside task {record['task']} (train.stop_after); continue with:\n  {command}")
        return 0
    matrix = record["continual/R_matrix"]
    print(f"\nkNN top-1 % on each task's classes (rows: after task i; columns: task j), run directory {cfg.run_dir}:")
    print("       " + "".join(f"{f'task {j}':>9}" for j in range(len(matrix))))
    for i, row in enumerate(matrix):
        print(f"after {i}" + "".join(f"{v:>9.2f}" for v in row))
    def number(key: str) -> str:
        value = record[key]
        return "-" if value is None else f"{value:.2f}"

    print(f"average accuracy {number('continual/average_accuracy')}, average forgetting "
          f"{number('continual/average_forgetting')}, backward transfer {number('continual/backward_transfer')}, "
          f"forward transfer {number('continual/forward_transfer')}")
    return 0
