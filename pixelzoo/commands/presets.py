"""``pixelzoo presets``: list the named configurations."""

from __future__ import annotations

import shutil
import textwrap

from ..registry import list_presets, load_preset


def add_parser(subparsers):
    ps = subparsers.add_parser("presets", help="list the named configurations (a line each; -v: the full descriptions)")
    ps.add_argument("-v", "--verbose", action="store_true", help="print each preset's full description")
    return ps


def run(args) -> int:
    width = max(60, shutil.get_terminal_size((100, 24)).columns)
    names = list_presets()
    column = max(map(len, names), default=0)  # the names' column, as wide as the longest
    for name in names:
        text = " ".join(load_preset(name).get("description", "").split())
        if args.verbose:
            print(name)
            print(textwrap.fill(text, width - 1, initial_indent="    ", subsequent_indent="    "))
        else:
            print(f"{name:{column}s} {textwrap.shorten(text, max(20, width - column - 2), placeholder=' ...')}")
    return 0
