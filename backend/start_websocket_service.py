"""Start the WebSocket service (the seed's `cd backend && python start_websocket_service.py`).

Same as `tickhub serve`, reading the repository's `.env` (or `backend/.env`). Works from a checkout
with the venv's python or with any python where the tickhub package is installed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if importlib.util.find_spec("tickhub") is None:
    sys.path.insert(0, str(HERE.parent / "src"))

from tickhub.cli import main  # noqa: E402

if __name__ == "__main__":
    env = HERE.parent / ".env" if (HERE.parent / ".env").exists() else HERE / ".env"
    main(["--env-file", str(env), "serve", *sys.argv[1:]], prog_name=Path(__file__).name)
