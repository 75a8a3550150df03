"""Start the WebSocket service (the seed's `cd backend && python start_websocket_service.py`).

Same as `make run` (`tickhub serve`): it runs from the repository root, so relative paths in the
settings (DATA_DIR, INSTRUMENTS_FILE) mean the same whichever way it is started, and it reads the
root `.env`, or `backend/.env` when there is none. Works with the venv's python in a checkout and
with any python where the tickhub package is installed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("tickhub") is None:
    sys.path.insert(0, str(ROOT / "src"))

from tickhub.cli import main  # noqa: E402

if __name__ == "__main__":
    env = ROOT / ".env" if (ROOT / ".env").exists() else ROOT / "backend" / ".env"
    os.chdir(ROOT)
    main(["--env-file", str(env), "serve", *sys.argv[1:]], prog_name=Path(__file__).name)
