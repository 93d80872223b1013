"""The docs say what the code does: the demo's exit code (issue 13, item 5), and every
mapping path and example command named in README.md and in --help (item 9)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_demo_returns_what_the_readme_says() -> None:
    text = " ".join(README.split())
    said = re.search(
        r"`make demo` itself exits 0 when the sync exits (\d+) or (\d+) .*?and with the "
        r"sync's own code otherwise",
        text,
    )
    assert said, "README: say what `make demo` returns"
    ok_codes = {int(said.group(1)), int(said.group(2))}
    demo = load_example("demo.py")
    for code in (0, 1, 2, 3, 130):
        assert demo.exit_code_for(code) == (0 if code in ok_codes else code), code
    # the Makefile passes the script's code on: no `-` prefix, no `|| true`
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert [line.strip() for line in recipe] == ["$(BIN)/python examples/demo.py"]
