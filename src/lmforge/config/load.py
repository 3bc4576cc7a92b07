"""Loading a config: presets, YAML with line numbers, key=value overrides, and the passes that
fill the model section from a size preset or a Hugging Face folder, then validation against the
schema (config/schema.py).

Unknown keys are errors that name the key path, its line in the YAML file (or the override that
set it), and the nearest valid key; bad values name the allowed range.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from lmforge.config.schema import OUTSIDE_KEYS, Config, ModelConfig
from lmforge.errors import LmforgeError
from lmforge.models.sizes import SIZES, size_names
from lmforge.rundir import RunDir, run_of

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs"

# what a Hugging Face folder's config.json decides (models/hf.py: folder_model_keys)
FOLDER_KEYS = ("family", "n_layer", "n_head", "n_kv_head", "n_embd", "ffn_dim", "block_size", "bias",
               "activation", "norm_eps", "rope_theta", "tie_embeddings", "vocab_size")


# ---------------------------------------------------------------- the model section's fill passes


def fill_size(model: dict[str, Any]) -> dict[str, Any]:
    """Expand `size` into its preset's keys, leaving the keys given beside it on top."""
    if not model.get("size"):
        return model
    family = model.get("family", "gpt")
    preset = SIZES.get(family, {}).get(model["size"])
    if preset is None:
        near = difflib.get_close_matches(str(model["size"]), size_names(family), n=1)
        tip = f"did you mean '{near[0]}'? " if near else ""
        raise LmforgeError(f"model.size: unknown size '{model['size']}' for family '{family}'",
                           f"{tip}sizes: {', '.join(size_names(family)) or 'none'} (`lmforge model sizes`)")
    return {**preset, **model}


def fill_from_folder(model: dict[str, Any]) -> dict[str, Any]:
    """Take the shape of `init_from`'s config.json; a key set beside it to another value is an error."""
    if not model.get("init_from"):
        return model
    folder = model["init_from"]
    run = run_of(folder)
    if run is not None:  # an lmforge run or checkpoint: continued pretraining from its weights
        return _fill_from_run(model, run)
    if model.get("size"):
        raise LmforgeError(f"model.size={model['size']!r} and model.init_from={folder!r} both set the shape",
                           "keep model.init_from and drop model.size")
    if not Path(folder).is_dir() and all(k in model for k in FOLDER_KEYS):
        # a resolved config (a run's config.yaml) already holds the folder's shape, so its
        # checkpoints still resume, evaluate and export once the folder is moved or deleted;
        # a fresh start needs the weights and says so (models/hf.py: folder_tensors)
        return model
    from lmforge.models.hf import (
        folder_model_keys,  # here: it imports torch, which `--help` need not wait for
    )

    theirs = folder_model_keys(Path(folder))
    mine = model.get("block_size")
    if isinstance(mine, int) and not isinstance(mine, bool) and mine < theirs["block_size"]:
        theirs["block_size"] = mine  # a shorter context: the first positions of a learned table
    for key, value in theirs.items():
        if model.get(key) is not None and model[key] != value:
            raise LmforgeError(f"model.{key}={model[key]!r} conflicts with model.init_from: "
                               f"{Path(folder) / 'config.json'} has {key} {value!r}",
                               f"drop model.{key} (the folder sets it; model.block_size may be shorter than "
                               f"the folder's), or use another folder")
    return {**model, **theirs}


def _fill_from_run(model: dict[str, Any], run: RunDir) -> dict[str, Any]:
    """Take the shape of an lmforge run's config.yaml; a key set beside it to another value is an error."""
    theirs_all, _ = _read_yaml(run.config)
    theirs_model = theirs_all.get("model") if isinstance(theirs_all.get("model"), dict) else {}
    theirs = {k: theirs_model[k] for k in (*FOLDER_KEYS, "qk_norm", "kernel_size", "dilation_cycle", "tbptt")
              if k in theirs_model}
    for key, value in theirs.items():
        if model.get(key) is not None and model[key] != value:
            raise LmforgeError(f"model.{key}={model[key]!r} conflicts with model.init_from: {run.config} has "
                               f"{key} {value!r}", f"drop model.{key} (the run it starts from sets it)")
    return {**model, **theirs}


def fill_model(data: dict[str, Any]) -> dict[str, Any]:
    """The config's model section with its size preset or folder shape filled in."""
    if isinstance(data.get("model"), dict):
        data = {**data, "model": fill_size(fill_from_folder(data["model"]))}
    return data


def model_config(**keys: Any) -> ModelConfig:
    """A ModelConfig from keys as a config file would give them (a `size` or `init_from` filled in)."""
    return ModelConfig.model_validate(fill_model({"model": keys})["model"])


def size_over_preset(data: dict[str, Any], preset: dict[str, Any], user: dict[str, Any],
                     overrides: list[str]) -> dict[str, Any]:
    """A `model.size` the user chose replaces the preset's values for the keys that size defines;
    keys the user set explicitly (file or key=value) still win over the size."""
    model, base = data.get("model"), preset.get("model")
    if not isinstance(model, dict) or not isinstance(base, dict) or not model.get("size"):
        return data
    if model.get("size") == base.get("size"):
        return data
    explicit = _explicit_model_keys(user, overrides)
    for key in SIZES.get(model.get("family", "gpt"), {}).get(model["size"], {}):
        if key in base and key not in explicit:
            model.pop(key, None)
    return data


def _explicit_model_keys(user: dict[str, Any], overrides: list[str]) -> set[str]:
    """Model keys the user set in their file or as key=value (not inherited from a preset)."""
    user_model = user.get("model") if isinstance(user.get("model"), dict) else {}
    return set(user_model) | {parse_override(o)[0][-1] for o in overrides if o.startswith("model.")}


def folder_over_preset(data: dict[str, Any], preset: dict[str, Any], user: dict[str, Any],
                       overrides: list[str]) -> dict[str, Any]:
    """With `model.init_from`, the folder gives the shape: a preset's shape keys give way to it,
    while keys the user set explicitly stay (and are checked against the folder)."""
    model, base = data.get("model"), preset.get("model")
    if not isinstance(model, dict) or not model.get("init_from") or not isinstance(base, dict):
        return data
    explicit = _explicit_model_keys(user, overrides)
    for key in FOLDER_KEYS:
        if key in base and key not in explicit:
            model.pop(key, None)
    return data


# ---------------------------------------------------------------- loading


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        near = difflib.get_close_matches(name, preset_names(), n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise LmforgeError(f"unknown preset '{name}'", f"{hint}presets: {', '.join(preset_names())}")
    return path


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML document to its 1-based line, so errors can point at it."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = path + (str(key.value),)
                lines[sub] = key.start_mark.line + 1
                walk(value, sub)

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, ())
    return lines


def read_text_file(path: Path, what: str) -> str:
    """A text file's contents, or a clear error: which file, and where it stops being UTF-8."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LmforgeError(f"cannot read {path}: {exc.strerror or exc}", "check the path and its permissions") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise LmforgeError(f"{path}:{line}:{column}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
                           f"{what} must be UTF-8",
                           "save it as UTF-8 in your editor (or `iconv -f latin1 -t utf-8`)") from None


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    if not path.is_file():
        raise LmforgeError(f"config file not found: {path}", "give a path to a YAML file, or use --preset")
    text = read_text_file(path, "a YAML config")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise LmforgeError(f"malformed YAML at {where}: {problem}", "check indentation and 'key: value' syntax") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LmforgeError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data, _key_lines(text)


def _fields_at(path: tuple[str | int, ...]) -> list[str]:
    """Valid keys of the model that owns `path` (used to suggest the nearest key)."""
    model: type[BaseModel] = Config
    for part in path[:-1]:
        field = model.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        model = field.annotation
    return list(model.model_fields)


def _explain(exc: ValidationError, source: str, lines: dict[tuple[str, ...], int],
             overrides: list[str]) -> LmforgeError:
    """Each error with where its value came from: the key=value override that set it (or set a key
    of the section a whole-section rule refused), else the file and line."""
    set_by = [(tuple(parse_override(o)[0]), o) for o in overrides]
    messages = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc)
        hits = [o for path, o in set_by if path[:len(loc)] == loc or loc[:len(path)] == path]
        line = lines.get(loc)
        where = f"override {', '.join(hits)}" if hits else f"{source}:{line}" if line else source
        if err["type"] == "extra_forbidden":
            near = difflib.get_close_matches(loc[-1], _fields_at(loc), n=1, cutoff=0.5)
            tip = f" (did you mean '{'.'.join([*loc[:-1], near[0]])}'?)" if near else ""
            messages.append(f"{where}: unknown key '{key}'{tip}")
        else:
            value = err.get("input")
            got = "" if isinstance(value, dict) else f" (got {value!r})"  # a whole section says nothing
            msg = err["msg"].removeprefix("Value error, ")
            messages.append(f"{where}: {key}: {msg}{got}")
    return LmforgeError("invalid config:\n  " + "\n  ".join(messages), "see docs/config.md for every key")


def parse_override(item: str) -> tuple[list[str], Any]:
    """`train.lr=1e-3` -> (['train', 'lr'], 0.001). Values are parsed as YAML scalars or lists."""
    if "=" not in item:
        raise LmforgeError(f"override '{item}' is not of the form section.key=value", "example: train.steps=500")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise LmforgeError(f"override '{item}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads "1e-3" as text; people mean a number
        try:
            value = float(value)
        except ValueError:
            pass
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        parts, value = parse_override(item)
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise LmforgeError(f"override '{item}': '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return data


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(
    path: str | Path | None = None,
    preset: str | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Resolve a config: preset (or 'default'), then the user's file on top, then key=value overrides."""
    data: dict[str, Any] = {}
    lines: dict[tuple[str, ...], int] = {}
    source = "<defaults>"
    if preset or path is None:
        name = preset or "default"
        data, lines = _read_yaml(preset_path(name))
        data.setdefault("name", name)
        source = f"preset '{name}'"
    preset_data = copy.deepcopy(data)
    user: dict[str, Any] = {}
    if path is not None:
        user, lines = _read_yaml(Path(path))
        data = _merge(data, user)
        data.setdefault("name", Path(path).stem)
        source = str(path)
    data = apply_overrides(data, overrides or [])
    data = size_over_preset(data, preset_data, user, overrides or [])
    data = folder_over_preset(data, preset_data, user, overrides or [])
    data = fill_model(data)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, source, lines, overrides or []) from None


def dump_config(cfg: Config) -> str:
    """The fully resolved config as YAML, every default written out."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def _without_password(url: str) -> str:
    """A database URL as it may be printed: user:secret@host becomes user:***@host."""
    head, sep, tail = url.partition("://")
    if not sep or "@" not in tail:
        return url
    cred, _, host = tail.rpartition("@")
    user = cred.split(":", 1)[0]
    return f"{head}://{user}{':***' if ':' in cred else ''}@{host}"


def config_over(base: Config, path: str | Path | None, overrides: list[str]) -> Config:
    """A resolved config (a base run's, say) with a YAML file's keys and key=value overrides on
    top, validated like `load_config`'s."""
    data = base.model_dump(mode="json")
    lines: dict[tuple[str, ...], int] = {}
    source = "<base config>"
    if path is not None:
        user, lines = _read_yaml(Path(path))
        data = _merge(data, user)
        source = str(path)
    data = fill_model(apply_overrides(data, overrides))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, source, lines, overrides) from None


def outside_effects(cfg: Config, sections: tuple[str, ...] = ("data", "monitor")) -> list[str]:
    """The keys in effect that run commands or reach the network, each with its value and what it
    does, so a run from someone else's config says so before it starts (schema.OUTSIDE_KEYS)."""
    data, mon = cfg.data, cfg.monitor
    active: dict[str, Any] = {}
    if data.executor != "local":
        active["data.executor"] = data.executor
    if data.executor == "slurm":
        active["data.slurm.env_command"] = data.slurm.env_command or "(activates this Python's venv)"
        if data.slurm.sbatch_args:
            active["data.slurm.sbatch_args"] = data.slurm.sbatch_args
    if data.executor == "ray" and data.ray.address:
        active["data.ray.address"] = data.ray.address
    if mon.wandb and mon.wandb_mode == "online":
        active["monitor.wandb_mode"] = "online"
    if mon.mlflow and mon.mlflow_uri and not mon.mlflow_uri.startswith(("file:", "sqlite:", "/", ".")):
        active["monitor.mlflow_uri"] = mon.mlflow_uri
    if cfg.tune.storage is not None:
        active["tune.storage"] = _without_password(cfg.tune.storage)
    return [f"{key}={value!r}: {OUTSIDE_KEYS[key]}" for key, value in active.items()
            if key.split(".")[0] in sections]
