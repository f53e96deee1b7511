"""One module per ``synco`` subcommand, each with ``add_parser(subparsers)`` and ``run(args) -> exit code``.

``synco/cli.py`` only builds the parser from these modules and dispatches; the work lives in the
engine, the protocols and the report.
"""

#: Subcommands in the order ``synco --help`` lists them (module names under synco.commands).
COMMANDS = ("pretrain", "continual", "knn", "linear", "finetune", "analyze", "export", "report", "bench", "config")
