"""The house's check: the rules of clipfit's layout that a linter does not know, over src/clipfit (standard library only).

    python scripts/check_house.py            every finding in src/clipfit; exit status 1 when there is one
    python scripts/check_house.py PATH ...   only the findings that involve these files or folders

It fails, naming each, on
- an import cycle at run time: modules of clipfit that import each other, directly or through others, by imports
  that execute while a program runs. That is every import statement but those under `if TYPE_CHECKING:` (which
  never executes): one at module level executes when the module is loaded, one inside a function when the function
  is called; deferring an import into a function changes when it runs, not that the two modules depend on each
  other, so it counts. Importing `a.b.c` also executes `a/__init__.py` and `a/b/__init__.py`; that is not counted as
  an edge (a package that re-exports its modules would otherwise be a cycle with each). Imports built from strings at
  run time (`importlib.import_module(name)`) are not seen;
- an upward import: a module imports one of a higher layer (`LAYERS`, bottom to top; an import may go to the same
  or a lower layer). Every import counts here, `TYPE_CHECKING` ones too: naming a higher layer's type still ties
  the lower layer to it (declare a `typing.Protocol` in the lower layer instead). A module in no layer is a finding
  too: a new module is placed in `LAYERS` when it is added;
- a file of src/ over `MAX_FILE_LINES` lines, a function (or method) over `MAX_FUNCTION_LINES` lines, counted from
  its `def` line to its last line (a nested function counts in its own right and inside the one around it).
"""
from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PACKAGE = "clipfit"
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80

# The layers, bottom to top: (name, the modules or packages in it, relative to the package).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("errors", "io", "progress", "threads", "registry", "hub", "tokenizer", "plots", "version")),
    ("recipes and typed settings", ("recipes", "config")),  # config's TrainConfig takes its defaults from a recipe
    ("backbone", ("backbone", "families", "convert_openclip")),
    ("data", ("data",)),
    ("method", ("method",)),
    ("engine", ("engine", "pretrain")),
    ("analyses and protocols", ("analyses", "protocols")),
    ("api", ("api",)),
    ("papers", ("papers",)),
    ("command line and package root", ("cli", "__main__", "")),  # "": clipfit/__init__.py
]


@dataclass(frozen=True)
class Import:
    """One import of a clipfit module by another: where it is, and whether it ever runs (not TYPE_CHECKING)."""

    source: str  # the importing module
    target: str  # the imported module
    file: Path
    line: int
    function: str | None  # the function it sits in; None at module level
    runs: bool  # False under `if TYPE_CHECKING:`

    def where(self) -> str:
        inside = f", in {self.function}" if self.function else ""
        return f"{_rel(self.file)}:{self.line}{inside}"


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(src: Path, package: str = PACKAGE) -> dict[str, Path]:
    """{module name: file} of every module of the package under `src`."""
    return {module_name(p, src): p for p in sorted((src / package).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, str | None, bool]]:
    """(import node, the function it is in, whether it runs) of every import statement in `tree`."""

    def walk(node: ast.AST, function: str | None, runs: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, str | None, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, function, runs
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from walk(child, f"{function}.{child.name}" if function else child.name, runs)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), function, False)
                for stmt in child.orelse:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), function, runs)
            else:
                yield from walk(child, function, runs)

    yield from walk(tree, None, True)


def _targets(node: ast.Import | ast.ImportFrom, name: str, is_package: bool, known: set[str]) -> list[str]:
    """The clipfit modules an import statement of module `name` loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in known]
    if node.level:
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[:len(base) - node.level + 1]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    out = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known]  # `from pkg import module`
    if mod in known and len(out) < len(node.names):  # names defined in `mod` itself
        out.insert(0, mod)
    return out


def imports(src: Path, package: str = PACKAGE) -> tuple[dict[str, Path], list[Import]]:
    """Every module and every import among them."""
    mods = modules(src, package)
    found = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, function, runs in _imports(tree):
            for target in _targets(node, name, path.name == "__init__.py", set(mods)):
                if target != name:
                    found.append(Import(name, target, path, node.lineno, function, runs))
    return mods, found


def cycles(mods: Iterable[str], edges: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative), sorted."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for e in edges:
        graph[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def layer_of(module: str, package: str = PACKAGE) -> int | None:
    """The index in `LAYERS` of a module (by its first name under the package), or None when it is in none."""
    first = module.split(".")[1] if "." in module else ""
    for i, (_, members) in enumerate(LAYERS):
        if first in members:
            return i
    return None


def _layer(i: int | None) -> str:
    return "no layer" if i is None else f"layer {i} {LAYERS[i][0]}"


def long_functions(path: Path) -> Iterator[tuple[int, str, int]]:
    """(line, qualified name, lines) of each function of the file over the limit."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[int, str, int]]:
        for child in ast.iter_child_nodes(node):
            name = prefix
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                n = child.end_lineno - child.lineno + 1
                if not isinstance(child, ast.ClassDef) and n > MAX_FUNCTION_LINES:
                    yield child.lineno, name, n
                name += "."
            yield from walk(child, name)

    yield from walk(tree, "")


def findings(src: Path = SRC, package: str = PACKAGE) -> list[tuple[set[Path], str]]:
    """Every finding: (the files it involves, one line naming it)."""
    mods, edges = imports(src, package)
    out: list[tuple[set[Path], str]] = []
    running = [e for e in edges if e.runs]
    for comp in cycles(mods, running):
        links: dict[tuple[str, str], list[str]] = {}
        for e in running:
            if e.source in comp and e.target in comp:
                links.setdefault((e.source, e.target), []).append(e.where())
        lines = [f"\n  {a} -> {b} ({'; '.join(w)})" for (a, b), w in sorted(links.items())]
        out.append(({mods[m] for m in comp}, f"import cycle at run time among {', '.join(comp)}:" + "".join(lines)))
    unplaced: dict[str, list[str]] = {}
    for name in mods:
        if layer_of(name, package) is None:
            unplaced.setdefault(name.split(".")[1], []).append(name)
    for first, names in unplaced.items():
        out.append(({mods[n] for n in names}, f"{', '.join(names)}: in no layer; add {first!r} to LAYERS in "
                                               "scripts/check_house.py"))
    for e in edges:
        a, b = layer_of(e.source, package), layer_of(e.target, package)
        if a is not None and b is not None and b > a:
            kind = "" if e.runs else " (for type checking only)"
            out.append(({e.file}, f"upward import{kind}: {e.source} ({_layer(a)}) imports {e.target} ({_layer(b)}) "
                                  f"at {e.where()}"))
    for path in mods.values():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_FILE_LINES:
            out.append(({path}, f"{_rel(path)}: {n} lines, over {MAX_FILE_LINES}"))
        for line, name, size in long_functions(path):
            out.append(({path}, f"{_rel(path)}:{line}: function {name} has {size} lines, over {MAX_FUNCTION_LINES}"))
    return out


def main(argv: list[str]) -> int:
    only = [Path(a).resolve() for a in argv]
    found = [text for files, text in findings()
             if not only or any(f == p or p in f.parents for f in files for p in only)]
    for text in found:
        print(text)
    where = ", ".join(argv) if argv else f"src/{PACKAGE}"
    print(f"house check of {where}: " + (f"{len(found)} finding(s)" if found else "ok"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
