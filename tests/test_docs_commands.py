"""The command lines README.md and docs/*.md give are ones the parsers take: every `dogsearch ...` line (code blocks
and inline code) names a command that exists, options it has and values its choices allow, as
`dogsearch.cli.parser()` reads them; every `python scripts/X.py ...` and `python -m dogsearch.X ...` line names a
script or module that exists and options its parser declares (rebuilt from its add_argument calls: the scripts
import torch before they build it). Users copy these lines: a renamed flag fails here, with the doc's file and
line."""
from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import functools
import io
import itertools
import pickle
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dogsearch.cli import parser as dogsearch_parser
from tests.conftest import REPO

DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
FENCE = re.compile(r"^\s*(```|~~~)\s*(\w*)")
SHELL_FENCES = {"", "sh", "bash", "shell", "console"}  # json, yaml, python blocks hold no command lines
SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
SEPARATORS = {"|", "||", "&&", ";", "&"}  # between commands on a code line; in inline code `a | b` is a choice
REDIRECTS = {">", ">>", "<", ">&", "&>"}
# What stands for a value the reader fills in: DIR, N, NAME, <id>, $D, and the ... of "and so on".
PLACEHOLDER = re.compile(r"^(<[^>]*>|[A-Z][A-Z0-9_]*(\.\.\.)?|\$\w+|.*\.\.\..*)$")


@dataclass(frozen=True)
class Line:
    where: str  # docs/pose.md:134
    text: str  # as written, continuation lines joined
    in_code_block: bool  # a line to run; inline code in prose may name a command without what it requires


@dataclass(frozen=True)
class Call:
    line: Line
    program: str  # "dogsearch", a script's path or a module's name, as written
    args: tuple[str, ...]


def doc_lines(path: Path, name: str) -> Iterator[Line]:
    """The code lines of a Markdown file (fenced shell blocks and indented blocks, `\\` continuations joined) and its
    inline code spans (which may wrap across lines)."""
    code: list[tuple[int, str]] = []
    paragraphs: list[list[tuple[int, str]]] = [[]]
    fence, shell, indented, blank = "", False, False, True
    for number, text in enumerate(path.read_text().splitlines(), 1):
        stripped = text.strip()
        if fence:
            if stripped.startswith(fence):
                fence = ""
            elif shell:
                code.append((number, stripped))
            continue
        if match := FENCE.match(text):
            fence, shell = match.group(1), match.group(2) in SHELL_FENCES
            paragraphs.append([])
            continue
        indented = bool(stripped) and text.startswith("    ") and (blank or indented)
        blank = not stripped
        if indented:
            code.append((number, stripped))
        elif stripped:
            paragraphs[-1].append((number, text))
        else:
            paragraphs.append([])
    start, joined = 0, ""
    for number, text in code:
        start, joined = (start, joined) if joined else (number, "")
        if text.endswith("\\"):
            joined += text[:-1] + " "
            continue
        yield Line(f"{name}:{start}", (joined + text).removeprefix("$ "), True)
        if comment := re.search(r"(?:^|\s)#\s*(.*)", joined + text):  # `# or: dogsearch bench ...`: a mention
            yield Line(f"{name}:{start}", comment.group(1), False)
        joined = ""
    for paragraph in filter(None, paragraphs):
        text = "\n".join(line for _, line in paragraph)
        for span in SPAN.finditer(text):
            number = paragraph[0][0] + text.count("\n", 0, span.start())
            yield Line(f"{name}:{number}", " ".join(span.group(2).split()), False)


def calls(line: Line) -> Iterator[Call]:
    """The `dogsearch`, `python scripts/X.py` and `python -m dogsearch.X` commands on a line, with their arguments
    (comments, redirections and, on a code line, what other commands a pipe or && joins left out)."""
    lexer = shlex.shlex(line.text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # an unmatched quote: prose in backticks, not a command
        return
    separators = SEPARATORS if line.in_code_block else SEPARATORS - {"|"}
    segment: list[str] = []
    for token in [*tokens, ";"]:
        if token not in separators:
            segment.append(token)
            continue
        for i, word in enumerate(segment):
            if word == "dogsearch" or word.endswith("/dogsearch"):
                yield Call(line, "dogsearch", tuple(without_redirections(segment[i + 1:])))
                break
            if re.fullmatch(r"(.*/)?python3?", word):
                after = [*segment[i + 1:], "", ""]
                if re.fullmatch(r"scripts/.*\.py", after[0]):
                    yield Call(line, after[0], tuple(without_redirections(segment[i + 2:])))
                elif after[0] == "-m" and after[1].startswith("dogsearch."):
                    yield Call(line, after[1], tuple(without_redirections(segment[i + 3:])))
                break
        segment = []


def without_redirections(words: list[str]) -> Iterator[str]:
    skip = False
    for word, after in itertools.pairwise([*words, ""]):
        if skip or (word.isdigit() and after in REDIRECTS):
            skip = False
            continue
        skip = word in REDIRECTS
        if not skip:
            yield word


def is_option(word: str) -> bool:
    return word.startswith("-") and len(word) > 1 and not re.match(r"-\.?\d", word)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser] | None:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return actions[0].choices if actions else None


def value_problem(action: argparse.Action, value: str, what: str) -> str | None:
    if PLACEHOLDER.match(value):
        return None
    if action.choices is not None and value not in action.choices:
        return f"{what} {value}: not one of {', '.join(map(str, action.choices))}"
    if callable(action.type):
        try:
            action.type(value)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            return f"{what} {value}: {exc}"
    return None


def synopsis_problems(parser: argparse.ArgumentParser, prog: str, args: tuple[str, ...]) -> list[str]:
    """What a line gets wrong, read as a synopsis: optional parts in [ ], alternatives split by |, placeholders for
    values. The command must exist, each option be its command's, each value be among the option's choices."""
    words = [w for w in (a.strip("[]") for a in args) if w]
    command, siblings, positional, problems = [prog], {}, 0, []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "|":  # `jobs list | show ID`: the next may be another subcommand of the same command
            if i < len(words) and words[i] in siblings:
                command[-1], parser, positional = words[i], siblings[words[i]], 0
                i += 1
            continue
        if is_option(word):
            name, equals, value = word.partition("=")
            action = parser._option_string_actions.get(name)
            if action is None:
                near = difflib.get_close_matches(name, parser._option_string_actions, n=1)
                problems.append(f"`{' '.join(command)}` has no option {name}"
                                + (f" (did you mean {near[0]}?)" if near else ""))
                continue
            if action.nargs == 0:
                continue
            values = [value] if equals else []
            many = action.nargs in ("*", "+") or (isinstance(action.nargs, int) and action.nargs > 1)
            while not equals and i < len(words) and not is_option(words[i]) and words[i] != "|":
                values.append(words[i])
                i += 1
                if not many:
                    break
            while values and i + 1 < len(words) and words[i] == "|" and not is_option(words[i + 1]) \
                    and words[i + 1] not in siblings:  # --labels folders|dogs|csv
                values.append(words[i + 1])
                i += 2
            for value in values:
                for one in value.strip("{}").split(",") if value.startswith("{") else [value]:
                    if problem := value_problem(action, one, f"`{' '.join(command)}` {name}"):
                        problems.append(problem)
            continue
        if (choices := subcommands(parser)) is not None:
            if PLACEHOLDER.match(word):
                break
            if word not in choices:
                near = difflib.get_close_matches(word, choices, n=1)
                problems.append(f"`{' '.join(command)}` has no command {word}"
                                + (f" (did you mean {near[0]}?)" if near else ""))
                break
            command.append(word)
            siblings, parser, positional = choices, choices[word], 0
            continue
        positionals = [a for a in parser._actions if not a.option_strings]
        if positional < len(positionals):  # more than there are: for the full parse to judge
            action = positionals[positional]
            if problem := value_problem(action, word, f"`{' '.join(command)}` {action.dest}"):
                problems.append(problem)
            positional += action.nargs not in ("*", "+")
    return problems


def parse_problems(parser: argparse.ArgumentParser, args: tuple[str, ...], whole: bool) -> list[str]:
    """argparse's own verdict on a line with nothing left to fill in; a mention in prose may leave out what is
    required (`dogsearch eval identity` runs on a folder it does not name) and the value of the option it ends on
    (`dogsearch index --url`)."""
    error = io.StringIO()
    with contextlib.redirect_stderr(error), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(list(args))
            return []
        except SystemExit:
            pass
    message = error.getvalue().strip().splitlines()[-1]
    elided = "arguments are required" in message or (args and is_option(args[-1]) and "expected" in message)
    return [] if elided and not whole else [message]


def is_synopsis(args: tuple[str, ...]) -> bool:
    return any(w.startswith("[") or w.endswith("]") or w == "|" or PLACEHOLDER.match(w) for w in args)


BUILDERS = ("ArgumentParser", "add_subparsers", "add_parser", "add_argument_group", "add_mutually_exclusive_group")
KEPT = ("action", "nargs", "choices", "required", "dest", "const", "type", "aliases")  # what decides which lines parse


def literal(node: ast.expr) -> object:
    """A keyword's value where the source spells it out; argparse.BooleanOptionalAction, int and float by name."""
    if isinstance(node, ast.Attribute) and node.attr == "BooleanOptionalAction":
        return argparse.BooleanOptionalAction
    if isinstance(node, ast.Name) and node.id in ("int", "float"):
        return {"int": int, "float": float}[node.id]
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None  # choices named by a constant, type=Path: left open


def syntax_tree(path: Path) -> ast.Module:
    """The file's syntax tree, parsed in an interpreter of its own: in a long test process CPython 3.11's ast.parse
    can fail on any source ("SystemError: AST constructor recursion depth mismatch", CPython gh-106905: a depth it
    counts per interpreter, not per thread, and does not always undo), as a full run showed. Trees are picklable."""
    parse = "import ast, pickle, sys; sys.stdout.buffer.write(pickle.dumps(ast.parse(open(sys.argv[1]).read())))"
    done = subprocess.run([sys.executable, "-c", parse, str(path)], capture_output=True, timeout=60, check=True)
    return pickle.loads(done.stdout)  # noqa: S301 (our own interpreter's answer)


def script_parser(path: Path) -> argparse.ArgumentParser | None:
    """The parser a script builds, rebuilt from its source's calls to argparse in their order (the scripts import
    torch and the models before they build it); the dogsearch parser for a script that hands its arguments to
    `dogsearch.cli.main`; None for a script without a parser."""
    tree = syntax_tree(path)
    if any(isinstance(n, ast.ImportFrom) and n.module == "dogsearch.cli" and any(a.name == "main" for a in n.names)
           for n in ast.walk(tree)):
        return dogsearch_parser()
    names = {id(a.value): a.targets[0].id for a in ast.walk(tree)
             if isinstance(a, ast.Assign) and isinstance(a.targets[0], ast.Name)}
    built: dict[str, argparse.ArgumentParser] = {}
    root = None
    for node in sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call)), key=lambda n: (n.lineno, n.col_offset)):
        method = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        receiver = built.get(getattr(getattr(node.func, "value", None), "id", ""))
        kwargs = {k.arg: v for k in node.keywords if k.arg in KEPT and (v := literal(k.value)) is not None}
        args = [literal(a) for a in node.args]
        if method == "add_argument" and receiver is not None:
            receiver.add_argument(*args, **kwargs)
        elif method in BUILDERS and (receiver is not None or method == "ArgumentParser"):
            made = (argparse.ArgumentParser(prog=path.name) if method == "ArgumentParser"
                    else getattr(receiver, method)(*args, **{k: v for k, v in kwargs.items() if k != "type"}))
            root = root or made
            if id(node) in names:
                built[names[id(node)]] = made
    return root


def source(program: str) -> Path:
    return REPO / (program if program.endswith(".py") else program.replace(".", "/") + ".py")


@functools.cache
def parser_of(program: str) -> argparse.ArgumentParser | None:
    """Built once: parsing leaves a parser as it was."""
    return dogsearch_parser() if program == "dogsearch" else script_parser(source(program))


def call_problems(call: Call) -> list[str]:
    if PLACEHOLDER.match(source(call.program).stem):  # `python scripts/X.py ...`: any script
        return []
    if call.program != "dogsearch" and not source(call.program).is_file():
        return [f"no {'script' if call.program.endswith('.py') else 'module'} {call.program}"]
    if (parser := parser_of(call.program)) is None:
        options = [w for w in call.args if is_option(w.strip("[]"))]
        return [f"{call.program} takes no options: {' '.join(options)}"] if options else []
    problems = synopsis_problems(parser, call.program, call.args)
    if not problems and not is_synopsis(call.args):
        problems = parse_problems(parser, call.args, call.line.in_code_block)
    return problems


def doc_calls(path: Path) -> list[Call]:
    return [c for line in doc_lines(path, path.relative_to(REPO).as_posix()) for c in calls(line)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_command_line_the_doc_gives_parses(doc: Path) -> None:
    wrong = [f"{c.line.where}: `{c.line.text}`: {p}" for c in doc_calls(doc) for p in call_problems(c)]
    assert not wrong, "command lines the parsers refuse:\n" + "\n".join(wrong)


def test_the_docs_give_the_commands_this_test_reads() -> None:
    found = [c for doc in DOCS for c in doc_calls(doc)]
    assert sum(c.program == "dogsearch" for c in found) > 200 and sum(c.program != "dogsearch" for c in found) > 50
    commands = {c.args[0] for c in found if c.program == "dogsearch" and c.args and not PLACEHOLDER.match(c.args[0])}
    assert commands == set(subcommands(dogsearch_parser())), "a command the docs never show, or a shown one missing"


def test_the_reader_finds_each_kind_of_line_and_says_what_is_wrong(tmp_path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Run `dogsearch index DIR [--labels folders|cats] [--url URL | --local]` or\n"
        "`dogsearch search IMAGE [-k N]\n  --breeed B`, then `dogsearch jobs list | show ID [--follow] | cancel ID`.\n"
        "\n"
        "```sh\n"
        "$ nice -n 10 .venv/bin/dogsearch eval detect $D/dogpose \\\n"
        "    --split held-out --runtime tensorrt   # a comment --not-an-option\n"
        "DOGSEARCH_BROKER_URL=redis:// dogsearch worker --pool solo 2>&1 | tee log && dogsearch serfe\n"
        "python scripts/decode-cost.py photos/*.jpg --repeat 3 --side x\n"
        "OPENBLAS_NUM_THREADS=1 python -m dogsearch.bench.watches --only rivals; python -m dogsearch.bench.nope\n"
        "```\n"
        "```json\n"
        '{"name": "dogsearch", "--bad": 1}\n'
        "```\n"
        "\n"
        "    python scripts/no-such-script.py\n"
        "    python scripts/X.py --any   # X: a placeholder\n")
    found = [(c.line.where, p) for line in doc_lines(doc, "doc.md") for c in calls(line) for p in call_problems(c)]
    assert found == [
        ("doc.md:6", "`dogsearch eval detect` --runtime tensorrt: not one of torch, onnxruntime, openvino"),
        ("doc.md:8", "`dogsearch` has no command serfe (did you mean serve?)"),
        ("doc.md:9", "`scripts/decode-cost.py` --side x: invalid literal for int() with base 10: 'x'"),
        ("doc.md:10", "no module dogsearch.bench.nope"),
        ("doc.md:16", "no script scripts/no-such-script.py"),
        ("doc.md:1", "`dogsearch index` --labels cats: not one of folders, dogs, csv"),
        ("doc.md:2", "`dogsearch search` has no option --breeed (did you mean --breed?)"),
    ]
