"""The shape of the package (BUILD.md, "The house"): imports flow one way, the backend is
asked about in one place, no module grows past 400 lines or imports more than 8 of its
siblings."""

import ast
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.join(os.path.dirname(HERE), "kd_keras")


def module_names():
    """kd_keras module name -> its file."""
    found = {}
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                found[".".join(parts)] = path
    return found


def imports_of(path, modules):
    """The kd_keras modules a file imports, at any depth of its code (an import inside a
    function still makes the dependency)."""
    package = os.path.relpath(os.path.dirname(path), os.path.dirname(PACKAGE)).replace(
        os.sep, ".")
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            # The deepest kd_keras module the name lies in ("kd_keras.data.batching.pack"
            # -> kd_keras.data.batching).
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target.startswith("kd_keras"):
                found.add(target)
    return found


def import_graph():
    modules = module_names()
    graph = {name: imports_of(path, modules) for name, path in modules.items()}
    for name, targets in graph.items():
        # A package's __init__ is imported with each of its modules: not a dependency
        # of the module on its package.
        targets.discard(name)
        for parent in [name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)]:
            targets.discard(parent)
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_inside_kd_keras():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_backend_is_asked_about_in_one_place():
    asking = sorted(name for name, path in module_names().items()
                    if re.search(r"backend\(\)", open(path, encoding="utf-8").read()))
    assert asking == ["kd_keras.backends"], asking



def test_no_module_is_longer_than_400_lines():
    long = {name: n for name, path in module_names().items()
            if (n := len(open(path, encoding="utf-8").read().splitlines())) >= 400}
    assert not long, long


def test_no_module_imports_more_than_8_of_its_siblings():
    """Siblings: the other modules of its own package (a subpackage counts once)."""
    crowded = {}
    for name, targets in import_graph().items():
        package = name.rpartition(".")[0] if name in module_names() and not os.path.basename(
            module_names()[name]) == "__init__.py" else name
        siblings = {target[len(package) + 1:].split(".")[0] for target in targets
                    if target.startswith(package + ".")}
        if len(siblings) > 8:
            crowded[name] = sorted(siblings)
    assert not crowded, crowded
