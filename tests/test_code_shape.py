"""The graph pipeline's code reads as code: comments say why in a line or two, figures live in docs."""
import ast
import io
import re
import tokenize
from pathlib import Path

GRAPHED = sorted((Path(__file__).parent.parent / "src" / "mmdet_opt" / "graphed").glob("*.py"))
MEASUREMENT = re.compile(r"\bms\b|H100|H200|images/s")


def docstring_lines(source: str) -> set:
    """Line numbers inside module, class and function docstrings."""
    lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def comment_lines(source: str) -> dict:
    """{line number: text} of the lines that are a ``#`` comment alone."""
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and not token.line[: token.start[1]].strip():
            comments[token.start[0]] = token.string
    return comments


def prose(source: str) -> dict:
    """{line number: text} of every comment and docstring line, inline comments included."""
    lines = source.splitlines()
    found = {n: lines[n - 1] for n in docstring_lines(source)}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            found[token.start[0]] = found.get(token.start[0], "") + token.string
    return found


def test_graphed_comments_are_at_most_a_third_of_code():
    comments = code = 0
    for path in GRAPHED:
        source = path.read_text()
        text = docstring_lines(source) | set(comment_lines(source))
        for number, line in enumerate(source.splitlines(), 1):
            if not line.strip():
                continue
            if number in text:
                comments += 1
            else:
                code += 1
    assert comments * 3 <= code, f"{comments} comment/docstring lines against {code} code lines"


def test_no_measurements_in_graphed_comments():
    found = [f"{path.name}:{number}: {text.strip()}" for path in GRAPHED
             for number, text in sorted(prose(path.read_text()).items()) if MEASUREMENT.search(text)]
    assert not found, "measured figures belong in docs/options.md:\n" + "\n".join(found)
