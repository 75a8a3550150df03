"""Check a running service's four endpoints and HTTP routes (= `tickhub check --multi`).

Options pass through: --url ws://localhost:8081 (default: from the root `.env`, else
`backend/.env`), --symbol RELIANCE, --timeout 15. Exit code 0 when every check passes, else 1.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("tickhub") is None:
    sys.path.insert(0, str(ROOT / "src"))

from tickhub.cli import main  # noqa: E402

if __name__ == "__main__":
    env = ROOT / ".env" if (ROOT / ".env").exists() else ROOT / "backend" / ".env"
    main(["--env-file", str(env), "check", "--multi", *sys.argv[1:]], prog_name=Path(__file__).name)
