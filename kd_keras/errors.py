"""The errors a user can cause and fix.  The command line prints each as one line
starting ``error:`` and exits with code 2 (main.py); the message says what to do."""


class UserError(ValueError):
    """A problem the user can fix; the message says how."""


class DataError(UserError):
    """Input data that cannot be used."""


class ModelError(UserError):
    """A model that cannot be found, loaded or matched to the other."""


class RunMismatch(UserError):
    """A run that does not match what its model_dir already holds."""


class ExportError(UserError):
    """An export that cannot be written as asked."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class DiskFull(Exception):
    """No space left on the disk being written.  The write was atomic, so nothing
    half-written stays, and the folder keeps its last complete backup: main.py prints one
    line and exits with code 2, keeping the folder, and the same command resumes once
    there is space."""


class Preempted(Exception):
    """Training stopped on SIGTERM / SIGINT after a backup; the same command resumes it.
    Not the user's error: main.py prints it as one line and exits with code 75
    (EX_TEMPFAIL, "try again"), keeping the folder."""
