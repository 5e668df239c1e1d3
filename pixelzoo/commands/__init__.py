"""Commands: one module each with its parser (``add_parser(subparsers)``) and its run (``run(args) ->
int``), on top of the library: train, sample, evaluate, score, train_classifier, inpaint, colorize, upscale,
reconstruct, rejection_sweep, plot, report, prepare, presets, datasets, zoo; ``options`` holds what their parsers
share.
Some also hold the library functions behind them (evaluate a run, colourise and upscale given
images, the rejection sweep, the curves). The top layer: nothing below imports it."""
