"""Start every service of this repository (the seed's `cd backend && python run_services.py`).

Today that is one process: the tickhub WebSocket service, which runs the feed, the engines and the
WebSocket/HTTP server together; so this is `start_websocket_service.py` with a line saying so.
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
    print(f"run_services: starting 1 service: tickhub WebSocket service (settings: {env})")
    sys.stdout.flush()
    os.chdir(ROOT)
    main(["--env-file", str(env), "serve", *sys.argv[1:]], prog_name=Path(__file__).name)
