"""The optimizer reference page, generated from the registry and the class docstrings.

``docs/optimizers.md`` is written by ``optarena docs`` and checked by
``optarena docs --check``; everything on it (update rules, arguments, allowed values,
compositions, papers) comes from the code, so the page cannot drift from the library.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optarena
from optarena.files import write_atomically
from optarena.registry import Entry, WrapperEntry, available

OPTIMIZERS_PAGE = "docs/optimizers.md"
"""Where the optimizer reference lives, relative to the repository root."""

UPDATE_RULE_MARKER = "Update rule::"
REFERENCE_MARKER = "Arguments:"


# -- pieces taken from the docstrings ----------------------------------------------------


def _own_docstring(cls: type) -> str:
    """The class docstring without the generated reference tail (arguments, composition, paper)."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    reference = getattr(cls, "reference_text", None)
    if callable(reference):
        tail = reference()
        if tail and doc.endswith(tail):
            return doc[: -len(tail)].rstrip()
    lines = doc.splitlines()
    if REFERENCE_MARKER in lines:
        lines = lines[: lines.index(REFERENCE_MARKER)]
    return "\n".join(lines).rstrip()


def update_rule(cls: type) -> str:
    """The indented block after ``Update rule::`` in the class docstring, dedented ('' if none)."""
    block, _ = _split_after_rule(_own_docstring(cls))
    return block


def notes(cls: type) -> str:
    """The docstring's prose after the update rule (caveats such as torch.optim conventions)."""
    _, rest = _split_after_rule(_own_docstring(cls))
    return rest


def _split_after_rule(doc: str) -> tuple[str, str]:
    lines = doc.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == UPDATE_RULE_MARKER), None)
    if start is None:
        return "", ""
    block: list[str] = []
    i = start + 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    while i < len(lines) and (not lines[i].strip() or lines[i][:1].isspace()):
        block.append(lines[i])
        i += 1
    rule = textwrap.dedent("\n".join(block)).strip("\n")
    rest = "\n".join(lines[i:]).strip()
    return rule, rest


# -- markdown helpers ---------------------------------------------------------------------


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    """Inline code, with enough backticks to hold any backticks in ``text``."""
    text = " ".join(str(text).split())
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _link_text(text: str) -> str:
    return text.replace("[", "\\[").replace("]", "\\]")


def _anchor(heading: str) -> str:
    """The fragment GitHub gives a heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _public_path(cls: type) -> str:
    """``optarena.Adam`` when the class is exported at the top level, else its module path."""
    if getattr(optarena, cls.__name__, None) is cls:
        return f"optarena.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _show(value: Any) -> str:
    return "required" if value is inspect.Parameter.empty else repr(value)


# -- the page -----------------------------------------------------------------------------


def _arguments_table(entry: Entry) -> list[str]:
    declared = entry.declared()
    rows = []
    for name, default in entry.defaults().items():
        shown = _code(_show(default))
        if name in entry.preset:
            shown += " (preset)"
        hyper = declared.get(name)
        allowed = _code(hyper.constraint.describe(name)) if hyper is not None else "any"
        meaning = _cell(hyper.doc) if hyper is not None and hyper.doc else ""
        rows.append([_code(name), shown, allowed, meaning])
    return _table(["Argument", "Default", "Allowed values", "Meaning"], rows)


def _section(entry: Entry) -> list[str]:
    cls = entry.cls
    out = [f"## {entry.name}", "", entry.description, ""]
    call = f'optarena.create("{entry.name}", params, ...)'
    if entry.preset:
        settings = ", ".join(f"{k}={v!r}" for k, v in entry.preset.items())
        base = next((e.name for e in available() if e.cls is cls and not e.preset), None)
        see = f" (see [{base}](#{_anchor(base)}))" if base else ""
        out += [
            f"A preset of {_code(_public_path(cls))}{see} with the settings {_code(settings)}."
            f" Build it with {_code(call)}; the other arguments are those of"
            f" {_code(cls.__name__)}, and passing a preset one explicitly overrides the preset.",
            "",
        ]
    elif isinstance(entry, WrapperEntry):
        out += [
            f"Class: {_code(_public_path(cls) + '(optimizer, ...)')} around any {_code('torch.optim.Optimizer')},"
            f" or {_code(call)} with {_code('inner=')} naming a registered optimizer (default"
            f" {_code(repr(entry.inner))}); every other argument goes to the inner optimizer.",
            "",
        ]
    else:
        out += [f"Class: {_code(_public_path(cls))}, or {_code(call)}.", ""]
    rule = update_rule(cls)
    if rule:
        out += ["Update rule:", "", "```text", rule, "```", ""]
    extra = notes(cls)
    if extra:
        out += [extra, ""]
    if entry.preset:
        out += ["Arguments (defaults with the preset applied):", ""]
    elif isinstance(entry, WrapperEntry):
        out += [f"Arguments (the wrapper's own, then those of the default inner optimizer, {_code(entry.inner)}):", ""]
    else:
        out += ["Arguments:", ""]
    out += _arguments_table(entry)
    out += ["", "Composition: " + _code(entry.composition()), ""]
    tuned = ", ".join(f"{_code(key)} {dim.describe()}" for key, dim in entry.search_space.items())
    if entry.search_space.fixed:
        tuned += ", with " + ", ".join(_code(f"{k}={v!r}") for k, v in entry.search_space.fixed.items())
    out += [f"Search space (what the arena tunes): {tuned}.", ""]
    if entry.paper is not None:
        out += [f"Paper: [{_link_text(entry.paper.cite())}]({entry.paper.url})", ""]
    return out


def render_optimizers_markdown() -> str:
    """The full text of ``docs/optimizers.md`` (deterministic: no dates, registry order)."""
    entries = available()
    out = [
        "# Optimizers",
        "",
        "<!-- Generated by `optarena docs`: do not edit by hand. -->",
        "",
        "This page is generated by `optarena docs` from the optimizer registry and the class"
        " docstrings; do not edit it by hand. Change the code, then run `optarena docs`"
        " (`optarena docs --check` fails while the page is out of date).",
        "",
        "Every optimizer is a `torch.optim.Optimizer`; build one by name with"
        ' `optarena.create("adam", model.parameters(), lr=3e-4)`.',
        "",
    ]
    rows = []
    for entry in entries:
        year = str(entry.paper.year) if entry.paper is not None else ""
        rows.append([f"[{entry.name}](#{_anchor(entry.name)})", _cell(entry.description), year])
    out += _table(["Name", "Description", "Paper"], rows)
    out.append("")
    for entry in entries:
        out += _section(entry)
    return "\n".join(out).rstrip("\n") + "\n"


# -- writing and checking -------------------------------------------------------------------

GENERATED: dict[str, Callable[[], str]] = {OPTIMIZERS_PAGE: render_optimizers_markdown}
"""Every generated file: its path relative to the repository root and its renderer."""


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n")


def write_docs(root: Path) -> list[Path]:
    """Write every generated file under ``root``; returns the paths whose content changed.

    Files already up to date are left untouched.
    """
    written = []
    for relative, render in GENERATED.items():
        path = Path(root) / relative
        text = render()
        if path.is_file() and _normalise(path.read_text(encoding="utf-8")) == text:
            continue
        write_atomically(path, text, create_folder=True)
        written.append(path)
    return written


def check_docs(root: Path) -> list[str]:
    """The generated files under ``root`` (relative paths) that are missing or out of date."""
    stale = []
    for relative, render in GENERATED.items():
        path = Path(root) / relative
        if not path.is_file() or _normalise(path.read_text(encoding="utf-8")) != render():
            stale.append(relative)
    return stale
