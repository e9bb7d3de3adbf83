"""Imports go one way (STYLE.md "Layering", issue #17 item 8): the static import graph of the
gan_zoo modules (every import statement, function-level ones included, read with ast) has no
cycle, and nothing in gan_zoo.train imports gan_zoo.tools. Nothing is imported or executed."""

import ast
import functools

from tests.conftest import REPO


def _modules() -> dict:
    """{dotted name: path} of every module under gan_zoo/ (packages by their __init__)."""
    out = {}
    for path in sorted((REPO / "gan_zoo").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _targets(node, package: str, modules: dict) -> set:
    """gan_zoo modules an Import / ImportFrom names (a name imported from a package counts as
    its submodule when there is one, else as the package)."""
    def nearest(name: str):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name
    if isinstance(node, ast.Import):
        return {nearest(a.name) for a in node.names}
    base = node.module or ""
    if node.level:  # relative: from the importing module's package
        parts = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(parts + ([base] if base else []))
    return {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else nearest(base)
            for a in node.names}


@functools.cache
def _trees() -> dict:
    """{module name: (path, ast)} of gan_zoo, parsed once per test session."""
    return {name: (path, ast.parse(path.read_text(), str(path)))
            for name, path in _modules().items()}


@functools.cache
def import_graph() -> dict:
    modules, graph = _modules(), {}
    for name, (path, tree) in _trees().items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _targets(node, package, modules)
        graph[name] = {t for t in edges if t and t != name}
    return graph


def cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root), on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w), on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(comp)
    return out


def test_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [{"a", "b", "c"}]


def test_graph_reads_the_known_edges():
    graph = import_graph()
    assert "gan_zoo.data.sources" in graph["gan_zoo.data.tf_sources"]
    assert "gan_zoo.data.tf_sources" in graph["gan_zoo.data.registry"]  # a function-level import
    assert "gan_zoo.train.evaluation" in graph["gan_zoo.train.loop"]


def test_no_import_cycles():
    found = [sorted(c) for c in cycles(import_graph())]
    assert not found, f"import cycles among gan_zoo modules: {found}"


def test_train_does_not_import_tools():
    bad = {m: sorted(t for t in targets if t.startswith("gan_zoo.tools"))
           for m, targets in import_graph().items() if m.startswith("gan_zoo.train")}
    assert not {m: t for m, t in bad.items() if t}


def test_nothing_in_gan_zoo_imports_configs_or_experiments():
    for path, tree in _trees().values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level:
                assert (node.module or "").split(".")[0] not in ("configs", "experiments"), path
            if isinstance(node, ast.Import):
                for a in node.names:
                    assert a.name.split(".")[0] not in ("configs", "experiments"), path
