"""Start, resume, done or refuse: the decision for a run directory under run.resume=auto|must|never."""

from __future__ import annotations

from pathlib import Path

from restoration.run_status import FINISHED, finished_step, mark_finished, move_aside, run_status, unmark_finished


def with_checkpoint(run_dir: Path, step: int) -> Path:
    """A complete checkpoint as `checkpoint.complete_checkpoints` recognises it."""
    from restoration.checkpoint import TRAINER_STATE, checkpoints_root

    folder = checkpoints_root(run_dir) / f"step-{step:08d}"
    folder.mkdir(parents=True)
    (folder / TRAINER_STATE).write_text("{}")
    return run_dir


def test_a_new_directory_starts_unless_a_resume_is_required(tmp_path):
    assert run_status(tmp_path / "new", "auto", 10).action == "start"
    assert run_status(tmp_path / "new", "never", 10).action == "start"
    refused = run_status(tmp_path / "new", "must", 10)
    assert refused.action == "refuse"
    assert "run.resume=must: no complete checkpoint" in refused.message


def test_a_run_with_checkpoints_resumes_or_is_refused_by_never(tmp_path):
    run_dir = with_checkpoint(tmp_path / "r", 4)
    assert run_status(run_dir, "auto", 10).action == "resume"
    assert run_status(run_dir, "must", 10).action == "resume"
    refused = run_status(run_dir, "never", 10)
    assert refused.action == "refuse"
    assert "--fresh" in refused.message
    assert "1 checkpoint(s)" in refused.message


def test_a_finished_run_is_done_until_max_steps_is_raised(tmp_path):
    run_dir = with_checkpoint(tmp_path / "r", 10)
    mark_finished(run_dir, 10, mlflow_run_id="abc")
    assert finished_step(run_dir) == 10
    done = run_status(run_dir, "auto", 10)
    assert done.action == "done"
    assert "finished at step 10" in done.message
    assert "run.max_steps" in done.message
    assert run_status(run_dir, "must", 8).action == "done"
    assert run_status(run_dir, "auto", 20).action == "resume"
    assert run_status(run_dir, "never", 20).action == "refuse"
    unmark_finished(run_dir)
    assert finished_step(run_dir) is None
    (run_dir / FINISHED).write_text("{half")
    assert finished_step(run_dir) is None  # an unreadable record is not a finished run


def test_fresh_moves_a_run_aside_and_never_overwrites_an_earlier_one(tmp_path):
    run_dir = tmp_path / "r"
    assert move_aside(run_dir) is None
    run_dir.mkdir()
    (run_dir / "x").write_text("1")
    first = move_aside(run_dir)
    run_dir.mkdir()
    second = move_aside(run_dir)
    assert not run_dir.exists()
    assert first != second
    assert (first / "x").read_text() == "1"
    assert first.name.startswith("r.replaced-")
