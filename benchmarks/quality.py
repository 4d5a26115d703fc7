"""The quality study: does joint end-to-end fine-tuning beat the original notebook's two approaches?

    python -m benchmarks.quality --preset cpu128 --photos ../shared/photos            # this CPU, well under an hour
    python -m benchmarks.quality --preset gpu512 --shards /data/shards \\
        --set mat.weights=/weights/MAT-places512.safetensors                         # production presets, a GPU

Arms, all from the same config file (`configs/study/<preset>.yaml`: resolution, batch, data, masks, optimiser,
backbones), at equal compute. With a budget of S steps per stage:
  (a) `gan_baseline`: the notebook's one U-Net GAN doing inpainting and coloring at once, 2S steps;
  (b) two-stage: `inpaint` (MAT) S steps and `colorize` S steps, trained separately, then chained;
  (c) joint: starts from (b)'s checkpoints at S/2 (the same weights (b) had at that point) and spends the
      remaining budget, S/2 steps, in the `joint` stage (each joint step updates both MAT and the colorizer, so
      every network gets S updates, as in (b)), on the second half of (b)'s learning-rate curve; `--branch 0.75`
      starts it later, from a (b) closer to converged, and `--carry` continues (b)'s Adam moments and EMA copies
      across the stage change (`init.carry_state`) instead of restarting them;
  (d) joint end to end from the start: the `joint` stage for S steps from random weights (one joint step costs
      about one inpaint step plus one colorize step, so S joint steps match (b)'s compute).
Every arm sees the same batches per step and the same resolution; the table reports the wall time of each too.

Evaluation: the val split of the shards (whole photos never trained on, contest-style polygon masks baked in at
build time) is restored by each pipeline with the *true* masks (the study compares restoration, not detection),
written as PNGs and scored by `restoration.scoring` (contest S, M, C, score and PSNR). Results go to
`benchmarks/results/quality_<preset>.{md,json}` and `..._panels.png`; every training run, plus one run per
evaluated pipeline, is in the MLflow experiment of the config (`mlflow ui --backend-store-uri
sqlite:///runs/study/mlflow.db`). Finished arms are reused when the script is run again (delete `--out` to redo).

Then, as the contest scores a submission (`--contest-size`, 512 by default): the same held-out photos as center
crops with contest-style masks (a polygon with one gray fill, or a near-black circle/square, alternating), each
pipeline run through `restoration-predict` (`predict.main`: the pipeline finds the lost region itself) in each
inference mode (MAT `tile` / `resize` / classical `fill`; color `full` / `resize`), scored from input vs ground
truth, beside the anchors (`restoration.anchors`: the input unchanged, Telea and NS fills of the gray, the true
gray, and the true gray colored by (b)'s colorizer). The best modes of a pipeline are recorded in its exports'
`pipeline.json`, so `restoration-predict --model <study run>` reproduces the table's row. Results:
`benchmarks/results/quality_<preset>_contest<size>.{md,json}`.

What the ablation, contest_eval and compare_studies scripts reuse (the data, scoring like a submission, the
statistics over seeds and photos) is `benchmarks.study`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.study import (
    bootstrap_diff,
    build_data,
    ci_text,
    compare,
    contest_eval_set,
    mean_over,
    per_image,
    score_anchors,
    score_with_predict,
    seed_dir,
)
from restoration import train
from restoration.anchors import fill_method
from restoration.config import load_config
from restoration.export import training_run_id
from restoration.image_io import write_png_atomic
from restoration.inference import InferenceSettings, choose_settings
from restoration.optim import OptimConfig, lr_factor
from restoration.pipeline import load_pipeline
from restoration.predict import pick_device
from restoration.recipe import TrainConfig
from restoration.scoring import evaluate_files
from restoration.tracking import Tracker, default_tracking_uri
from restoration.weights import record_inference, resolve_source

ROOT = Path(__file__).resolve().parents[1]

PRESETS = {"cpu128": ("configs/study/cpu128.yaml", 200), "gpu512": ("configs/study/gpu512.yaml", 20000)}
KEYS = ("S", "M", "C", "score", "psnr")


@dataclass
class Arm:
    name: str
    stage: str
    steps: int
    checkpoint_every: int
    init: list[Path] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)


def continue_schedule(optim: OptimConfig, S: int, at: int | None = None) -> list[str]:
    """Overrides that make (c)'s joint steps follow the rest of (b)'s learning-rate curve: start at the rate (b) had
    at step `at` (default S/2), no new warmup, and end at the rate (b) ends with, so (c) differs from (b) only in
    what is trained, not in how hot."""
    f = lr_factor(S // 2 if at is None else at, S, optim)
    return [
        f"optim.lr={optim.lr * f}", f"optim.d_lr={optim.d_lr * f}", "optim.warmup_steps=0",
        f"optim.min_lr_ratio={optim.min_lr_ratio / f}",
    ]  # fmt: skip


@dataclass(frozen=True)
class Branch:
    """Where (c) leaves (b) (a fraction of S: 0.25, 0.5 or 0.75, a kept checkpoint of (b)) and whether it carries
    (b)'s optimizer and EMA state (`init.carry_state`); the default is the study's original design."""

    at: float = 0.5
    carry: bool = False

    def step(self, S: int) -> int:
        if self.at not in (0.25, 0.5, 0.75) or S % 4:
            raise SystemExit(f"--branch {self.at} with S = {S}: use 0.25, 0.5 or 0.75 with S a multiple of 4")
        return round(S * self.at)

    def run(self) -> str:
        """(c)'s run name: `c-joint` for the original design, else named after its branch point and carry."""
        if self == Branch():
            return "c-joint"
        return f"c-joint-at{round(self.at * 100)}{'-carry' if self.carry else ''}"

    def label(self) -> str:
        return f"{self.at:g} S" + (", optimizer and EMA carried" if self.carry else "")


def plan(out: Path, S: int, optim: OptimConfig, branch: Branch = Branch()) -> list[Arm]:
    """The arms' runs. Checkpoints every S/4 (kept: the last 4), so (c) starts from (b) at its branch point (S/2 by
    default) and the learning curve reads every arm at S/4, S/2, 3S/4 and S."""
    at = branch.step(S)
    every = S // 4
    ckpt = lambda run: out / run / "checkpoints" / f"step-{at:08d}"  # noqa: E731
    carry = ["init.carry_state=true"] if branch.carry else []
    return [
        Arm("a-baseline", "gan_baseline", 2 * S, 2 * every),
        Arm("b-inpaint", "inpaint", S, every),
        Arm("b-colorize", "colorize", S, every),
        Arm(branch.run(), "joint", S - at, S - at, [ckpt("b-inpaint"), ckpt("b-colorize")],
            [*continue_schedule(optim, S, at), *carry]),
        Arm("d-joint-e2e", "joint", S, every),
    ]  # fmt: skip


def pipelines(S: int, branch: Branch = Branch()) -> dict[str, tuple[list[str], str]]:
    """Evaluated pipeline -> (the runs, or `run@step` checkpoints, it is made of; how it was trained)."""
    at = branch.step(S)
    return {
        "(a) one GAN (notebook baseline)": (["a-baseline"], "gan_baseline, 2S steps"),
        "(b) two-stage, trained separately": (["b-inpaint", "b-colorize"], "inpaint S + colorize S, chained"),
        "(c) joint fine-tuning": ([branch.run()], f"(b) at {branch.label()} + joint {S - at} steps"),
        f"(c) start: (b) at step {at}": ([f"b-inpaint@{at}", f"b-colorize@{at}"], "what (c) started from"),
        "(d) joint end to end from the start": (["d-joint-e2e"], "joint S steps from random init"),
    }


# -- data ----------------------------------------------------------------------------------------------------


def val_samples(shards: Path, dst: Path) -> list[dict]:
    """Val samples with their baked masks; also written as `gt/` and `masks/` (white = lost) for the scorer."""
    samples: dict[str, dict] = {}
    for shard in sorted(shards.glob("val-*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                key, _, name = member.name.partition(".")
                if name in ("input.png", "gt.png", "known.png"):
                    img = Image.open(tar.extractfile(member))
                    samples.setdefault(key, {"key": key})[name.split(".")[0]] = np.asarray(img).copy()
    out = [samples[k] for k in sorted(samples)]
    for s in out:
        s["known"] = (s["known"] > 127).astype(np.uint8)
        write_png_atomic(s["gt"], dst / "gt" / f"{s['key']}.png")
        write_png_atomic(((1 - s["known"]) * 255).astype(np.uint8), dst / "masks" / f"{s['key']}.png")
    return out


def best_settings(models: list[Path], contest: Path, dst: Path, has_mat: bool) -> tuple[InferenceSettings, dict]:
    """Choose one pipeline's inference settings on the study's val photos with the trainer's rule
    (`inference.choose_settings`: inpaint modes at full-resolution color, then the color mode, then the chroma
    strength), each candidate scored through restoration-predict; record the choice in the exports' pipeline.json
    (`weights.record_inference`) and return it with every candidate's result."""
    full: dict[str, dict] = {}

    def score(s: InferenceSettings) -> dict[str, float]:
        flags = [
            "--inpaint-mode",
            s.inpaint_mode,
            "--color-mode",
            s.color_mode,
            "--chroma-scale",
            f"{s.chroma_scale:g}",
            "--chroma-floor",
            f"{s.chroma_floor:g}",
        ]
        slug = s.label().replace(", ", "-").replace(" ", "")
        full[s.label()] = score_with_predict(models, contest, dst / slug, flags)
        return full[s.label()]["mean"]

    chosen, _ = choose_settings(
        score, InferenceSettings(color_mode="full"), colorizes=load_pipeline(models).colorizes,
        inpaint_modes=("tile", "resize", "fill") if has_mat else ("fill", "tile"), color_modes=("full", "resize"),
    )  # fmt: skip
    for model in models:
        directory = resolve_source(model).directory
        if (directory / "pipeline.json").is_file():  # an export (a checkpoint has none to record into)
            record_inference(directory, **chosen.recorded())
    return chosen, full


def contest_table(rows: list[tuple[str, dict]]) -> str:
    lines = ["| answer | S | M | C | score |", "|---|---|---|---|---|"]
    for name, r in rows:
        m = r["mean"]
        lines.append(f"| {name} | {m['S']:.4f} | {m['M']:.4f} | {m['C']:.4f} | **{m['score']:.4f}** |")
    return "\n".join(lines)


# -- training ------------------------------------------------------------------------------------------------


def train_arm(config: Path, out: Path, shards: Path, arm: Arm, extra: list[str], timings: dict) -> None:
    run_dir = out / arm.name
    if (run_dir / "final" / "pipeline.json").is_file() and arm.name in timings:
        print(f"{arm.name}: already trained ({timings[arm.name]:.0f} s), reused")
        return
    args = [
        str(config), f"stage={arm.stage}", f"run.name={arm.name}", f"run.output_dir={out}",
        f"run.max_steps={arm.steps}", f"run.checkpoint_every={arm.checkpoint_every}", f"data.root={shards}",
        *([f"init.from_weights=[{','.join(map(str, arm.init))}]"] if arm.init else []), *arm.overrides, *extra,
    ]  # fmt: skip
    print(f"\n=== {arm.name}: {arm.stage}, {arm.steps} steps ===")
    start = time.perf_counter()
    if train.main(args) != 0:
        raise SystemExit(f"{arm.name}: training failed")
    timings[arm.name] = time.perf_counter() - start
    (out / "timings.json").write_text(json.dumps(timings, indent=2))


# -- evaluation ----------------------------------------------------------------------------------------------


def sources(out: Path, parts: list[str], S: int, step: int | None = None) -> list[Path]:
    """The model directories of a pipeline's runs: their final exports, a checkpoint (`name@step`), or every part's
    checkpoint at `step` (the learning curve)."""
    paths = []
    for part in parts:
        name, _, at = part.partition("@")
        at_step = int(at) if at else step
        paths.append(out / name / "checkpoints" / f"step-{at_step:08d}" if at_step is not None else out / name)
    return paths


def restore_all(model: list[Path], samples: list[dict], pred_dir: Path, batch: int = 16) -> list[np.ndarray]:
    """The pipeline as trained (MAT window by window, full chroma), whatever inference defaults its exports
    record: the arms compare ways of training, the inference settings are measured by `contest_study`."""
    pipeline = load_pipeline(model, pick_device("auto"))
    as_trained = InferenceSettings(inpaint_mode="tile", color_mode=pipeline.defaults.color_mode)
    outputs = []
    for i in range(0, len(samples), batch):
        chunk = samples[i : i + batch]
        restored = pipeline.restore(
            [s["input"] for s in chunk], known=[s["known"] for s in chunk], settings=as_trained,
            keys=[s["key"] for s in chunk],
        )  # fmt: skip
        for s, r in zip(chunk, restored):
            write_png_atomic(r.rgb, pred_dir / f"{s['key']}.png")
            outputs.append(r.rgb)
    return outputs


def panels(samples: list[dict], outputs: dict[str, list[np.ndarray]], count: int = 4) -> np.ndarray:
    """Rows: val samples; columns: masked input | each pipeline | ground truth."""
    rows = []
    for i in range(min(count, len(samples))):
        cells = [np.repeat(samples[i]["input"][..., None], 3, axis=2)]
        cells += [outputs[name][i] for name in outputs]
        cells.append(samples[i]["gt"])
        rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(rows, axis=0)


def markdown_table(rows: list[dict]) -> str:
    lines = ["| pipeline | training | train time | S | M | C | score | PSNR |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["mean"]
        lines.append(
            f"| {r['name']} | {r['training']} | {r['train_s'] / 60:.1f} min | {m['S']:.4f} | {m['M']:.4f} | "
            f"{m['C']:.4f} | **{m['score']:.4f}** | {m['psnr']:.2f} |"
        )
    return "\n".join(lines)


def score_seed(
    out: Path, S: int, letters: set[str], samples: list[dict], eval_dir: Path, timings: dict, cfg: TrainConfig,
    branch: Branch = Branch(),
) -> tuple[list[dict], dict[str, list[np.ndarray]]]:  # fmt: skip
    """Every pipeline of one seed restored and scored on the held-out photos (true masks); one MLflow run each."""
    t = lambda *runs: sum(timings.get(r, float("nan")) for r in runs)  # noqa: E731
    pipes = pipelines(S, branch)
    start = next(name for name in pipes if "start:" in name)
    train_s = {
        "(a) one GAN (notebook baseline)": t("a-baseline"),
        "(b) two-stage, trained separately": t("b-inpaint", "b-colorize"),
        "(c) joint fine-tuning": t("b-inpaint", "b-colorize") * branch.at + t(branch.run()),
        start: t("b-inpaint", "b-colorize") * branch.at,
        "(d) joint end to end from the start": t("d-joint-e2e"),
    }
    rows, outputs = [], {}
    tracking_uri = default_tracking_uri(out)
    for name, (parts, training) in pipes.items():
        if name[1] not in letters:
            continue
        slug = name.split(")")[0].strip("(") + ("-start" if "start:" in name else "")
        slug += f"-{branch.run()}" if name[1] == "c" and branch != Branch() else ""
        pred_dir = out / "eval" / f"pred-{slug}"
        outputs[name] = restore_all(sources(out, parts, S), samples, pred_dir)
        result = evaluate_files(pred_dir, eval_dir / "gt", masks=eval_dir / "masks")
        rows.append({"name": name, "training": training, "train_s": train_s[name], **result})
        tracker = Tracker(enabled=True)  # one MLflow run per evaluated pipeline, next to the training runs
        run_id = training_run_id(out / parts[0]) if len(parts) == 1 else None
        tracker.start(tracking_uri=tracking_uri, experiment=cfg.run.experiment, run_name=f"eval {name}", run_id=run_id)
        tracker.log_metrics({f"study/{k}": v for k, v in result["mean"].items()}, step=S)
        tracker.end()
    return rows, outputs


def learning_curve(out: Path, S: int, name: str, samples: list[dict], eval_dir: Path) -> list[dict]:
    """The held-out score of one pipeline at each kept checkpoint (S/4, S/2, 3S/4) and at the end."""
    parts = pipelines(S)[name][0]
    steps = [S // 4, S // 2, 3 * S // 4] if S % 4 == 0 else [S // 2]
    if name.startswith("(a)"):
        steps = [2 * s for s in steps]
    points = []
    for step in [*steps, None]:
        models = sources(out, parts, S, step)
        if not all(m.exists() for m in models):
            continue
        pred_dir = out / "eval" / f"curve-{name[1]}-{step or 'final'}"
        restore_all(models, samples, pred_dir)
        result = evaluate_files(pred_dir, eval_dir / "gt", masks=eval_dir / "masks")
        points.append({"step": step or (2 * S if name.startswith("(a)") else S), **result["mean"]})
    return points


def seeds_table(by_seed: dict[int, list[dict]]) -> tuple[str, dict]:
    """Mean and spread over seeds per pipeline, and each pipeline against (b) with two-level bootstrap CIs."""
    names = [r["name"] for r in next(iter(by_seed.values()))]
    find = lambda seed, name: next(r for r in by_seed[seed] if r["name"] == name)  # noqa: E731
    lines = ["| pipeline | seeds | S | M | C | score (mean +- sd over seeds) | vs (b): score diff [95 % CI], "
             "photos won |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    summary = {}
    ref = "(b) two-stage, trained separately"
    for name in names:
        runs = [find(seed, name) for seed in by_seed]
        mean = mean_over(runs, KEYS)
        sd = float(np.std([r["mean"]["score"] for r in runs], ddof=1)) if len(runs) > 1 else float("nan")
        entry = {"mean": mean, "score_sd": sd, "seeds": len(runs)}
        versus = ""
        if name != ref and ref in names and "start:" not in name:
            d = bootstrap_diff([per_image(r) for r in runs], [per_image(find(seed, ref)) for seed in by_seed])
            entry["vs_b"] = d
            versus = f"{ci_text(d)}, {d['wins']}/{d['photos']}"
        summary[name] = entry
        lines.append(f"| {name} | {len(runs)} | {mean['S']:.4f} | {mean['M']:.4f} | {mean['C']:.4f} | "
                     f"**{mean['score']:.4f}** +- {sd:.4f} | {versus} |")  # fmt: skip
    return "\n".join(lines), summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu128")
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "photos", help="color photos")
    parser.add_argument("--shards", type=Path, default=None, help="existing shards instead of --photos")
    parser.add_argument("--steps", type=int, default=None, help="S, the steps per stage (default: the preset's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (run.seed) per arm; with "
                        "several, the table gives mean +- sd over seeds and bootstrap CIs against (b)")  # fmt: skip
    parser.add_argument("--curve", action="store_true", help="also the learning curve of the best pipeline (seed "
                        "of the first --seeds), from its checkpoints")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="default: the config's run.output_dir")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--tag", default="", help="suffix of the result files (for variants)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every arm")
    parser.add_argument("--arms", default="abcd", help="which arms to train and score, e.g. 'b' (c needs b's runs)")
    parser.add_argument("--branch", type=float, default=0.5, help="where (c) leaves (b), a fraction of S (0.25, 0.5, "
                        "0.75)")  # fmt: skip
    parser.add_argument("--carry", action="store_true", help="(c) continues (b)'s optimizer and EMA state "
                        "(init.carry_state) instead of restarting them")  # fmt: skip
    parser.add_argument("--test-set", type=Path, default=None, help="also score every pipeline of every seed on "
                        "this contest-layout folder (test.csv, test_input/, gt/: photos of sources nothing was trained "
                        "or chosen on, e.g. runs/source-split/contest-512) through restoration-predict with fixed "
                        "settings (--test-modes), against (b) with paired CIs; nothing is chosen on it")  # fmt: skip
    parser.add_argument("--test-modes", nargs="+", default=["tile", "fill"], choices=["tile", "resize", "fill"],
                        help="the inpaint modes scored on --test-set (color: resize, chroma x1)")  # fmt: skip
    parser.add_argument("--contest-size", type=int, default=512, help="also score the held-out photos at this size "
                        "as the contest does (through restoration-predict, with the anchors; first seed only); 0 "
                        "skips it")  # fmt: skip
    ns = parser.parse_args(argv)
    letters = set(ns.arms)
    branch = Branch(ns.branch, ns.carry)

    config_rel, default_steps = PRESETS[ns.preset]
    config = ROOT / config_rel
    cfg = load_config(TrainConfig, config, ns.set)
    S = ns.steps or default_steps
    out = (ns.out or cfg.run.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    shards = ns.shards or build_data(ns.photos, out, cfg.data.image_size)
    eval_dir = out / "eval"
    samples = val_samples(shards, eval_dir)

    by_seed: dict[int, list[dict]] = {}
    outputs: dict[str, list[np.ndarray]] = {}
    for seed in ns.seeds:
        run_out = seed_dir(out, seed, ns.seeds)
        run_out.mkdir(parents=True, exist_ok=True)
        timings = json.loads((run_out / "timings.json").read_text()) if (run_out / "timings.json").is_file() else {}
        extra = [*ns.set, *([f"run.seed={seed}"] if seed else [])]
        for arm in plan(run_out, S, cfg.optim, branch):
            if arm.name[0] in letters or (arm.name[0] == "b" and "c" in letters):
                train_arm(config, run_out, shards, arm, extra, timings)
        print(f"\nseed {seed}: scoring {len(samples)} held-out photos with their true contest-style masks")
        by_seed[seed], seed_outputs = score_seed(run_out, S, letters, samples, eval_dir, timings, cfg, branch)
        outputs = outputs or seed_outputs

    first = ns.seeds[0]
    rows = by_seed[first]
    budget = f"S = {S} steps per stage, batch {cfg.run.batch_size}, {cfg.data.image_size} px, {len(samples)} val photos"
    budget += f"; (c) from (b) at {branch.label()}" if branch != Branch() else ""
    table = markdown_table(rows)
    ns.results.mkdir(parents=True, exist_ok=True)
    stem = f"quality_{ns.preset}{ns.tag}"
    report = f"{budget}\n\nseed {first}:\n\n{table}\n"
    slim = [{k: r[k] for k in ("name", "training", "train_s", "mean", "count")} for r in rows]
    record: dict = {"budget": budget, "overrides": ns.set, "seeds": ns.seeds, "rows": slim,
                    "branch": {"at": branch.at, "carry": branch.carry}}  # fmt: skip
    if len(ns.seeds) > 1:
        seeds_md, record["over_seeds"] = seeds_table(by_seed)
        record["per_seed"] = {
            seed: [{k: r[k] for k in ("name", "train_s", "mean")} for r in seed_rows]
            for seed, seed_rows in by_seed.items()
        }
        report += f"\nover seeds {ns.seeds}:\n\n{seeds_md}\n"
    if ns.curve:
        candidates = [r for r in rows if "start:" not in r["name"] and not r["name"].startswith("(c)")]
        best = max(candidates, key=lambda r: r["mean"]["score"])["name"]
        points = learning_curve(seed_dir(out, first, ns.seeds), S, best, samples, eval_dir)
        record["curve"] = {"pipeline": best, "points": points}
        curve_md = "\n".join(f"| {p['step']} | {p['S']:.4f} | {p['M']:.4f} | {p['C']:.4f} | **{p['score']:.4f}** |"
                              for p in points)  # fmt: skip
        head = "| step | S | M | C | score |\n|---|---|---|---|---|"
        report += f"\nlearning curve of {best} (seed {first}):\n\n{head}\n{curve_md}\n"
    (ns.results / f"{stem}.md").write_text(report)
    (ns.results / f"{stem}.json").write_text(json.dumps(record, indent=2))
    grid = panels(samples, {k: v for k, v in outputs.items() if "start:" not in k})
    Image.fromarray(grid).save(ns.results / f"{stem}_panels.png")
    tracking_uri = default_tracking_uri(seed_dir(out, first, ns.seeds))
    summary = Tracker(enabled=True)
    summary.start(tracking_uri=tracking_uri, experiment=cfg.run.experiment, run_name=f"study summary {stem}")
    for path in (ns.results / f"{stem}.md", ns.results / f"{stem}_panels.png"):
        summary.log_artifact(path)
    summary.end()
    print(f"\n{report}")
    print(f"panels (input | a | b | c | d | ground truth): {ns.results / f'{stem}_panels.png'}")
    print(f"runs: mlflow ui --backend-store-uri {tracking_uri}")
    if ns.test_set:
        test_study(ns, out, S, letters, branch, stem)
    if ns.contest_size:
        contest_study(ns, seed_dir(out, first, ns.seeds), S, letters, stem)
    return 0


def test_study(ns: argparse.Namespace, out: Path, S: int, letters: set[str], branch: Branch, stem: str) -> None:
    """Every pipeline of every seed on `--test-set` through restoration-predict, in each of `--test-modes` with the
    colour fixed (resize, x1): nothing is chosen on these photos, so the table reports, and each pipeline is set
    against (b) with a paired two-level bootstrap (seeds, then photos) for M, C and score."""
    test = ns.test_set.resolve()
    if not (test / "test.csv").is_file():
        raise SystemExit(f"--test-set {test}: no test.csv (a contest-layout folder: test.csv, test_input/, gt/)")
    pipes = {k: v for k, v in pipelines(S, branch).items() if k[1] in letters and "start:" not in k}
    results: dict[str, dict[str, list[dict]]] = {}  # "pipeline, mode" -> per seed
    for seed in ns.seeds:
        run_out = seed_dir(out, seed, ns.seeds)
        for name, (parts, _) in pipes.items():
            modes = ns.test_modes if name[1] in "bcd" else ["fill"]  # (a) has no MAT: its own output only
            for mode in modes:
                slug = f"{name.split(')')[0].strip('(')}-{parts[0]}-{mode}"
                flags = ["--inpaint-mode", mode, "--color-mode", "resize", "--chroma-scale", "1"]
                r = score_with_predict(sources(run_out, parts, S), test, run_out / f"eval-test-{test.name}" / slug,
                                       flags)  # fmt: skip
                results.setdefault(f"{name}, {mode}", []).append(r)
    lines = [f"{len(ns.seeds)} seeds, {test}, restoration-predict --color-mode resize --chroma-scale 1", "",
             "| pipeline, inpaint mode | S | M | C | score | vs (b), same mode: M | C | score |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    summary = {}
    for key, runs in results.items():
        mean = mean_over(runs, KEYS)
        ref = results.get(f"(b) two-stage, trained separately, {key.rsplit(', ', 1)[1]}")
        diffs = {}
        if ref is not None and ref is not runs:
            diffs = {k: compare(runs, ref, k) for k in ("M", "C", "score")}
        summary[key] = {"mean": mean, "vs_b": diffs, "per_seed": [r["mean"] for r in runs]}
        versus = " | ".join(ci_text(diffs[k]) for k in ("M", "C", "score")) if diffs else " | | "
        lines.append(f"| {key} | {mean['S']:.4f} | {mean['M']:.4f} | {mean['C']:.4f} | **{mean['score']:.4f}** | "
                     f"{versus} |")  # fmt: skip
    table = "\n".join(lines)
    (ns.results / f"{stem}_test.md").write_text(table + "\n")
    (ns.results / f"{stem}_test.json").write_text(json.dumps(summary, indent=2))
    print(f"\n{table}\n")


def contest_study(ns: argparse.Namespace, out: Path, S: int, letters: set[str], stem: str) -> None:
    """Every pipeline and the anchors on the held-out photos at `--contest-size`, laid out and scored like the
    contest, through restoration-predict; the best inference modes of each pipeline go into its pipeline.json."""
    contest = contest_eval_set(ns.photos, out, size=ns.contest_size)
    dst = out / f"eval-contest-{ns.contest_size}"
    colorizer = [out / "b-colorize"] if (out / "b-colorize").is_dir() else None
    anchors = score_anchors(contest, dst, colorizer)
    fill = fill_method("telea")
    labels = {"input": "the masked input unchanged", "telea": f"classical fill of the gray ({fill}), no color",
              "ns": f"classical fill of the gray ({fill_method('ns')}), no color",
              "true_gray": "the true gray L(gt), no color (best gray answer)",
              "true_gray_colorized": "the true gray colored by (b)'s colorizer (color anchor)"}  # fmt: skip
    rows = [(labels[k], v) for k, v in anchors.items()]
    recorded = {}
    for name, (parts, _) in pipelines(S).items():
        if name[1] not in letters or "start:" in name:
            continue
        models = sources(out, parts, S)
        slug = name.split(")")[0].strip("(")
        has_mat = name[1] in "bcd"
        chosen, results = best_settings(models, contest, dst / f"pred-{slug}", has_mat)
        recorded[name] = chosen.recorded()
        for label, r in results.items():
            rows.append((f"{name}, {label}{' (best, recorded)' if label == chosen.label() else ''}", r))
    count = anchors["input"]["count"]
    head = f"{count} held-out photos at {ns.contest_size} px, contest-style masks, scored like a submission"
    table = contest_table(rows)
    (ns.results / f"{stem}_contest{ns.contest_size}.md").write_text(f"{head}\n\n{table}\n")
    slim = {name: {"mean": r["mean"], "count": r["count"]} for name, r in rows}
    (ns.results / f"{stem}_contest{ns.contest_size}.json").write_text(
        json.dumps({"head": head, "recorded_modes": recorded, "rows": slim}, indent=2)
    )
    print(f"\n{head}\n\n{table}\n")


if __name__ == "__main__":
    sys.exit(main())
