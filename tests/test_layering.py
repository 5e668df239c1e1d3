"""The package's layers (README, "What is inside"): nothing imports upwards, function-level imports
included. Read from the source with ``ast``, so an import inside a function counts as much as one at
the top of a module."""

import ast
from pathlib import Path

import pixelzoo

PACKAGE = Path(pixelzoo.__file__).parent

# bottom first; a module may import its own layer and the ones below it
LAYERS = [
    ["errors"],
    ["io", "devices", "imaging", "views", "nn", "heads", "data", "threads"],
    ["sampling"],
    ["models", "registry", "pretrained"],
    ["training", "evaluation"],
    ["commands", "cli", "__main__", ""],  # "" is the package itself (pixelzoo/__init__.py)
]
RANK = {name: k for k, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rank_of(module: str) -> int:
    """The layer of ``pixelzoo.<top>...``: by its first component below the package."""
    rest = module.split(".")[1:]
    top = rest[0] if rest else ""
    assert top in RANK, f"module {module} is in no layer: add {top!r} to LAYERS (and to README)"
    return RANK[top]


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
            # ``from . import X``: X is a module, or else a name of the package (e.g. __version__)
            names = [target] if node.module else [f"{target}.{a.name}" if _is_module(f"{target}.{a.name}")
                                                  else target for a in node.names]
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


def test_the_check_sees_function_level_and_relative_imports():
    """The reader itself: a function-level relative import is found, resolved and ranked above."""
    probe = PACKAGE / "sampling" / "probe.py"   # never written: its source is given
    source = "from ..errors import ConfigError\n\ndef f():\n    from ..training import Trainer\n"
    assert [t for _, t in imports_of(probe, source)] == ["pixelzoo.errors", "pixelzoo.training"]
    assert rank_of("pixelzoo.training") > rank_of(module_name(probe)) > rank_of("pixelzoo.errors")
