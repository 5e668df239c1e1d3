"""Commands: what the command line runs on top of the library (evaluate a run, colourise and upscale
given images, the rejection sweep). The top layer: nothing below imports it."""
