"""The docs say what the code does: the demo's exit code (issue 13, item 5), and every
mapping path and example command named in README.md and in --help (item 9)."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import typer.main
from typer._click.core import Command, Context
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

from bridge.cli import app
from bridge.mapping import load_mapping

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


# -- item 9: every path and example command the docs name exists and parses ----------------

ROOT_COMMAND = typer.main.get_command(app)
PATH_RE = re.compile(r"(?<![\w./-])((?:mappings|examples)/[\w.-]+(?:/[\w.-]+)*/?)")
STOP = {">", ">>", "2>&1", "|", "&&", ";", "&"}


def readme_commands() -> list[str]:
    """`annobridge ...` lines of README's code blocks, and its inline `annobridge ...` code."""
    found = []
    for lang, block in re.findall(r"```(\w*)\n(.*?)```", README, flags=re.S):
        if lang == "diff":
            continue
        found += [line for line in block.splitlines() if re.search(r"(^|\s|/)annobridge ", line)]
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    found += re.findall(r"`(annobridge [^`\n]+)`", prose)
    return found


def help_commands() -> list[tuple[str, str]]:
    """(command, example line) for each example in every command's --help."""
    out = []

    def visit(command: Command, name: str) -> None:
        for line in (command.help or "").splitlines():
            if line.strip().startswith("annobridge "):
                out.append((name, line.strip()))
        if isinstance(command, TyperGroup):
            for sub_name, sub in command.commands.items():
                visit(sub, f"{name} {sub_name}")

    visit(ROOT_COMMAND, "annobridge")
    return out


def argv_of(line: str) -> list[str] | None:
    """The arguments after `annobridge`, without comments, redirections and what follows
    them; None for a synopsis (MAPPING, [options], …)."""
    words = shlex.split(line, comments=True)
    start = next(i for i, w in enumerate(words) if w == "annobridge" or w.endswith("/annobridge"))
    argv: list[str] = []
    for word in words[start + 1 :]:
        if word in STOP or word.startswith((">", "2>")):
            break
        argv.append(word)
    if any(w.isupper() or w.startswith("[") or "…" in w or "|" in w for w in argv):
        return None
    return argv


def resolve(argv: list[str], resilient: bool = False) -> tuple[Command, Context]:
    """Parse ``argv`` as the CLI would, without running anything: unknown commands and
    options, bad choices and missing arguments raise click's UsageError (``resilient``: only
    unknown commands, for a command named in prose)."""
    ctx = ROOT_COMMAND.make_context("annobridge", list(argv), resilient_parsing=resilient)
    command: Command = ROOT_COMMAND
    while isinstance(command, TyperGroup):
        args = [*ctx._protected_args, *ctx.args]  # type: ignore[attr-defined]
        if not args:
            break
        name, sub, rest = command.resolve_command(ctx, args)
        assert sub is not None and name is not None
        ctx = sub.make_context(name, rest, parent=ctx, resilient_parsing=resilient)
        command = sub
    return command, ctx


def synopsis_options(line: str) -> tuple[Command, list[str]]:
    words = line.replace("[", " ").replace("]", " ").split()
    names = []
    for word in words[1:]:
        if word.startswith("-") or word.isupper() or "…" in word or word == "N":
            break
        names.append(word)
    command, _ = resolve(names, resilient=True) if names else (ROOT_COMMAND, None)
    return command, [w.split("=")[0] for w in words if w.startswith("--")]


def check_paths(argv: list[str], where: str) -> None:
    for word in argv:
        if PATH_RE.fullmatch(word):
            assert (ROOT / word).exists(), f"{where}: {word} does not exist"


@pytest.mark.parametrize("line", readme_commands())
def test_every_command_in_the_readme_parses(line: str) -> None:
    argv = argv_of(line)
    if argv is None:
        command, options = synopsis_options(line)
        known = {o for p in command.params for o in [*p.opts, *p.secondary_opts]}
        assert set(options) <= known, f"README: {line}: {set(options) - known} unknown"
        return
    if len(argv) == 1 and not argv[0].startswith("-"):  # a command named in prose
        command, _ = resolve(argv, resilient=True)
        assert command.name == argv[0], line
        return
    try:
        resolve(argv)
    except UsageError as exc:
        pytest.fail(f"README: {line}: {exc}")
    check_paths(argv, f"README: {line}")


@pytest.mark.parametrize(("command", "line"), help_commands())
def test_every_example_in_help_parses_and_names_real_files(command: str, line: str) -> None:
    argv = argv_of(line)
    assert argv is not None, f"{command} --help: {line} is not a command"
    try:
        resolve(argv)
    except UsageError as exc:
        pytest.fail(f"{command} --help: {line}: {exc}")
    check_paths(argv, f"{command} --help: {line}")


def test_the_checks_catch_a_wrong_example() -> None:
    with pytest.raises(UsageError):
        resolve(["init", "x", "--target", "splunk"])
    with pytest.raises(UsageError):
        resolve(["sync", "m.yaml", "--no-such-option"])
    with pytest.raises(AssertionError, match="does not exist"):
        check_paths(["mappings/mlflow-excel.yaml"], "help")
    assert argv_of("annobridge sync MAPPING [--dry-run]") is None
    assert argv_of("x && annobridge sync a.yaml --json > out.json 2>&1") == [
        "sync",
        "a.yaml",
        "--json",
    ]


def test_every_path_the_readme_names_exists_or_is_made_by_the_steps() -> None:
    for path in sorted(set(PATH_RE.findall(README))):
        if (ROOT / path).exists():
            continue
        probes = [path, path.rstrip("/") + "/probe"]  # a file, or a folder's contents
        done = subprocess.run(["git", "check-ignore", *probes], cwd=ROOT, capture_output=True)
        ignored = done.returncode == 0
        assert ignored, f"README names {path}: it does not exist and is not a generated file"


def mapping_files() -> list[str]:
    names = set(PATH_RE.findall(README))
    for _, line in help_commands():
        names |= set(PATH_RE.findall(line))
    return sorted(n for n in names if n.endswith((".yaml", ".yml")))


@pytest.mark.parametrize("name", mapping_files())
def test_every_mapping_the_docs_name_loads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = ROOT / name
    for var in re.findall(r"\$\{(\w+)\}", path.read_text(encoding="utf-8")):
        monkeypatch.setenv(var, "placeholder-for-the-test")  # variables without a default
    assert load_mapping(path).annotations
