"""Start every service of this repository (the seed's `cd backend && python run_services.py`).

That is `tickhub run-services`: one ingest (feed and engines) and GATEWAYS gateways (WebSocket
and HTTP endpoints on PORT+81 upward) joined through Redis, each log line prefixed with its
process; Ctrl-C stops them all. Without a Redis it runs the single-process service.
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
    main(["--env-file", str(env), "run-services", *sys.argv[1:]], prog_name=Path(__file__).name)
