"""docs/config.md is generated from the config models; this fails when it has drifted."""

from pathlib import Path

from lmforge.config.doc import reference


def test_config_reference_is_current():
    doc = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    assert doc.read_text() == reference(), "run `make docs` to regenerate docs/config.md"


def test_reference_lists_every_section():
    text = reference()
    for section in ("data", "tokenizer", "model", "train", "eval", "report", "monitor"):
        assert f"## `{section}`" in text
    assert "`train.lr`" in text and "`model.n_layer`" in text


def _models_in(annotation, seen):
    """Every pydantic model an annotation reaches, through lists, dicts and unions."""
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation not in seen:
            seen.add(annotation)
            for field in annotation.model_fields.values():
                _models_in(field.annotation, seen)
        return seen
    for arg in typing.get_args(annotation):
        _models_in(arg, seen)
    return seen


def test_reference_documents_every_nested_model():
    from lmforge.config.schema import Config

    text = reference()
    for model in _models_in(Config, set()) - {Config}:
        assert model.__doc__.strip().splitlines()[0] in text, f"{model.__name__} has no section in docs/config.md"
    assert "## `data.sources[]`" in text and "| `data.sources[].path` | `str` | *required* |" in text
    assert "`data.sources[].fields.<name>.action`" in text
    for section in ("data.near", "data.ray", "data.slurm", "monitor.early_stop", "monitor.plateau", "monitor.average"):
        assert f"## `{section}`" in text
    assert "lmforge.config" not in text.split("## Top level")[1], "types name models by their section, not module"
