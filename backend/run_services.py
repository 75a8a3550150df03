"""Start every service of this repository (the seed's `cd backend && python run_services.py`).

Today that is one process: the tickhub WebSocket service (`tickhub serve`), which runs the feed,
the engines and the WebSocket/HTTP server together.
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
    print(f"run_services: starting 1 service: tickhub WebSocket service (settings: {env})")
    sys.stdout.flush()
    main(["--env-file", str(env), "serve", *sys.argv[1:]], prog_name=Path(__file__).name)
