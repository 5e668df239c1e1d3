"""``pixelzoo datasets``: list the data sets, whether each is available here, and why not."""

from __future__ import annotations

from ..data import available_datasets


def add_parser(subparsers):
    return subparsers.add_parser("datasets", help="list the data sets, whether each is available here, and why not")


def run(args) -> int:
    for d in available_datasets():
        print(f"{d['name']:14s} {'yes' if d['available'] else 'no ':3s}  {d['detail']}")
    return 0
