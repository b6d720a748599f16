"""The house by stage: data flows one way, files -> samples -> model -> depth -> metrics/pictures, with the
command line on top. A module never imports one of a higher layer (imports inside functions included)."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "depthforge"
# low to high; a module may import its own layer and lower ones
LAYERS = [
    {"errors", "registry", "encode", "files", "allocator"},
    {"data", "viz"},
    {"losses"},
    {"models"},
    {"recipe"},
    {"inference"},
    {"evaluation"},
    {"training"},
    {"bench", "serve"},
    {"cli", "__main__", "__init__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _top(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def _imports(path: Path) -> list[str]:
    mod = "depthforge." + ".".join(path.relative_to(PKG).with_suffix("").parts)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    pkg = pkg.removesuffix(".__init__")
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("depthforge"):
                out += [f"{target}.{a.name}" if target == "depthforge" else target for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("depthforge")]
    return out


def test_no_module_imports_a_higher_layer():
    wrong = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        me = "__init__" if rel == Path("__init__.py") else rel.parts[0].removesuffix(".py")
        for target in _imports(path):
            other = _top(target)
            if other in RANK and RANK[other] > RANK[me]:
                wrong.append(f"{rel} imports {target}")
    assert not wrong, wrong


def test_every_stage_folder_says_what_it_holds():
    for folder in PKG.iterdir():
        if (folder / "__init__.py").is_file():
            doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
            assert doc and doc.split(":")[0] == folder.name + "/", folder.name
            assert folder.name in RANK, f"{folder.name}: place it in LAYERS"


def test_no_module_imports_another_modules_private_names():
    """A leading underscore means "only this module uses it": importing one from elsewhere is a hidden coupling
    (issue 15 found `compare` importing `evaluate._open`, `_protocol_for`, `_test_spec`)."""
    found = []
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                found += [f"{path.relative_to(PKG)}: {a.name} from {'.' * node.level}{node.module or ''}"
                          for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, found


def test_top_level_modules_stay_small():
    """A module beside the stage folders is shared plumbing (errors, registry, files, encoders); past 150 lines it
    is a stage of its own and belongs in a folder that says what it holds."""
    big = {p.name: n for p in PKG.glob("*.py") if (n := len(p.read_text().splitlines())) > 150}
    assert not big, big
