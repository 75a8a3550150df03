"""Run a backend/ script with the project's environment, whichever `python` started it.

The specification's commands are `cd backend && python <script>.py`, typed without activating a
venv, and that `python` may be any interpreter, Python 2 included. Each script calls `ensure`
before importing tickhub: when this interpreter lacks the project's packages it re-executes the
script with ROOT/.venv/bin/python (creating that venv once, the way `make install` does), or
prints one line saying what to run. So this module uses the standard library only and syntax
every Python parses (no annotations, no f-strings): type comments stand in for annotations.
"""

# %-formatting and list concatenation: Python 2 must parse this file to say what it needs.
# ruff: noqa: UP031, RUF005

import os
import re
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which Python 2 lacks
if TYPE_CHECKING:
    import subprocess  # noqa: F401 (used by type comments)
    from typing import NoReturn  # noqa: F401 (used by type comments)

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
VENV = os.path.join(ROOT, ".venv")
STAMP = os.path.join(VENV, ".installed")  # the Makefile's marker of a finished install
MIN_PYTHON = (3, 11)
# Set for the one re-execution, so a venv that still lacks the packages ends in a message, not a
# loop: "venv" after switching to the venv's python, "installed" after installing into it.
GUARD = "TICKHUB_BOOTSTRAP"
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def ensure(script):
    # type: (str) -> None
    """Return once the project's packages are importable; otherwise re-execute `script` or exit."""
    name = os.path.basename(script)
    script = os.path.abspath(script)
    missing = _missing()
    if not missing:
        os.environ.pop(GUARD, None)  # scripts this one starts get their own check
        _use_checkout()
        return
    stage = os.environ.get(GUARD, "")
    if _running_in_venv():
        if sys.version_info < MIN_PYTHON:
            _fail(
                name,
                "%s was made with Python %s and tickhub needs 3.11+: %s"
                % (VENV, _version(), _remedy()),
            )
        if stage == "installed":
            _fail(
                name,
                "%s still lacks %s after installing: run `make install` in %s"
                % (VENV, ", ".join(missing), ROOT),
            )
        _say(
            name,
            "installing the project's packages into %s (%s missing; once, as `make "
            "install` does)..." % (VENV, _listed(missing)),
        )
        _install(name, sys.executable)
        _execute(name, sys.executable, script, "installed")
    python = _venv_python()
    if stage:
        _fail(
            name,
            "%s does not run the project's Python (%s): remove %s and run `make install` "
            "in %s" % (python, sys.executable, VENV, ROOT),
        )
    if not os.path.exists(python):
        if sys.version_info < MIN_PYTHON:
            _fail(
                name,
                "tickhub needs Python 3.11+, this is Python %s (%s): %s"
                % (_version(), sys.executable, _remedy(name)),
            )
        _say(
            name,
            "creating %s with %s and installing the project's packages into it (once, as "
            "`make install` does; about a minute)..." % (VENV, sys.executable),
        )
        _create(name)
        _install(name, python)
    _execute(name, python, script, "venv")


def _missing():
    # type: () -> list[str]
    """The project's requirements this interpreter lacks (or has at another pinned version)."""
    if sys.version_info < MIN_PYTHON:
        return ["Python 3.11+"]
    installed = _installed()
    missing = []
    for requirement in _requirements():
        parsed = _parse(requirement)
        if parsed is None:
            continue
        name, pin = parsed
        have = installed.get(_normalized(name))
        if have is None:
            missing.append(name)
        elif pin is not None and have != pin:
            missing.append("%s==%s (have %s)" % (name, pin, have))
    return missing


def _installed():
    # type: () -> dict[str, str]
    """Installed distributions by normalized name, read from the .dist-info folder names on the
    path: 1 ms where importlib.metadata takes 80, paid by every start of every script."""
    found = {}  # type: dict[str, str]
    for folder in sys.path:
        try:
            entries = os.listdir(folder or ".")
        except OSError:
            continue
        for entry in entries:
            stem, _, kind = entry.rpartition(".")
            if kind not in ("dist-info", "egg-info") or "-" not in stem:
                continue
            name, _, version = stem.partition("-")
            found.setdefault(_normalized(name), version.split("-")[0])
    return found


def _normalized(name):
    # type: (str) -> str
    return re.sub(r"[-_.]+", "_", name).lower()


def _requirements():
    # type: () -> list[str]
    """Runtime requirements from this checkout's pyproject.toml, else from an installed tickhub."""
    import tomllib

    try:
        with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
            return list(tomllib.load(handle)["project"]["dependencies"])
    except OSError:
        pass
    from importlib import metadata

    try:
        return list(metadata.requires("tickhub") or [])
    except metadata.PackageNotFoundError:
        return []  # nothing to check against: the script's import error will speak


REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)(?:;(.*))?$")
MARKER = re.compile(r"^\s*(\w+)\s*(==|!=)\s*['\"]([^'\"]*)['\"]\s*$")


def _parse(requirement):
    # type: (str) -> tuple[str, str | None] | None
    """(name, exact pin or None) of a requirement that applies here; None when its marker rules
    it out. Only `==`/`!=` markers on the platform are understood; any other counts as applying."""
    match = REQUIREMENT.match(requirement)
    if match is None:
        return None
    name, spec, marker = match.group(1), match.group(2).strip(), match.group(3)
    if marker is not None and not _applies(marker):
        return None
    pin = re.match(r"^==\s*([^\s,*]+)$", spec)
    return name, (pin.group(1) if pin else None)


def _applies(marker):
    # type: (str) -> bool
    import platform

    values = {
        "sys_platform": sys.platform,
        "platform_system": platform.system(),
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "implementation_name": sys.implementation.name,
        "extra": "",
    }
    for clause in marker.split(" and "):
        match = MARKER.match(clause)
        if match is None or match.group(1) not in values:
            continue
        equal = values[match.group(1)] == match.group(3)
        if equal != (match.group(2) == "=="):
            return False
    return True


def _use_checkout():
    # type: () -> None
    """Import tickhub from this checkout's src/, here and in the processes the script starts
    (run_services' ingest and gateways), even when another tickhub is installed."""
    src = os.path.join(ROOT, "src")
    if not os.path.isdir(os.path.join(src, "tickhub")):
        return
    if src in sys.path:
        sys.path.remove(src)
    sys.path.insert(0, src)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != src]
    os.environ["PYTHONPATH"] = os.pathsep.join([src] + paths)


def _running_in_venv():
    # type: () -> bool
    return os.path.realpath(sys.prefix) == os.path.realpath(VENV)


def _venv_python():
    # type: () -> str
    if os.name == "nt":
        return os.path.join(VENV, "Scripts", "python.exe")
    return os.path.join(VENV, "bin", "python")


def _create(name):
    # type: (str) -> None
    """`python -m venv .venv` as the Makefile does; a half-made venv is removed, or the next run
    would take it for a finished one."""
    import shutil
    import subprocess

    try:
        result = subprocess.run(
            [sys.executable, "-m", "venv", VENV], capture_output=True, text=True, check=False
        )
    except KeyboardInterrupt:
        shutil.rmtree(VENV, ignore_errors=True)
        _fail(name, "interrupted while creating %s: removed it" % VENV, EXIT_INTERRUPTED)
    if result.returncode != 0:
        shutil.rmtree(VENV, ignore_errors=True)
        _fail(
            name,
            "cannot create %s: `%s -m venv` failed (%s): install Python's venv module "
            "(Debian and Ubuntu: apt install python3-venv), then run `make install` in %s"
            % (VENV, sys.executable, _reason(result), ROOT),
        )


def _install(name, python):
    # type: (str, str) -> None
    """The Makefile's install steps: upgrade pip, `pip install -e '.[dev]'`, touch the stamp."""
    import subprocess

    steps = [
        ["-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        ["-m", "pip", "install", "--quiet", "-e", ".[dev]"],
    ]
    for step in steps:
        try:
            result = subprocess.run(
                [python] + step, cwd=ROOT, capture_output=True, text=True, check=False
            )
        except KeyboardInterrupt:
            _fail(
                name,
                "interrupted while installing into %s: run the command again to finish" % VENV,
                EXIT_INTERRUPTED,
            )
        if result.returncode != 0:
            _fail(
                name,
                "cannot install the project's packages into %s: `pip %s` failed (%s): "
                "check the network (or proxy) for PyPI, then run `make install` in %s"
                % (VENV, " ".join(step[2:]), _reason(result), ROOT),
            )
    with open(STAMP, "a"):
        os.utime(STAMP, None)


def _execute(name, python, script, stage):
    # type: (str, str, str, str) -> None
    """Become `python script args...`: same process, so signals and the exit code are the
    script's own. Windows has no exec that keeps the process, so it waits for a child there."""
    import subprocess

    env = dict(os.environ)
    env[GUARD] = stage
    argv = [python, script] + sys.argv[1:]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        if os.name != "nt":
            os.execve(python, argv, env)
        child = subprocess.Popen(argv, env=env)
    except OSError as exc:
        _fail(
            name,
            "cannot run %s (%s): remove %s and run `make install` in %s"
            % (python, exc, VENV, ROOT),
        )
    while True:
        try:
            sys.exit(child.wait())
        except KeyboardInterrupt:
            continue  # the console sent Ctrl-C to the child too: wait for it to finish


def _remedy(name=None):
    # type: (str | None) -> str
    """What to run instead: a Python 3.11+ found on PATH, else how to get one."""
    for candidate in ("python3.14", "python3.13", "python3.12", "python3.11", "python3"):
        found = _which(candidate)
        if found and _is_recent(found):
            if name is None:
                return "remove it and run `make install PYTHON=%s` in %s" % (candidate, ROOT)
            return "run `%s %s` (it sets up %s once)" % (candidate, name, VENV)
    return "install Python 3.11 or newer, then run `make install PYTHON=python3.11` in %s" % ROOT


def _which(command):
    # type: (str) -> str | None
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(folder, command)
        if folder and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _is_recent(python):
    # type: (str) -> bool
    """Asked rather than trusted from the name: a pyenv shim exists for versions it won't run."""
    import subprocess

    check = "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)"
    with open(os.devnull, "w") as devnull:
        try:
            return subprocess.call([python, "-c", check], stdout=devnull, stderr=devnull) == 0
        except OSError:
            return False


def _version():
    # type: () -> str
    return "%d.%d.%d" % tuple(sys.version_info[:3])


def _listed(names):
    # type: (list[str]) -> str
    return ", ".join(names[:3]) + (" and %d more" % (len(names) - 3) if len(names) > 3 else "")


def _reason(result):
    # type: (subprocess.CompletedProcess[str]) -> str
    """The line of a failed command's output that says why: pip's last `ERROR:` line (its
    `error:` lines only say that a subprocess failed), else the last error line, else the last."""
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    pip = [line for line in lines if line.startswith("ERROR:")]
    other = [line for line in lines if line.lower().startswith("error")]
    chosen = (pip or other or lines or ["exit code %d" % result.returncode])[-1]
    return chosen if len(chosen) <= 200 else chosen[:197] + "..."


def _say(name, message):
    # type: (str, str) -> None
    sys.stderr.write("%s: %s\n" % (name, message))
    sys.stderr.flush()


def _fail(name, message, code=EXIT_FAILED):
    # type: (str, str, int) -> NoReturn
    _say(name, message)
    sys.exit(code)
