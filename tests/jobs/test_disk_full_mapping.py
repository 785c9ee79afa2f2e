"""A full disk is named as such wherever it surfaces; half-written checkpoints go."""

from __future__ import annotations

import errno

from jobs.engine.training_steps import last_checkpoint, prune_incomplete_checkpoints
from llmweb.core.running import is_disk_full, run_guarded


def _failed_with(exc: BaseException) -> dict:
    seen: dict = {}

    def boom():
        raise exc

    ran = run_guarded(boom, what="The job", on_failed=lambda error, tb: seen.update(error))
    assert ran.state == "failed"
    return seen


def test_enospc_efbig_and_edquot_are_disk_full():
    for code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        error = _failed_with(OSError(code, "nope"))
        assert error["code"] == "disk_full" and "disk is full" in error["message"]


def test_disk_full_is_found_in_the_chain_and_in_flattened_text():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("saving failed") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
    # safetensors (Rust) flattens the OSError into its message.
    assert is_disk_full(Exception("Error while serializing: I/O error: (os error 27)"))


def test_other_os_errors_stay_internal_errors():
    assert _failed_with(OSError(errno.EACCES, "denied"))["code"] == "internal_error"
    assert not is_disk_full(ValueError("file too small"))


def test_incomplete_checkpoints_are_pruned_and_complete_ones_kept(tmp_path):
    done, half = tmp_path / "checkpoint-2", tmp_path / "checkpoint-4"
    for folder in (done, half):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"weights")
    (done / "trainer_state.json").write_text("{}")
    assert prune_incomplete_checkpoints(tmp_path) == ["checkpoint-4"]
    assert done.is_dir() and not half.exists()
    assert last_checkpoint(tmp_path) == str(done)
    assert prune_incomplete_checkpoints(tmp_path / "missing") == []
