"""Dependencies point one way: app/ is the core and never imports attnscope/, not even inside a
function (a function-local import that dodges a cycle is still a cycle)."""

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import anywhere in the tree, function bodies included."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def test_app_never_imports_attnscope():
    files = sorted(APP.rglob("*.py"))
    assert len(files) > 10
    bad = [f"{f.relative_to(APP.parent)}:{line} imports {mod}" for f in files
           for line, mod in imported_modules(ast.parse(f.read_text(encoding="utf-8"), str(f)))
           if mod == "attnscope" or mod.startswith("attnscope.")]
    assert not bad, bad


def test_the_check_sees_function_local_imports():
    tree = ast.parse("def f():\n    from attnscope import result\n    import attnscope.cli\n")
    assert imported_modules(tree) == [(2, "attnscope"), (3, "attnscope.cli")]
