"""The error types pixelzoo raises. Every message names the file or value at fault."""


class PixelzooError(Exception):
    """Base class of every error pixelzoo raises on purpose."""


class DataError(PixelzooError, ValueError):
    """A data set is missing, truncated, corrupt or inconsistent."""


class CheckpointError(PixelzooError, ValueError):
    """A checkpoint or pretrained directory is missing, truncated or does not match the model."""


class ConfigError(PixelzooError, ValueError):
    """A configuration, preset name or option is invalid."""


class TrainingError(PixelzooError, RuntimeError):
    """Training cannot go on (for example a non-finite loss)."""


class TrainingStopped(PixelzooError):
    """Training stopped on a signal (SIGTERM, SIGINT, SIGUSR1) after writing a checkpoint, or was
    aborted by a second one; the message says where and how to resume. ``exit_code``: 128 + the
    signal's number (143, 130, 138 on Linux), what ``pixelzoo train`` exits with."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
