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


class StorageError(PixelzooError, OSError):
    """A file or directory cannot be written: no space, a file-size limit, a read-only or forbidden
    place. The message names the path (and the free space where known); nothing half-written is left.
    ``errno`` and ``filename`` are those of the failure, where known."""

    def __init__(self, message: str, errno: int | None = None, filename: str | None = None):
        super().__init__(message)
        self.message, self.errno, self.filename = message, errno, filename

    def __str__(self) -> str:
        return self.message


class TrainingStopped(PixelzooError):
    """Training stopped on a signal (SIGTERM, SIGINT, SIGUSR1) after writing a checkpoint, or was
    aborted by a second one; the message says where and how to resume. ``exit_code``: 128 + the
    signal's number (143, 130, 138 on Linux), what ``pixelzoo train`` exits with."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
