"""The house rules of the package, checked on its source: no import circle, no arrow from a lower layer up.

Every `import` counts, also the ones inside functions and under `TYPE_CHECKING`: a lazy import still ties the two
modules together for a reader. The layers are listed in docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("restoration", "data_prep")

ENTRY_POINTS = (  # the command lines and the MLflow model's entry file: nothing below them imports them
    "restoration.train", "restoration.predict", "restoration.export", "restoration.demo", "restoration.evaluate",
    "restoration.convert_mat", "restoration.pyfunc_entry",
)  # fmt: skip

# lowest first; a module may import its own layer or the ones below, never above (docs/architecture.md, same numbers)
LAYERS: list[tuple[str, ...]] = [
    (  # 0: building blocks: no training, no files of runs
        "restoration.config", "restoration.data", "restoration.models", "restoration.losses", "restoration.metrics",
        "restoration.preemption", "restoration.optim", "restoration.inference", "restoration.distributed",
        "restoration.precision", "restoration.throughput", "restoration.anchors",
        "restoration.cli_help",  # argparse help with defaults, for every command line
    ),
    (  # 1: files
        "restoration.checkpoint", "restoration.carry", "restoration.image_io", "restoration.image_decoding",
        "restoration.models.mat_checkpoint",  # official MAT checkpoints: reads files, so above restoration.models
        "restoration.scoring",  # prediction folders, zips and the anchors scored like a submission
        "restoration.data.shard_sources", "restoration.data.shard_build", "restoration.data.builtin",  # shard building
        "restoration.run_status",  # a run directory: start, resume, done or refuse
    ),
    ("restoration.weights",),  # 2: exported weights and the network table
    (  # 3: the recipe, tracking and what a run records of its origin, the pipeline
        "restoration.recipe", "restoration.tracking", "restoration.run_metadata", "restoration.pipeline",
    ),
    # 4: stages, validation through the pipeline, the checks a training makes before it creates anything
    ("restoration.tasks", "restoration.validation", "restoration.preflight"),
    ("restoration.mlflow_model", "restoration.model_card"),  # 5: the pipeline as an MLflow model, its card
    (*ENTRY_POINTS, "restoration.trainer", "data_prep"),  # 6: entry points and CLIs (restoration-shards), the trainer
]  # fmt: skip

# where restoring an image or running a stage must never depend on which stage or network it is: they go through
# roles (`weights.NETWORK_TABLE`) and stage attributes (`Task.scores_masks`, `Task.logs_model`)
NAME_FREE = (
    "restoration/trainer.py",
    "restoration/pipeline.py",
    "restoration/mlflow_model.py",
    "restoration/tasks/parts.py",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str) -> set[str]:
    """Project modules imported anywhere in the file (absolute and relative imports)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    for top in PACKAGES:  # the top-level package files only say what the package is
        files.pop(top)
    edges = {}
    for name, path in files.items():
        # `from pkg import module` names a module; `from module import function` names the module itself
        edges[name] = {m for m in imports_of(path, name) if m in files and m != name}
    return edges


def layer(module: str) -> int:
    """The layer of the longest entry of LAYERS that names `module` or a package above it (so
    `restoration.data.shard_build` is placed apart from the rest of `restoration.data`)."""
    matches = [(len(p), level) for level, prefixes in enumerate(LAYERS) for p in prefixes
               if module == p or module.startswith(p + ".")]  # fmt: skip
    if not matches:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and to docs/architecture.md")
    return max(matches)[1]


def test_every_module_has_a_layer():
    for module in graph():
        layer(module)


def test_no_import_points_up():
    upward = [
        f"{src} (layer {layer(src)}) imports {dst} (layer {layer(dst)})"
        for src, dsts in graph().items()
        for dst in dsts
        if layer(dst) > layer(src)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_circle():
    edges = graph()
    cycles = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_lazy_relative_and_type_checking_imports(tmp_path):
    source = tmp_path / "x.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from restoration.recipe import TrainConfig\n"
        "def f():\n    from restoration.train import main\nfrom . import weights\n"
    )
    found = imports_of(source, "restoration.x")
    assert {"restoration.recipe", "restoration.train", "restoration.weights"} <= found


def test_the_longest_matching_entry_gives_the_layer():
    assert layer("restoration.data.shards") == 0
    assert layer("restoration.data.shard_build") == layer("restoration.image_io") == 1


def test_package_never_imports_entry_points():
    """Nothing in `restoration/` imports `data_prep` or a command line; only the entry points import each other (the
    demo runs train, predict and evaluate)."""
    bad = set()
    for path in sorted((ROOT / "restoration").rglob("*.py")):
        src = module_name(path)
        for dst in imports_of(path, src):
            top = next((e for e in (*ENTRY_POINTS, "data_prep") if dst == e or dst.startswith(e + ".")), None)
            if top and not (src in ENTRY_POINTS and top in ENTRY_POINTS):
                bad.add(f"{src} imports {top}")
    assert not bad, "\n".join(sorted(bad))


def test_no_stage_or_network_name_in_the_trainer_pipeline_model_and_shared_parts():
    from restoration.recipe import Stage
    from restoration.weights import NETWORK_TABLE

    names = {spec.name for spec in NETWORK_TABLE} | set(get_args(Stage))
    found = [
        f"{path}:{node.lineno}: {node.value!r}"
        for path in NAME_FREE
        for node in ast.walk(ast.parse((ROOT / path).read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
    ]
    assert not found, "\n".join(found)
