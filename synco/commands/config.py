"""``synco config``: every configuration key with its type, default and allowed values; or a resolved recipe."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("config", help="list every configuration key (type, default, allowed values), or print a "
                       "recipe resolved with its overrides")
    p.add_argument("recipe", nargs="?", default=None, help="a recipe to resolve (omit for the reference of all keys)")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE overrides of the recipe")
    p.add_argument("--recipes", action="store_true", help="list the recipes shipped with the package, by name")


def run(args) -> int:
    from synco.config import ConfigError, load_config, packaged_recipes, to_yaml

    if args.recipes:
        print("\n".join(packaged_recipes()))
        return 0
    if args.recipe is None and not args.overrides:
        from synco.config_reference import markdown

        print(markdown())
        return 0
    try:
        print(to_yaml(load_config(args.recipe, args.overrides)), end="")
    except ConfigError as err:
        print(f"synco: configuration error: {err}", file=sys.stderr)
        return 2
    return 0
