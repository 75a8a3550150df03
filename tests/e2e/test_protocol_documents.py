"""The protocol documents as files: one copy (docs/ links to the package), valid by the standard
parsers (openapi-spec-validator; the AsyncAPI reference parser from npm), schemas valid by both
JSON Schema drafts they claim, and shipped in the wheel."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from jsonschema import Draft7Validator, Draft202012Validator
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from tests.e2e.protocol_documents import ASYNCAPI, OPENAPI
from tests.helpers import NODE, REPO_ROOT, TESTS_DIR
from tickhub.server.specs import DOCUMENTS, read_document

PACKAGE_DATA = REPO_ROOT / "src" / "tickhub" / "data"
NPM = shutil.which("npm")


@pytest.mark.parametrize("name", DOCUMENTS)
def test_docs_copy_is_a_link_to_the_package_file(name: str) -> None:
    """One source: docs/<name> is a symlink into the package, which is what the service
    serves and what the wheel ships."""
    link = REPO_ROOT / "docs" / name
    assert link.is_symlink()
    assert link.resolve() == (PACKAGE_DATA / name).resolve()
    assert link.read_bytes() == read_document(name)


def test_openapi_document_is_valid_with_its_references_to_the_asyncapi_one() -> None:
    spec, base_uri = read_from_filename(str(PACKAGE_DATA / "openapi.yaml"))
    validate(spec, base_uri=base_uri)  # raises on an invalid document or a dangling $ref
    refs = json.dumps(OPENAPI)
    assert '"asyncapi.yaml#/components/schemas/Candle"' in refs


def test_every_asyncapi_schema_is_valid_json_schema_in_both_drafts() -> None:
    schemas = ASYNCAPI["components"]["schemas"]
    for name, schema in schemas.items():
        Draft7Validator.check_schema(schema)
        Draft202012Validator.check_schema(schema)
        assert isinstance(name, str)
    for message in ASYNCAPI["components"]["messages"].values():
        Draft202012Validator.check_schema(message["payload"])


def test_documents_name_the_same_version_as_the_code() -> None:
    from tickhub import __version__
    from tickhub.core.protocol import PROTOCOL_VERSION

    assert ASYNCAPI["info"]["version"] == str(PROTOCOL_VERSION)
    assert OPENAPI["info"]["version"] == __version__


@functools.cache
def _asyncapi_parser_missing() -> str | None:
    """Installs tests/package-lock.json (which pins @asyncapi/parser) once if needed."""
    if NODE is None:
        return "node is not installed"
    if (TESTS_DIR / "node_modules" / "@asyncapi" / "parser" / "package.json").exists():
        return None
    if NPM is None:
        return "npm is not installed (needed for @asyncapi/parser: npm ci --prefix tests)"
    done = subprocess.run(
        [NPM, "ci", "--prefix", str(TESTS_DIR), "--no-audit", "--no-fund"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        return f"npm ci --prefix tests failed: {done.stderr.strip().splitlines()[-1:]}"
    return None


def test_asyncapi_document_loads_in_the_reference_parser() -> None:
    missing = _asyncapi_parser_missing()
    if missing is not None:
        pytest.skip(missing)
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(TESTS_DIR / "js" / "asyncapi_parse.mjs"), str(PACKAGE_DATA / "asyncapi.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert done.returncode == 0, (done.stdout, done.stderr)
    # Only advice may remain (severity 2 and 3: information, hint), no error or warning.
    assert all(d["severity"] >= 2 for d in lines if "severity" in d), lines
    summary = lines[-1]
    assert summary["channels"] == ["/ws/stream", "/ws/analysis", "/ws/alerts", "/ws/portfolio"]
    assert summary["messages"] == len(ASYNCAPI["components"]["messages"])


@pytest.mark.slow
def test_the_wheel_ships_the_documents(tmp_path: Path) -> None:
    """Built as a user's pip builds it (isolated, from pyproject.toml): the documents and the
    module serving them are in the wheel."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copytree(REPO_ROOT / "src", project / "src", ignore=shutil.ignore_patterns("*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, project / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(project), "-w", "dist"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("tickhub-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in DOCUMENTS:
        assert f"tickhub/data/{name}" in names
    assert "tickhub/server/specs.py" in names


def test_every_error_code_of_the_code_is_documented_on_one_side_or_both() -> None:
    """A new ``ErrorCode`` must appear in the WebSocket error schema, the HTTP error schema or
    both; neither document may name a code the service does not have."""
    from tickhub.core.protocol import ErrorCode

    ws = set(ASYNCAPI["components"]["schemas"]["ErrorCode"]["enum"])
    http = set(OPENAPI["components"]["schemas"]["HttpError"]["properties"]["code"]["enum"])
    assert ws | http == {code.value for code in ErrorCode}
