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

    from tickhub.app.cli import main

    root = Path(_bootstrap.ROOT)
    env = root / ".env" if (root / ".env").exists() else root / "backend" / ".env"
    os.chdir(root)
    args = ["--env-file", str(env), "serve"]
    main(args + sys.argv[1:], prog_name=Path(__file__).name)
