"""Data sets and loaders: named data sets as uint8 (N, C, H, W) train/test splits, file readers,
batch augmentation, the batches of a seeded run (``batches``), and data beyond memory:
``prepare.prepare`` writes any source as uint8 shards with an index (``shards``), read by memory map and streamed to
training by DataLoader workers (``loader``). Nothing is downloaded at run time; missing data raises
DataError saying how to get it."""

from pixelzoo.data.augment import apply_hflip, hflip_mask, random_hflip
from pixelzoo.data.cifar import read_cifar10
from pixelzoo.data.dataset import DataSplits, ImageDataset
from pixelzoo.data.idx import read_idx
from pixelzoo.data.image_folder import read_image_folder
from pixelzoo.data.npz import read_npz
from pixelzoo.data.registry import available_datasets, dataset_names, load_dataset
from pixelzoo.data.shards import ShardedDataset, load_prepared

__all__ = [
    "ImageDataset",
    "DataSplits",
    "load_dataset",
    "available_datasets",
    "dataset_names",
    "apply_hflip",
    "hflip_mask",
    "random_hflip",
    "read_idx",
    "read_cifar10",
    "read_image_folder",
    "read_npz",
    "load_prepared",
    "ShardedDataset",
]
