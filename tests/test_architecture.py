"""The house rules of docs/architecture.md that a linter does not check.

The layering itself is import-linter's contract (pyproject.toml, run by `make lint`); here: no
module imports a private name (or a private module) of another package, so that each package's
public face is all the others rely on.
"""

from __future__ import annotations

import ast
from pathlib import Path

import hepablate

SRC = Path(hepablate.__file__).resolve().parent


def _package(module: str) -> str:
    """``hepablate.<package>`` of a dotted module name (``hepablate`` for the root)."""
    return ".".join(module.split(".")[:2])


def _cross_package_private_imports(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(
                "hepablate"
            ):
                continue
            assert node.module is not None
            if _package(node.module) == _package(module) and node.module != "hepablate":
                continue
            names = [a.name for a in node.names if a.name.startswith("_")]
            modules = [part for part in node.module.split(".") if part.startswith("_")]
            if names or modules:
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}: {node.module}")
    return found


def test_no_private_name_is_imported_across_packages() -> None:
    assert _cross_package_private_imports(SRC) == []


def test_the_check_finds_a_private_import(tmp_path: Path) -> None:
    package = tmp_path / "hepablate"
    (package / "bundle").mkdir(parents=True)
    (package / "study").mkdir()
    (package / "bundle" / "__init__.py").write_text(
        "from hepablate.study.results import _mean\nfrom hepablate.bundle._files import x\n",
        encoding="utf-8",
    )
    (package / "study" / "__init__.py").write_text(
        "from hepablate.study._own import y\n", encoding="utf-8"
    )
    assert _cross_package_private_imports(package) == [
        "hepablate/bundle/__init__.py:1: hepablate.study.results"
    ]
