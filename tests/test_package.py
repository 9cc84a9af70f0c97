"""The package's shape: no import cycle (lazy imports included), modules a
reader can hold in mind, and each list of names written once."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "tfseg"
# No module of tfseg over this many lines; none of the training recipe's
# files over `RECIPE_LINES`.
MODULE_LINES = 450
RECIPE_LINES = 300


def module_names():
    """`{module name: path}` of every module of tfseg."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(path, modules):
    """The tfseg modules `path` imports anywhere (in functions too), and
    those it names as strings (the lazy registries, `import_module`)."""
    tree = ast.parse(path.read_text(), str(path))
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                targets.add(submodule if submodule in modules else node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in modules and node.value != "tfseg":
                targets.add(node.value)
    return {target for target in targets if target in modules}


def import_graph():
    modules = module_names()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def find_cycle(graph):
    """One import cycle of `graph` as a list of modules, or `None`."""
    state = {}  # 1: on the current path, 2: done
    path = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_lazy_and_string_imports():
    graph = import_graph()
    # A lazy import inside a function: the command handlers.
    assert "tfseg.train.recipe" in graph["tfseg.cli.commands"]
    # A module named in a registry of lazy imports.
    assert "tfseg.data.batches" in graph["tfseg.data"]
    assert "tfseg.train.optimizer" in graph["tfseg"]


def test_tfseg_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_is_too_long_to_read():
    lines = {
        name: len(path.read_text().splitlines())
        for name, path in module_names().items()
    }
    too_long = {name: n for name, n in lines.items() if n > MODULE_LINES}
    assert not too_long, f"modules over {MODULE_LINES} lines: {too_long}"
    recipe = {
        name: n
        for name, n in lines.items()
        if name.startswith("tfseg.train.") and n > RECIPE_LINES
    }
    assert not recipe, f"training files over {RECIPE_LINES} lines: {recipe}"


def test_model_and_encoder_names_are_written_once():
    """The names live in `tfseg.models.registry` (the models) and
    `tfseg.models.applications` (the encoders); no other module of tfseg
    spells a whole list out."""
    from tfseg.models.registry import list_encoders
    from tfseg.models.registry import list_models
    from tfseg.models.registry import pretrained_encoders

    lists = [list_models(), list_encoders(), pretrained_encoders()]
    homes = {PACKAGE / "models" / "registry.py", PACKAGE / "models" / "applications.py"}
    for name, path in module_names().items():
        if path in homes:
            continue
        text = path.read_text()
        for names in lists:
            spelled = [n for n in names if f'"{n}"' in text or f"{n}," in text]
            assert len(spelled) < len(names), f"{name} lists {names} again"
