"""Test-wide setup: helper modules in tests/support are importable (also by the
analyzer processes the tests spawn, which inherit sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

SUPPORT = str(Path(__file__).resolve().parent / "support")
if SUPPORT not in sys.path:
    sys.path.insert(0, SUPPORT)
