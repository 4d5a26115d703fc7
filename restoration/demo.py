"""The README's main job: a complete run on built-in real photos, nothing to download or supply.

`python -m restoration.demo [key=value ...]`:
1. (`data.root: builtin`) takes the public-domain / CC0 color photos that ship with scikit-image (astronaut,
   coffee, chelsea, rocket, Hubble deep field, immunohistochemistry, retina), cuts seeded crops from each into
   one folder per photo, and builds WebDataset shards from them (`runs/demo-data/builtin-<size>/`), with whole
   photos held out for validation;
2. trains the `joint` stage (MAT -> colorizer, both discriminators) with `configs/demo.yaml` on CPU or GPU,
   logging to the local MLflow store and scoring the held-out photos (with contest-style masks) before and after;
   the run logs the whole pipeline as an MLflow model and registers it as `restoration` (`REGISTERED_MODEL`), so
   `models:/restoration/latest` works against `runs/mlflow.db` as the README shows (training again after removing
   the run registers version 2, 3, ...; `latest` is the newest);
3. prints both scores, how to open the run in the MLflow UI and how to use the registered model;
4. lays the held-out crops out like the contest (`test_input/`, `gt/`, `test.csv`), runs `restoration-predict` on
   them into a submission zip and scores the zip with `restoration-evaluate`: the commands a user runs next on
   real data, shown working;
5. scores two classical answers on the same held-out crops, the way the contest would (`restoration.anchors`): the
   masked input returned unchanged and a classical fill of the gray (OpenCV Telea, or scikit-image's biharmonic
   fill where OpenCV is not installed), so the trained score is read against what needs no training; and the
   trained model in the inpaint mode it did not choose. When training ends, the model is scored on the val split
   with MAT and with the classical fill under its colorizer, and the better becomes its default
   (`inference.choose_settings`): a MAT trained for minutes on CPU usually loses to the fill on the hole's SSIM.
   The trained row of step 2 is that default's score: the pipeline `restoration-predict` runs.
Extra `key=value` arguments override the demo config (e.g. `run.max_steps=50`).
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

from restoration import train
from restoration.anchors import fill_method
from restoration.checkpoint import latest_checkpoint
from restoration.config import load_config
from restoration.data.builtin import builtin_shards_dir
from restoration.recipe import TrainConfig
from restoration.scoring import score_anchors
from restoration.weights import recorded_settings, resolve_source

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
REGISTERED_MODEL = "restoration"  # the name the README's `models:/restoration/latest` example uses


def write_contest_folder(shards: Path, out: Path) -> Path:
    """The held-out (val) samples of `shards` in the contest layout: `test_input/`, `gt/` and `test.csv`."""
    (out / "test_input").mkdir(parents=True, exist_ok=True)
    (out / "gt").mkdir(exist_ok=True)
    rows = ["input_image_path"]
    for shard in sorted(shards.glob("val-*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                key, _, field = member.name.partition(".")
                target = {"input.png": out / "test_input", "gt.png": out / "gt"}.get(field)
                if target is None:
                    continue
                (target / f"{key}.png").write_bytes(tar.extractfile(member).read())
                if field == "input.png":
                    rows.append(f"./test_input/{key}.png")
    (out / "test.csv").write_text("\n".join(rows) + "\n")
    return out


def predict_and_score(run_dir: Path, shards: Path) -> int:
    """What a user does after training, on the demo's held-out photos: predict a submission zip, then score it."""
    from restoration import evaluate, predict

    contest = write_contest_folder(shards, run_dir / "demo-contest")
    submission = run_dir / "demo-submission.zip"
    predict_args = ["--model", str(run_dir), "--input", str(contest / "test.csv"), "--out",
                    str(run_dir / "demo-predictions"), "--zip", str(submission)]  # fmt: skip
    print("\n$ restoration-predict " + " ".join(predict_args))
    rc = predict.main(predict_args)
    if rc != 0:
        return rc
    evaluate_args = ["--pred", str(submission), "--gt", str(contest / "gt"), "--input", str(contest / "test.csv")]
    print("\n$ restoration-evaluate " + " ".join(evaluate_args))
    return evaluate.main([*evaluate_args, "--json", str(run_dir / "demo-submission_scores.json")])


def print_comparison(run_dir: Path) -> None:
    """The submission's score beside the anchors', on the same held-out crops."""
    contest = run_dir / "demo-contest"
    scores = run_dir / "demo-submission_scores.json"
    if not scores.is_file():
        return
    from restoration import predict
    from restoration.scoring import score_contest_folder

    chosen = chosen_inpaint_mode(run_dir)
    rows = {f"restoration-predict (trained, {chosen})": json.loads(scores.read_text())["mean"]}
    other = "tile" if chosen == "fill" else "fill"  # MAT, or the trained colorizer over a classical fill
    other_dir = run_dir / f"demo-predictions-{other}"
    other_args = ["--model", str(run_dir), "--input", str(contest / "test.csv"), "--out", str(other_dir),
                  "--inpaint-mode", other]  # fmt: skip
    print("\n$ restoration-predict " + " ".join(other_args))
    if predict.main(other_args) == 0:
        other_scores = score_contest_folder(other_dir, contest)
        rows[f"  same, --inpaint-mode {other}"] = other_scores["mean"]
    anchors = score_anchors(contest, run_dir / "demo-anchors", ("input", "telea"))
    rows["the masked input unchanged"] = anchors["input"]["mean"]
    rows[f"classical fill ({fill_method('telea')}), no color"] = anchors["telea"]["mean"]
    print("\nthe same held-out crops, scored like the contest: the model against answers that need no training")
    print(f"{'':<38} {'S':>7} {'M':>7} {'C':>7} {'score':>7} {'PSNR':>7}")
    for name, m in rows.items():
        print(f"{name:<38} {m['S']:7.4f} {m['M']:7.4f} {m['C']:7.4f} {m['score']:7.4f} {m['psnr']:7.2f}")


def chosen_inpaint_mode(run_dir: Path) -> str:
    """The inpaint mode the training chose on the val split and recorded in its export."""
    return recorded_settings([resolve_source(run_dir)]).inpaint_mode


def read_evals(run_dir: Path) -> list[dict]:
    path = run_dir / "eval.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def main(argv: list[str] | None = None) -> int:
    # the demo's own settings first, so that a user's `key=value` wins (e.g. `run.register_model=` to register nothing)
    overrides = ["run.eval_at_start=true", f"run.register_model={REGISTERED_MODEL}",
                 *(sys.argv[1:] if argv is None else argv)]  # fmt: skip
    cfg = load_config(TrainConfig, DEMO_CONFIG, overrides)
    run_dir = cfg.run.output_dir / cfg.run.name
    evals = read_evals(run_dir)
    if (run_dir / "final" / "pipeline.json").is_file() and evals and evals[-1]["step"] == cfg.run.max_steps:
        print(f"{run_dir} is already trained (remove it to train again); predicting and scoring with it")
    else:
        if latest_checkpoint(run_dir) is None:  # a fresh start (a killed demo resumes and keeps its history)
            (run_dir / "eval.jsonl").unlink(missing_ok=True)
        rc = train.main([str(DEMO_CONFIG), *overrides])
        if rc != 0:
            return rc
        evals = read_evals(run_dir)
    first, last = evals[0], evals[-1]
    print("\nheld-out score (contest metric: 0.2 S + 0.4 M + 0.4 C)")
    print(f"{'':>10} {'step':>6} {'S':>7} {'M':>7} {'C':>7} {'score':>7} {'PSNR':>7}")
    for label, e in (("untrained", first), ("trained", last)):
        print(
            f"{label:>10} {e['step']:>6} {e['S']:7.4f} {e['M']:7.4f} {e['C']:7.4f} {e['score']:7.4f} {e['psnr']:7.2f}"
        )
    shards = (
        builtin_shards_dir(cfg.run.output_dir, cfg.data.image_size)
        if cfg.data.root == Path("builtin")
        else cfg.data.root
    )
    rc = predict_and_score(run_dir, shards)
    print_comparison(run_dir)
    store = f"sqlite:///{(cfg.run.output_dir / 'mlflow.db').resolve()}"
    print(f"\nsee the run, its metrics, image panels and logged model: mlflow ui --backend-store-uri {store}")
    if cfg.run.register_model:
        print(f"use the registered model (docs/serving.md): MLFLOW_TRACKING_URI={store} mlflow models serve "
              f"-m models:/{cfg.run.register_model}/latest --env-manager local -p 5001")  # fmt: skip
    return rc


if __name__ == "__main__":
    sys.exit(main())
