"""One module per ``synco`` subcommand, each with ``add_parser(subparsers)`` and ``run(args) -> exit code``.

``synco/cli.py`` only builds the parser and dispatches; the work lives in the engine, the protocols and the
report. The table below is what ``synco --help`` shows without importing any command module (and so without
importing PyTorch): a command's module is imported only when that command runs or shows its own help.
"""

#: Subcommand -> (one-line summary, one example), in the order ``synco --help`` lists them.
COMMANDS = {
    "pretrain": ("pretrain a method on a recipe, then evaluate it with kNN",
                 "synco pretrain configs/pretrain/cifar10/synco.yaml train.epochs=10 run_dir=runs/synco"),
    "continual": ("continual SSL: train a stream of tasks, report the accuracy matrix and forgetting",
                  "synco continual configs/continual/cifar10_5tasks_mocov2plus.yaml continual.regularizer=pnr"),
    "knn": ("weighted kNN on the frozen encoder of a run", "synco knn runs/synco"),
    "linear": ("linear probe on the frozen encoder of a run", "synco linear runs/synco --recipe configs/linear/small.yaml"),
    "finetune": ("fine-tune a run's encoder on 1 %%, 10 %%, all labels or k-shot (CE, CE + SupCon, CE + SCHaNe)",
                 "synco finetune runs/synco --recipe configs/finetune/small_1pct.yaml"),
    "analyze": ("the papers' analyses on a run's checkpoint (proxy task, hardness, strategies, alignment, ...)",
                "synco analyze runs/synco --batches 10"),
    "export": ("export a run's backbone for torchvision or Detectron2",
               "synco export runs/synco --format torchvision --out encoder.pth"),
    "report": ("figures and a Markdown page comparing runs side by side", "synco report runs/a runs/b --out report"),
    "bench": ("side-by-side speed and memory of negative heads, steps, losses and the input pipeline",
              "synco bench steps --compile"),
    "config": ("every configuration key with type, default and allowed values, or a resolved recipe",
               "synco config configs/pretrain/cifar10/synco.yaml train.epochs=10"),
}

#: The exit codes of every command (also in ``synco --help``).
EXIT_CODES = """exit codes:
  0    done (also a run stopped by train.stop_after)
  1    an unexpected error (a traceback follows: please report it)
  2    a user error, named in one line before any work (bad key or value, missing data, unwritable place,
       unusable checkpoint, run directory held by another writer)
  3    training stopped at a non-finite loss (the last good checkpoint stays)
  4    another rank of a distributed run died or stalled (one line names it and the resume command)
  128+N  stopped by signal N after writing a checkpoint: 130 SIGINT (Ctrl-C), 138 SIGUSR1, 143 SIGTERM"""
