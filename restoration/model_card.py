"""The model card: what a packaged pipeline restores, what is inside it, how it was trained and how well it scored,
as Markdown (`MODEL_CARD.md` in the MLflow model, and the description MLflow shows for it).

Why a card is built from the export directories and not from the MLflow run: the model travels without its run
(a directory copied to a serving machine, a registry in another workspace), so what a team needs to decide whether
to ship it has to travel inside it. Everything is read from files the trainer writes next to the weights
(`pipeline.json`, `inference_settings.json`, `val_anchors.json`) and from the run's `config.yaml`; a file that is
missing makes its section say so, never fails the export.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from restoration.config import from_dict
from restoration.data.builtin import builtin_shards_dir
from restoration.inference import InferenceSettings
from restoration.models.mat import MATConfig
from restoration.scoring import CONTEST_KEYS
from restoration.weights import (
    INFERENCE_NETWORKS,
    SETTINGS_TABLE_FILE,
    VAL_ANCHORS_FILE,
    WeightsSource,
    recorded_settings,
    resolve_source,
)

DESCRIPTION_LIMIT = 5000  # characters: the registry's description column (String(5000) in MLflow's SQL stores)
NETWORK_WHAT = {
    "inpainter": "MAT (mask-aware transformer, Li et al. 2022) paints the lost gray pixels",
    "colorizer": "a U-Net predicts the chroma of the inpainted gray",
    "restorer": "one U-Net GAN inpaints and colours at once (the notebook's baseline)",
    "mask_detector": "a U-Net finds the lost region where the exact contest rule does not",
}
ANCHOR_WHAT = {
    "input": "the masked input returned unchanged",
    "telea": "a classical fill of the gray (OpenCV Telea, or biharmonic without OpenCV), no colour",
    "ns": "a classical fill of the gray (OpenCV Navier-Stokes, or biharmonic without OpenCV), no colour",
    "biharmonic": "scikit-image's biharmonic fill of the gray, no colour",
    "true_gray": "the true gray of the ground truth: the best any gray answer can do",
}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _run_config(source: WeightsSource) -> tuple[dict[str, Any], Path] | None:
    """The training run's resolved config (`config.yaml` of the run that wrote `source`), if it is still there."""
    candidates = [source.origin] if source.origin and source.origin.name == "config.yaml" else []
    candidates.append(source.directory.parent / "config.yaml")  # runs/<name>/final -> runs/<name>
    for path in candidates:
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(raw, dict):
            return raw, path
    return None


def _scores_row(name: str, scores: dict[str, Any], note: str = "") -> str:
    cells = [f"{float(scores[k]):.4f}" if isinstance(scores.get(k), (int, float)) else "-" for k in CONTEST_KEYS]
    return f"| {name} | {' | '.join(cells)} | {note} |"


def _table_head(first: str) -> list[str]:
    return [f"| {first} | {' | '.join(CONTEST_KEYS)} | |", "|---" * (len(CONTEST_KEYS) + 2) + "|"]


def _networks(sources: list[WeightsSource]) -> list[str]:
    """One line per inference network the model holds (first source per network, as the packaging does)."""
    lines = []
    for spec in INFERENCE_NETWORKS:
        source = next((s for s in sources if s.file(spec.name) is not None), None)
        if source is None:
            continue
        section = source.meta.get(spec.section) or {}
        detail = ""
        if spec.role == "inpainter":
            try:
                arch = from_dict(MATConfig, section, f"{source.origin} mat").arch()
                detail = f"; preset `{section.get('preset', 'official512')}`, window {arch.img_resolution} px"
            except (TypeError, ValueError):
                detail = ""
        elif section.get("encoder"):
            detail = f"; encoder `{section['encoder']}`" + (f", {section['head']} head" if section.get("head") else "")
        lines.append(f"- `{spec.name}` ({spec.role}): {NETWORK_WHAT[spec.role]}{detail}")
    return lines


def _shards_dir(root: str, size: Any, run_config: Path | None, output_dir: Any) -> Path:
    """Where the shards of `data.root` are: the path itself, or for `builtin` the folder the demo builds next to the
    runs (`<output_dir>/demo-data/builtin-<size>/shards`; `output_dir` may be relative to where training ran, so the
    run directory's parent is tried first)."""
    if root != "builtin" or not size:
        return Path(root)
    # the run's own parent first (runs/<name>/config.yaml -> runs): a relative output_dir read from here could name
    # another project's runs
    outputs = [run_config.parent.parent] if run_config is not None else []
    outputs += [Path(output_dir)] if output_dir else []
    candidates = [builtin_shards_dir(o, int(size)) for o in outputs]
    return next((c for c in candidates if (c / "manifest.json").is_file()), Path(root))


def _data(source: WeightsSource) -> list[str]:
    """The training data: `pipeline.json` `data` when the trainer records it, else the run's `config.yaml`."""
    data, where, output_dir, run_config = source.meta.get("data"), source.origin, None, None
    if not isinstance(data, dict):
        found = _run_config(source)
        if found is not None:
            raw, run_config = found
            data, where, output_dir = raw.get("data"), run_config, (raw.get("run") or {}).get("output_dir")
    if not isinstance(data, dict) or "root" not in data:
        return ["Not recorded with these weights (no `data` section in `pipeline.json` and no run `config.yaml`)."]
    root = str(data["root"])
    size = data.get("image_size", source.meta.get("image_size"))
    builtin = " (the photos bundled with scikit-image, `make demo`)" if root == "builtin" else ""
    lines = [f"- shards: `{root}`{builtin}", f"- training resolution: {size} px crops", f"- from: `{where}`"]
    shards = _shards_dir(root, size, run_config, output_dir)
    totals = (_read_json(shards / "manifest.json") or {}).get("totals")
    if isinstance(totals, dict):
        counts = ", ".join(f"{totals[k]} {k}" for k in ("train", "val", "rejected") if k in totals)
        lines.append(f"- samples (shard manifest `{shards / 'manifest.json'}`): {counts}")
    else:
        lines.append("- sample counts: the shard manifest was not reachable when this card was written")
    return lines


def _validation(directory: Path) -> list[str]:
    """The val scores of each candidate setting and of the anchors, when the trainer wrote them next to the
    weights."""
    lines: list[str] = []
    table = _read_json(directory / SETTINGS_TABLE_FILE)
    scores = (table or {}).get("scores")
    if isinstance(scores, dict) and scores:
        chosen = table.get("chosen")
        chosen_label = InferenceSettings.from_recorded([chosen]).label() if isinstance(chosen, dict) else None
        lines += [f"Each inference setting tried on the {table.get('split', 'val')} split when training ended "
                  "(the best became the default):", ""]  # fmt: skip
        lines += _table_head("setting")
        lines += [_scores_row(label, s, "default" if label == chosen_label else "")
                  for label, s in scores.items() if isinstance(s, dict)]  # fmt: skip
    else:
        lines.append(
            f"No `{SETTINGS_TABLE_FILE}` with these weights: the candidate settings' val scores are not known here."
        )
    anchors = _read_json(directory / VAL_ANCHORS_FILE)
    anchor_scores = (anchors or {}).get("scores")
    lines.append("")
    if isinstance(anchor_scores, dict) and anchor_scores:
        images = anchors.get("images")
        count = f", {images} images" if images else ""
        lines += [f"Answers that need no training, on the same {anchors.get('split', 'val')} split{count}:", ""]
        lines += _table_head("anchor")
        lines += [_scores_row(f"`{name}`", s, ANCHOR_WHAT.get(name, ""))
                  for name, s in anchor_scores.items() if isinstance(s, dict)]  # fmt: skip
    else:
        lines.append(f"No `{VAL_ANCHORS_FILE}` with these weights: no classical anchor was scored beside the model.")
    return lines


def model_card(sources: Sequence[str | Path]) -> str:
    """The card of the pipeline packaged from `sources` (export, checkpoint or run directories, first match per
    network, as `mlflow_model.inference_weights` packages them) as Markdown text."""
    resolved = [resolve_source(s) for s in sources]
    settings = recorded_settings(resolved)
    stages = ", ".join(f"`{s.meta.get('stage', 'unknown')}` ({s.directory})" for s in resolved)
    sizes = sorted({int(s.meta["image_size"]) for s in resolved if s.meta.get("image_size")})
    recorded = ", ".join(f"`{k}={v}`" for k, v in settings.recorded().items())
    lines = [
        "# Restoration model: masked grayscale photo -> colour photo",
        "",
        "Input: a grayscale photo in which one region was lost (overwritten with one gray value, as in the contest's "
        "masked inputs). Output: the photo in colour at the same size; the known pixels keep their gray, the lost "
        "ones are painted. The lost region is found by the contest's exact rule (the largest region of one gray "
        "value), else by the learned detector when the model has one.",
        "",
        "Scored by the contest metric, per image: S = SSIM of the whole RGB image, M = SSIM on the lost pixels, "
        "C = correlation of the hue histograms, score = 0.2 S + 0.4 M + 0.4 C (higher is better, 1 at most).",
        "",
        "## What is inside",
        "",
        f"- trained stages: {stages}",
        *_networks(resolved),
        "",
        "## Default inference settings",
        "",
        f"`{settings.label()}` ({recorded}), as chosen on the val split when training ended; a request can change "
        "them with the params `inpaint_mode`, `color_mode`, `chroma_scale`, `chroma_floor`, `chroma_flip`, "
        "`truncation_psi` "
        f"(default {settings.truncation_psi:g}: MAT's mean style), `seed`, `batch_size`.",
        "",
        "## Training data",
        "",
    ]
    for source in resolved:
        if len(resolved) > 1:
            lines += [f"`{source.meta.get('stage', 'unknown')}` ({source.directory}):", ""]
        lines += [*_data(source), ""]
    lines += ["## Validation", ""]
    for source in resolved:
        if len(resolved) > 1:
            lines += [f"`{source.meta.get('stage', 'unknown')}` ({source.directory}):", ""]
        lines += [*_validation(source.directory), ""]
    size_text = " and ".join(f"{s}" for s in sizes) or "an unrecorded size"
    lines += [
        "## Limits",
        "",
        f"- Trained on {size_text} px crops. Larger images are restored window by window (`tile`) and coloured at "
        "the training size (`color_mode=resize`); quality on sizes far from the training size was not measured here.",
        "- Checked only on the val split above, with contest-style holes (one region filled with one gray value). "
        "Not checked on other damage (scratches, noise, blur, several holes), on images that were never colour "
        "photos (drawings, scans of text), or for differences between groups of people in photos.",
        "- Colours are a plausible guess learned from the training photos, not a recovery of the true colours.",
        "",
    ]
    return "\n".join(lines)


def description(card: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """The card cut to fit a registry description (`limit` characters) at a section boundary, saying where the whole
    card is."""
    if len(card) <= limit:
        return card
    note = "\n\n(Cut to fit; the whole card is `MODEL_CARD.md` in the model's files.)\n"
    head = card[: limit - len(note)]
    cut = head.rfind("\n## ")
    return (head[:cut] if cut > 0 else head).rstrip() + note
