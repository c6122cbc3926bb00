"""``make demo``: run the bundled machine and print what it dispatched."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples.minimachine import main  # noqa: E402

if __name__ == "__main__":
    main()
