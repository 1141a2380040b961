"""Everything that imports TensorFlow lives here (and in ``edgepipe.prune``).

TensorFlow prints CUDA probes and absl banners to stderr on import, from C++,
before any Python logging setting applies. :func:`import_tensorflow` silences
file descriptor 2 for the import only, so a build's terminal output is
edgepipe's; an import failure still raises its Python exception.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def import_tensorflow():
    """``import tensorflow`` with its C++ start-up chatter discarded."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    from edgepipe.errors import MissingDependencyError
    from edgepipe.fdcapture import captured

    try:
        with captured((2,)):
            import tensorflow as tf
    except ImportError:
        raise MissingDependencyError("tensorflow", "build", "building from a Keras model") from None
    # edgepipe reports what matters; TF's Python-side chatter (retracing notices) is not for users
    tf.get_logger().setLevel("ERROR")
    return tf
