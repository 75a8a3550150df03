"""Start every service of this repository (the seed's `cd backend && python run_services.py`).

That is `tickhub run-services`: one ingest (feed and engines) and GATEWAYS gateways (WebSocket
and HTTP endpoints on PORT+81 upward) joined through Redis, each log line prefixed with its
process; Ctrl-C stops them all. Without a Redis it runs the single-process service. Any `python`
can start it: without the project's packages it re-executes itself with ../.venv.
"""

import _bootstrap

if __name__ == "__main__":
    _bootstrap.ensure(__file__)

    import os
    import sys
    from pathlib import Path

    from tickhub.app.cli import run_script

    root = Path(_bootstrap.ROOT)
    env = root / ".env" if (root / ".env").exists() else root / "backend" / ".env"
    os.chdir(root)
    run_script("run-services", Path(__file__).name, env, sys.argv[1:])
