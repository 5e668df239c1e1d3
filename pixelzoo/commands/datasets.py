"""``pixelzoo datasets``: list the data sets, whether each is available here, and why not; and what
prepared folders hold."""

from __future__ import annotations

from ..data import available_datasets
from ..data.shards import STREAM_ABOVE_BYTES, check_shards, index_bytes, read_index


def add_parser(subparsers):
    d = subparsers.add_parser("datasets", help="list the data sets, whether each is available here, and why not")
    d.add_argument("prepared", nargs="*", metavar="FOLDER",
                   help="folders written by `pixelzoo prepare`: say what each holds (its shards checked by size)")
    return d


def run(args) -> int:
    for d in available_datasets():
        print(f"{d['name']:14s} {'yes' if d['available'] else 'no ':3s}  {d['detail']}")
    for folder in args.prepared:
        index = read_index(folder)
        check_shards(folder, index, verify=False)
        splits = index["splits"]
        classes = f"{index['num_classes']} classes" if index["num_classes"] else "no labels"
        how = "streams from its shards" if index_bytes(index) > STREAM_ABOVE_BYTES else "loads into memory"
        print(f"{folder}: prepared {index['name']} ({index['source']}): {splits['train']['count']} train / "
              f"{splits['test']['count']} test images of {'x'.join(map(str, index['image_shape']))}, "
              f"{index['num_levels']} levels, {classes}; by size it {how} (--data prepared --data-dir {folder})")
    return 0
