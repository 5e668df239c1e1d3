"""``pixelzoo colorize``: colourise gray views with a grayscale_pixelcnn run (the library function is
``colorize_upscale.colorize_command``)."""

from __future__ import annotations

from .colorize_upscale import colorize_command
from .options import add_given_images_parser


def add_parser(subparsers):
    def own(a):
        a.add_argument("--gray", action="store_true", help="the images are gray views already (default: images, "
                                                           "or gray views when their shape says so)")

    return add_given_images_parser(subparsers, "colorize", "colourise gray views with a grayscale_pixelcnn run (the "
                                   "paper's Fig. 3); PNG grid + .npz", own)


def run(args) -> int:
    r = colorize_command(args.run_dir, args.images, args.n, args.per_image, gray_given=args.gray, cls=args.cls,
                         temperature=args.temperature, map_sampling=args.map, log_scale_shift=args.log_scale_shift,
                         seed=args.seed, out=args.out, progress=not args.no_progress, device=args.device)
    cols = ("original, " if r["with_original"] else "") + f"gray view, {r['per_image']} colourisations"
    print(f"colourisation grid ({cols} per row): {r['png']}; samples: {r['npz']}")
    print(f"psi(colourisation) equals the given gray view at {r['agreement']:.1%} of pixels")
    return 0
