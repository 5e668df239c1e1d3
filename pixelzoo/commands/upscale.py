"""``pixelzoo upscale``: sample the higher resolutions of low-resolution images with a pyramid_pixelcnn
run (the library function is ``colorize_upscale.upscale_command``)."""

from __future__ import annotations

from .colorize_upscale import upscale_command
from .options import POSITIVE, add_given_images_parser


def add_parser(subparsers):
    def own(a):
        a.add_argument("--from-size", type=POSITIVE, help="resolution to upscale from (default: the lowest level)")

    return add_given_images_parser(subparsers, "upscale", "sample the higher resolutions of low-resolution images with "
                                   "a pyramid_pixelcnn run; PNG grid + .npz", own)


def run(args) -> int:
    r = upscale_command(args.run_dir, args.images, args.n, args.per_image, from_size=args.from_size, cls=args.cls,
                        temperature=args.temperature, map_sampling=args.map, log_scale_shift=args.log_scale_shift,
                        seed=args.seed, out=args.out, progress=not args.no_progress, device=args.device)
    cols = ("original, " if r["with_original"] else "") + f"{r['from_size']}-pixel level, {r['per_image']} upscalings"
    print(f"upscaling grid ({cols} per row): {r['png']}; samples: {r['npz']}")
    return 0
