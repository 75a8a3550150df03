"""Check a running service's four endpoints and HTTP routes (= `tickhub check --multi`).

Options pass through: --url ws://localhost:8081, --symbol RELIANCE, --timeout 15. Exit code 0 when
every check passes, 1 otherwise.
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
    main(["--env-file", str(env), "check", "--multi", *sys.argv[1:]], prog_name=Path(__file__).name)
