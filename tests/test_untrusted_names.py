"""File names read from files a user may not have made (a checkpoint's state.json, a weight
index) never lead outside their folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lmforge.errors import LmforgeError
from lmforge.models.hf import folder_tensors
from lmforge.rundir import file_sha256, member
from lmforge.train import checkpoint as ckpt


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../x", "", "link/x"])
def test_member_refuses_names_leading_out(tmp_path: Path, name: str) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    os.symlink(tmp_path, inner / "link")
    assert member(inner, name) is None


def test_member_keeps_plain_names(tmp_path: Path) -> None:
    assert member(tmp_path, "model.safetensors") == tmp_path / "model.safetensors"
    assert member(tmp_path, "sub/shard.distcp") == tmp_path / "sub" / "shard.distcp"


def test_checkpoint_state_naming_an_outside_file_is_unusable(tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.write_text("x")
    folder = tmp_path / "step-1"
    folder.mkdir()
    digest = file_sha256(outside)
    (folder / "state.json").write_text(json.dumps({"files": {"../secret": digest}}))
    assert "outside the checkpoint folder" in (ckpt.verify(folder) or "")


def test_weight_index_naming_an_outside_file_is_refused(tmp_path: Path) -> None:
    save_file({"w": torch.zeros(2)}, str(tmp_path / "elsewhere.safetensors"))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w": "../elsewhere.safetensors"}}))
    with pytest.raises(LmforgeError, match="outside"):
        folder_tensors(folder)
    (folder / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(LmforgeError, match="not a weight index"):
        folder_tensors(folder)
