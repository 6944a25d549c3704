"""`--backend` for the benchmark scripts, read before Keras is imported
(Keras fixes its backend at import, from `KERAS_BACKEND`)."""

import os

BACKENDS = ("tensorflow", "jax")


def requested_backend(argv):
    """The `--backend` of a command line, or None."""
    for i, arg in enumerate(argv):
        if arg == "--backend" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--backend="):
            return arg.split("=", 1)[1]
    return None


def select_backend(argv):
    """Sets `KERAS_BACKEND` from `argv`'s `--backend`, when it names one."""
    backend = requested_backend(argv)
    if backend in BACKENDS:
        os.environ["KERAS_BACKEND"] = backend
