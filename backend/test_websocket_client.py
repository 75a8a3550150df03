"""Check a running service's /ws/stream endpoint and HTTP routes (= `tickhub check --single`).

Options pass through: --url ws://localhost:8081 (default: from the root `.env`, else
`backend/.env`), --symbol RELIANCE, --timeout 15. Exit code 0 when every check passes, else 1.
Any `python` can start it: without the project's packages it re-executes itself with ../.venv.
"""

import _bootstrap

if __name__ == "__main__":
    _bootstrap.ensure(__file__)

    import sys
    from pathlib import Path

    from tickhub.app.cli import run_script

    root = Path(_bootstrap.ROOT)
    env = root / ".env" if (root / ".env").exists() else root / "backend" / ".env"
    args = ["--single"]
    run_script("check", Path(__file__).name, env, args + sys.argv[1:])
