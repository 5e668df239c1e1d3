"""The package's layers (README, "What is inside"): nothing imports upwards, nothing imports in a
circle, and model families never import each other; function-level imports included. Read from the
source with ``ast``, so an import inside a function counts as much as one at the top of a module."""

import ast
from pathlib import Path

import pixelzoo

PACKAGE = Path(pixelzoo.__file__).parent

# bottom first; a module may import its own layer and the ones below it. A name is a module or a
# package below ``pixelzoo``; a module's layer is that of the longest name that contains it.
LAYERS = [
    ["errors"],
    ["io", "devices", "threads", "imaging", "views"],
    ["nn", "heads", "data"],
    ["sampling"],
    ["registry"],
    ["zoo"],
    ["models.base"],
    ["models.autoregressive"],
    ["models.chain"],
    ["models.composites"],
    ["models"],           # the package's __init__, which gathers the rest
    ["pretrained"],
    ["training"],
    ["evaluation"],
    ["commands"],
    ["serve"],
    ["cli", "__main__", ""],  # "" is the package itself (pixelzoo/__init__.py)
]
RANK = {name: k for k, names in enumerate(LAYERS) for name in names}
#: folders whose members are families: none may import another (only the shared modules beside them)
FAMILIES = {
    "models.composites": {"agave", "defauw", "vqvae2", "grayscale_pyramid"},
    "models.autoregressive": {"gated_pixelcnn", "pixelcnnpp", "pixelsnail", "made"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rank_of(module: str) -> int:
    """The layer of ``pixelzoo.<name>...``: by the longest name of ``LAYERS`` that contains it."""
    rest = module.split(".")[1:]
    for k in range(len(rest), -1, -1):
        name = ".".join(rest[:k])
        if name in RANK:
            return RANK[name]
    raise AssertionError(f"module {module} is in no layer: add {rest[0]!r} to LAYERS (and to README)")


def family_of(module: str):
    """(folder, family) of a module inside a family folder, else None."""
    rest = module.split(".")[1:]
    for folder, members in FAMILIES.items():
        depth = len(folder.split("."))
        if ".".join(rest[:depth]) == folder and len(rest) > depth and rest[depth] in members:
            return folder, rest[depth]
    return None


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).is_dir() or (PACKAGE / rel).with_suffix(".py").is_file()


def imports_of(path: Path, source: str | None = None):
    """(line, imported module) for every pixelzoo import in the file, at any depth."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from P import X``: X is a module of package P, or else a name defined in P
            names = [f"{target}.{a.name}" if _is_module(f"{target}.{a.name}") else target for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name == "pixelzoo" or name.startswith("pixelzoo."):
                yield node.lineno, name


def test_every_module_is_in_a_layer():
    for path in PACKAGE.rglob("*.py"):
        rank_of(module_name(path))


def test_nothing_imports_upwards():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        for line, target in imports_of(path):
            if rank_of(target) > rank_of(module):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({module}, layer {rank_of(module)}) "
                           f"imports {target} (layer {rank_of(target)})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        graph.setdefault(module_name(path), set()).update(target for _, target in imports_of(path))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of two or more modules (or a module importing itself), as lists."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_anywhere():
    found = cycles(import_graph())
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_circle_check_finds_circles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_families_never_import_each_other():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        own = family_of(module)
        if own is None:
            continue
        for line, target in imports_of(path):
            other = family_of(target)
            if other is not None and other[0] == own[0] and other != own:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({own[1]}) imports {target} ({other[1]})")
    assert not bad, "one family imports another:\n" + "\n".join(bad)


def test_layers_are_ranked_by_the_longest_name():
    assert rank_of("pixelzoo.models.composites.agave.model") > rank_of("pixelzoo.models.chain.chain") > \
        rank_of("pixelzoo.models.autoregressive.model") > rank_of("pixelzoo.models.base") > rank_of("pixelzoo.registry")
    assert rank_of("pixelzoo.models") > rank_of("pixelzoo.models.composites")
    assert family_of("pixelzoo.models.composites.defauw.model") == ("models.composites", "defauw")
    assert family_of("pixelzoo.models.composites.code_prior") is None
    assert family_of("pixelzoo.models.autoregressive.pixelsnail.stepper") == ("models.autoregressive", "pixelsnail")


def test_the_check_sees_function_level_and_relative_imports():
    """The reader itself: a function-level relative import is found, resolved and ranked above."""
    probe = PACKAGE / "sampling" / "probe.py"   # never written: its source is given
    source = "from ..errors import ConfigError\n\ndef f():\n    from ..training import Trainer\n"
    assert [t for _, t in imports_of(probe, source)] == ["pixelzoo.errors", "pixelzoo.training"]
    assert rank_of("pixelzoo.training") > rank_of(module_name(probe)) > rank_of("pixelzoo.errors")


def test_no_folder_holds_more_than_a_fifth_of_the_package():
    """A folder's own modules (not its subfolders') stay under a fifth of the package's lines, so that
    no folder grows back into a flat heap of roles."""
    lines = {path: len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    total = sum(lines.values())
    folders: dict[Path, int] = {}
    for path, n in lines.items():
        folders[path.parent] = folders.get(path.parent, 0) + n
    big = {str(f.relative_to(PACKAGE.parent)): n for f, n in folders.items() if n > total / 5}
    assert not big, f"folders over a fifth of the package's {total} lines: {big}"
