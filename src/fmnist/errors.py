"""Errors the command line turns into one clear line and a documented exit code.

Exit codes: 0 success; 1 the work failed (inputs rejected, training diverged);
2 bad usage or unusable data.
"""


class FmnistError(Exception):
    """Every error fmnist raises on purpose. ``field`` names the setting or argument at fault as Python
    spells it (``"epochs"``, ``"output_dir"``) when one is; the message then starts with that name, and
    the command line shows it as the option that sets it (``--epochs``)."""

    exit_code = 1

    def __init__(self, message: str = "", field: str | None = None):
        super().__init__(message)
        self.field = field


class UsageError(FmnistError, ValueError):
    """A bad option or setting."""

    exit_code = 2


class DataError(FmnistError):
    """A dataset or model file that cannot be used; the message names the file."""

    exit_code = 2


class TrainingFailed(FmnistError):
    """Training ran but its result cannot be trusted (for example a non-finite loss)."""

    exit_code = 1


class Interrupted(FmnistError):
    """Stopped by SIGINT or SIGTERM at a safe point; the checkpoint is kept. Exits 128 + the signal."""

    def __init__(self, signal_number: int, where: str, resume_command: str | None, resumable: bool = True):
        import signal

        self.signal_number = signal_number
        self.exit_code = 128 + signal_number  # 130 for SIGINT (Ctrl-C), 143 for SIGTERM
        name = signal.Signals(signal_number).name
        after = (f"; checkpoint kept. Resume with: {resume_command}" if resume_command
                 else "; nothing to resume yet: run the command again" if resumable else "")  # a server: nothing to resume
        super().__init__(f"stopped by {name} {where}{after}")


class BackendUnavailable(FmnistError, ImportError):
    """The Keras backend chosen by KERAS_BACKEND (or ~/.keras/keras.json) cannot be imported."""

    exit_code = 2


class ExportFailed(FmnistError):
    """The exported model does not match the Keras model (or could not be converted); nothing is written."""

    exit_code = 1


class InputError(FmnistError):
    """Why one input (a picture, an array, a file) cannot be used, in words ("permission denied",
    "empty file"); the caller names the input, and the other inputs go on."""


class UnsupportedFormat(InputError):
    """Not a PNG or JPEG picture (nor, for files, a .npy array or IDX file)."""


class TooLarge(InputError):
    """More pixels than the limit, known from the header before any decoding."""
