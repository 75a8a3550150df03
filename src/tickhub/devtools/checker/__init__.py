"""``tickhub check``: exercise a running service over real sockets and report what conforms.

Each WebSocket endpoint gets its own connection (all of them at once with ``multi``) that walks
the seed protocol (docs/protocol.md) step by step; the HTTP routes come last. The folder splits
the checker by reason to change: ``run`` (what runs, in what order), ``endpoint`` (the steps of one
endpoint), ``connection`` (the client side of a socket), ``verdicts`` and ``shapes`` (the contract:
replies, envelopes, ``seq``, the fields each stream must carry), ``routes`` (the HTTP checks),
``target`` (the URL), ``report`` (the lines printed) and ``values`` (how values are judged
and named).
"""

from __future__ import annotations

from tickhub.devtools.checker.report import CheckResult
from tickhub.devtools.checker.run import ENDPOINTS, run_checks

__all__ = ["ENDPOINTS", "CheckResult", "run_checks"]
