"""The bundled machine now lives in the installed package: ``replay.examples.minimachine``.

This module is that module under its old name, for scripts and traces that
import ``examples.minimachine`` from a clone (one module object, so its
functions and classes are the very same).
"""

import sys

from replay.examples import minimachine

sys.modules[__name__] = minimachine
