"""The checker's results and the report they make: one line per check, then the totals.

The wording of these lines is what a user reads and what scripts grep (``PASS``/``FAIL``, the
totals line), so it changes only on purpose, apart from what is checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CheckResult", "Results", "print_report"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict: ``where`` it ran (an endpoint path, ``http``, ``service``), its name,
    whether it passed and a detail (for a failure: what was expected and what came)."""

    where: str
    name: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        """The report line: verdict, place, name and detail, in columns."""
        verdict = "PASS" if self.ok else "FAIL"
        if not self.detail:
            return f"{verdict}  {self.where:<14} {self.name}"
        sep = ": " if not self.ok else " "
        detail = self.detail if not self.ok else f"({self.detail})"
        return f"{verdict}  {self.where:<14} {self.name}{sep}{detail}"


class Results:
    """The results of one place (``where``), in the order the checks ran."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.results: list[CheckResult] = []

    def passed(self, name: str, detail: str = "") -> None:
        """Record that ``name`` passed, with an optional ``detail`` of what was seen."""
        self.results.append(CheckResult(self.where, name, True, detail))

    def failed(self, name: str, expected: str, got: str) -> None:
        """Record that ``name`` failed: ``expected`` is the contract, ``got`` what came instead."""
        self.results.append(CheckResult(self.where, name, False, f"expected {expected}, got {got}"))

    def verdict(self, name: str, expected: str, problem: str | None, detail: str = "") -> bool:
        """Pass ``name`` when there is no ``problem``, else fail it with it; True if it passed."""
        if problem is None:
            self.passed(name, detail)
            return True
        self.failed(name, expected, problem)
        return False


def print_report(results: Sequence[CheckResult]) -> bool:
    """Print one line per result and the totals; True if every result passed."""
    for result in results:
        print(result.line())
    failed = sum(1 for r in results if not r.ok)
    print(f"{len(results) - failed} passed, {failed} failed", flush=True)
    return failed == 0
