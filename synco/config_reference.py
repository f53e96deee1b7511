"""The reference of every configuration key, generated from the structured config itself.

Types and defaults come from the dataclasses (``synco/config.py`` and each registered method's block),
allowed values from the registries and the checks' constants, and descriptions from the comments on
(or just above) each field. ``synco config`` prints it; docs/config.md is this module's output, and a
test keeps the two equal, so the reference cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import tokenize
import typing

from synco.config import AUGMENT_ON, FEATURES, LOGGERS, OPTIMIZERS, SCHEDULES, Config
from synco.data.transforms import AUGMENTATIONS
from synco.models.backbones import list_backbones
from synco.negatives.synthesize import EXTRAPOLATION_MODES
from synco.registry import DATASETS, METHODS


def _comments(cls: type) -> dict[str, str]:
    """Field name -> the comment on its line, or the comment lines right above it."""
    source = inspect.getsource(cls)
    out: dict[str, str] = {}
    pending: list[str] = []
    line_of_field: dict[int, str] = {}
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        head = stripped.split(":")[0].strip()
        if ":" in stripped and head.isidentifier() and not stripped.startswith(("#", "def ", "class ", "@")):
            line_of_field[number] = head
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("# ").rstrip()
    for number in range(1, len(source.splitlines()) + 1):
        if number in line_of_field:
            text = [*pending, comments[number]] if number in comments else pending
            if text:
                out[line_of_field[number]] = " ".join(text)
            pending = []
        elif number in comments:
            pending.append(comments[number])
        else:
            pending = []
    return out


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        names = [_type_name(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(names) + " or null"
    if origin is list:
        return f"list[{_type_name(typing.get_args(annotation)[0])}]"
    if annotation is typing.Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def allowed_values() -> dict[str, str]:
    """Dotted key -> its allowed values, from the registries and the checks' constants."""
    def listed(values) -> str:
        return ", ".join(f"`{v}`" for v in values)

    return {
        "data.dataset": listed(DATASETS.names()),
        "data.augmentation": listed(AUGMENTATIONS),
        "data.augment_on": listed(AUGMENT_ON),
        "data.pretrain_split": listed(("unlabeled", "train+unlabeled")),
        "model.backbone": listed(list_backbones()) + ", `timm:<any timm model>`",
        "method.name": listed(METHODS.names()),
        "method.negatives.extrapolation": listed(EXTRAPOLATION_MODES),
        "train.schedule": listed(SCHEDULES),
        "train.optimizer": listed(OPTIMIZERS),
        "eval.feature": listed(FEATURES),
        "linear.feature": listed(FEATURES) + " or null",
        "trainer.loggers": "a list of " + listed(LOGGERS),
    }


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return ""
    if dataclasses.is_dataclass(value):
        return ""
    return "null" if value is None else f"`{value}`"


def rows(cls: type, prefix: str, allowed: dict[str, str]) -> list[tuple[str, str, str, str, str]]:
    """(key, type, default, allowed values, description) of every leaf field of ``cls``, depth first."""
    hints = typing.get_type_hints(cls)
    comments = _comments(cls)
    out = []
    for field in dataclasses.fields(cls):
        key = f"{prefix}{field.name}"
        value = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if dataclasses.is_dataclass(value) and not (prefix == "" and field.name == "method"):
            out += rows(type(value), key + ".", allowed)
            continue
        if prefix == "" and field.name == "method":
            continue  # the method block is listed per method below
        out.append((key, _type_name(hints.get(field.name, field.type)), _default(field), allowed.get(key, ""),
                    comments.get(field.name, "")))
    return out


def method_blocks() -> list[tuple[list[str], type]]:
    """(method names, config dataclass) of every registered method block, in registration order."""
    blocks: list[tuple[list[str], type]] = []
    for name, spec in METHODS.items():
        for names, cls in blocks:
            if cls is spec.config:
                names.append(name)
                break
        else:
            blocks.append(([name], spec.config))
    return blocks


def markdown() -> str:
    """The whole reference as a Markdown page (what docs/config.md holds)."""
    allowed = allowed_values()
    header = "| key | type | default | allowed | meaning |\n|---|---|---|---|---|"

    def table(entries) -> str:
        return "\n".join([header, *(f"| `{k}` | {t} | {d} | {a} | {m} |" for k, t, d, a, m in entries)])

    parts = [
        "# Configuration reference",
        "",
        "Every key of a recipe (`configs/**/*.yaml`) and of `KEY=VALUE` overrides, with its type, default and",
        "allowed values. Generated from the structured config by `synco config > docs/config.md`; a test",
        "fails when this page and the code disagree. Unknown keys and wrong types are refused before any",
        "work starts; ranges are checked by `synco.config.validate` and each method's own check.",
        "",
        "Environment variables: `SYNCO_DATA_ROOT` (a folder of data sets; CIFAR-10 in",
        "`$SYNCO_DATA_ROOT/cifar10-jpeg` when `data.root` is null), `SYNCO_CACHE_DIR` (decoded data sets when",
        "`data.cache_dir` is null; default `$XDG_CACHE_HOME/synco` or `~/.cache/synco`).",
        "",
    ]
    all_rows = rows(Config, "", allowed)
    sections: dict[str, list] = {}
    for entry in all_rows:
        section = entry[0].split(".")[0] if "." in entry[0] else "(top level)"
        sections.setdefault(section, []).append(entry)
    for section, entries in sections.items():
        parts += [f"## {section}", "", table(entries), ""]
    for names, cls in method_blocks():
        parts += [f"## method (method.name = {' / '.join(names)})", "", table(rows(cls, "method.", allowed)), ""]
    return "\n".join(parts)
