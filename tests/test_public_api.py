"""The public surface: a sorted __all__ that imports, one exception tree, typed package."""

from __future__ import annotations

import inspect
from pathlib import Path

import bridge
from bridge import errors


def test_all_is_sorted_and_every_name_exists() -> None:
    assert bridge.__all__ == sorted(bridge.__all__)
    for name in bridge.__all__:
        assert hasattr(bridge, name), name


def test_every_public_error_is_in_the_tree_with_an_exit_code() -> None:
    classes = [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == errors.__name__
    ]
    assert classes
    for cls in classes:
        assert issubclass(cls, errors.BridgeError), cls
        assert cls.exit_code in (1, 2, 3), cls
        assert cls.__doc__, cls
        assert cls.__name__ in (errors.__doc__ or ""), f"{cls.__name__} missing from the tree"


def test_only_the_cli_imports_typer() -> None:
    package = Path(bridge.__file__).parent
    for path in package.rglob("*.py"):
        if path.name == "cli.py":
            continue
        text = path.read_text(encoding="utf-8")
        assert "import typer" not in text and "from typer" not in text, path


def test_the_package_is_typed() -> None:
    assert (Path(bridge.__file__).parent / "py.typed").exists()
