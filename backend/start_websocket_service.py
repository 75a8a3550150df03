"""Start the WebSocket service (the seed's `cd backend && python start_websocket_service.py`).

Same as `make run` (`tickhub serve`): it runs from the repository root, so relative paths in the
settings (DATA_DIR, INSTRUMENTS_FILE) mean the same whichever way it is started, and it reads the
root `.env`, or `backend/.env` when there is none. Any `python` can start it: without the
project's packages it re-executes itself with ../.venv (see _bootstrap.py).
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
    run_script("serve", Path(__file__).name, env, sys.argv[1:])
