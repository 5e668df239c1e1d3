"""``pixelzoo serve [RUNS_DIR]``: a local web page over the runs under a folder and the zoo's models
(sample with rows appearing as they are drawn, inpaint a drawn region, colourise, upscale,
reconstruct, surprise maps, training curves)."""

from __future__ import annotations

import logging
import signal
import sys

from ..commands.options import add_device_option, number
from .server import DEFAULT_HOST, PageServer


def add_parser(subparsers):
    s = subparsers.add_parser("serve", help="a local web page to look at models: sample, inpaint, colourise, upscale, "
                                            "reconstruct, surprise maps, curves")
    s.add_argument("runs_dir", nargs="?", help="a folder holding run directories (default: the zoo's models only)")
    s.add_argument("--port", type=number(int, 0, what="a port number", high=65535), default=8000,
                   help="port (default 8000; 0: any free port)")
    s.add_argument("--host", default=DEFAULT_HOST,
                   help="address to listen on (default 127.0.0.1, this machine only); any other address is served "
                        "only with a random access token, printed in the URL")
    s.add_argument("--queue", type=number(int, 1, what="a queue size", high=1000), default=8,
                   help="computations that may wait or run at once; beyond it requests are told 'busy' (default 8)")
    s.add_argument("--workers", type=number(int, 1, what="a number of workers", high=64), default=1,
                   help="computations run at once, at most one per model (default 1)")
    add_device_option(s)
    return s


def run(args) -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request (the page polls)
    server = PageServer(args.runs_dir, host=args.host, port=args.port, device=args.device, capacity=args.queue,
                        workers=args.workers)
    if server.token is not None:
        print(f"pixelzoo serve: warning: listening on {args.host}, reachable from other machines; only the URL "
              "below (with its access token) opens the page", file=sys.stderr)
    print(f"pixelzoo serve: {len(server.catalogue.names())} models; open {server.url}  (Ctrl-C stops)", flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("pixelzoo serve: stopped", file=sys.stderr)
    finally:
        server.close()
    return 0
