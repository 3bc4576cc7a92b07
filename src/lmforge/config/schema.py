"""The config schema: one plain pydantic model per stage section, and nothing else.

Every key, its type, default and allowed range live here; loading (presets, YAML with line
numbers, key=value overrides, filling a size preset or a Hugging Face folder's shape) lives in
config/load.py. This module imports nothing of lmforge but `errors`, so every stage can depend
on it. No value in a config is ever evaluated as code; the few keys that run commands or reach
the network on purpose are listed in OUTSIDE_KEYS below, documented in docs/config.md, and
printed before a run uses them (config.load.outside_effects).
"""

from __future__ import annotations

import codecs
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lmforge.errors import LmforgeError

# Keys whose values leave this process: they run commands or reach the network. A config from
# someone else can use them; `lmforge run`/stage commands print the ones in effect before use.
OUTSIDE_KEYS: dict[str, str] = {
    "data.executor": "`slurm` submits jobs with sbatch; `ray` starts or joins a Ray cluster",
    "data.slurm.env_command": "a shell line every Slurm task runs before it starts",
    "data.slurm.sbatch_args": "extra #SBATCH lines of every Slurm job",
    "data.ray.address": "the Ray cluster phase 1's tasks are sent to (their code runs there)",
    "monitor.wandb_mode": "`online` sends metrics and the config to Weights & Biases' servers",
    "monitor.mlflow_uri": "an http(s) or database URI sends metrics and the config there",
    "tune.storage": "a database URL: the study's trials, values and config keys are stored there",
}


class Section(BaseModel):
    """Base for every section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FieldRule(Section):
    """What to do when a record's field is missing, null, empty or of the wrong type."""

    action: Literal["reject", "fill", "majority"] = "reject"
    value: str | int | float | bool | None = Field(None, description="the constant for action 'fill'")
    type: Literal["str", "int", "float", "bool", "any"] = "any"

    @model_validator(mode="after")
    def _fill_has_value(self) -> FieldRule:
        if self.action == "fill" and self.value is None:
            raise ValueError("action 'fill' needs a value")
        return self


class SourceConfig(Section):
    """One input: a file, folder or glob, read in one format, with its field mapping."""

    path: str
    name: str | None = Field(None, description="name in the ledger (default: the path)")
    format: Literal["auto", "text", "jsonl", "csv", "tsv", "parquet", "hf"] = "auto"
    text_field: str = "text"
    id_field: str | None = "id"
    label_field: str | None = None
    meta_fields: list[str] | None = Field(None, description="fields kept as metadata; None keeps all")
    split_docs: Literal["file", "blank_lines", "regex"] = "file"
    split_pattern: str | None = Field(None, description="regex separating documents when split_docs=regex")
    encoding: str = Field("auto", description="'auto' detects it (charset-normalizer), else a codec name")
    on_decode_error: Literal["replace", "reject"] = "replace"
    weight: float = Field(1.0, gt=0.0, description="relative share of tokens when sources are mixed")
    max_tokens: int | None = Field(None, ge=1, description="token budget for this source")
    fields: dict[str, FieldRule] = Field(default_factory=dict, description="missing-value rule per field")

    @model_validator(mode="after")
    def _regex_compiles(self) -> SourceConfig:
        if self.split_docs == "regex":
            if not self.split_pattern:
                raise ValueError("split_docs=regex needs split_pattern")
            try:
                re.compile(self.split_pattern)
            except re.error as exc:
                raise ValueError(f"split_pattern is not a valid regex: {exc}") from None
        if self.encoding != "auto":
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ValueError(f"unknown encoding '{self.encoding}'") from None
        return self


class NearDedupConfig(Section):
    """MinHash LSH near-duplicate removal (Broder 1997; bands/rows as in datasketch)."""

    threshold: float = Field(0.8, gt=0.0, lt=1.0, description="Jaccard similarity of shingle sets")
    num_perm: int = Field(128, ge=16, le=1024)
    ngram: int = Field(5, ge=1, le=32, description="word n-gram shingles (datatrove and text-dedup use 5)")
    cjk_ngram: int = Field(5, ge=1, le=32, description="character n-grams for CJK text")
    verify: Literal["exact", "estimate", "none"] = "exact"
    keep: Literal["first", "longest", "quality"] = "first"
    action: Literal["remove", "cluster"] = Field(
        "remove", description="remove duplicates, or keep them tagged with one cluster id")


class RayConfig(Section):
    """data.executor=ray: phase 1 as Ray tasks (datatrove's RayPipelineExecutor)."""

    address: str | None = Field(None, description="None: RAY_ADDRESS or a new local Ray; 'auto': the cluster "
                                "this node joined (`ray start`); or ray://HOST:10001")
    cpus_per_task: int = Field(1, ge=1, description="CPUs Ray reserves for each datatrove task")
    mem_per_cpu_gb: float = Field(2.0, gt=0.0, description="memory Ray reserves per reserved CPU")


class SlurmConfig(Section):
    """data.executor=slurm: phase 1 as a Slurm job array (datatrove's SlurmPipelineExecutor)."""

    partition: str | None = Field(None, description="sbatch --partition; required with executor=slurm")
    time: str = Field("01:00:00", min_length=1, description="sbatch --time for each task, e.g. '2:00:00' "
                      "or '1-00:00:00'; a number is seconds (YAML reads unquoted 2:00:00 as 7200)")
    cpus_per_task: int = Field(1, ge=1, description="sbatch --cpus-per-task")
    mem_per_cpu_gb: int = Field(2, ge=1, description="sbatch --mem-per-cpu, in GB")
    qos: str | None = Field(None, description="sbatch --qos; None uses the cluster's default")
    job_name: str = Field("lmforge-data", min_length=1)
    env_command: str | None = Field(None, description="shell line run before each task; None activates this "
                                    "Python's venv (nothing outside a venv)")
    sbatch_args: dict[str, str | int] = Field(default_factory=dict,
                                              description="more #SBATCH lines, e.g. {account: proj, mem: 16G}")

    @field_validator("time", mode="before")
    @classmethod
    def _seconds_to_clock(cls, value: Any) -> Any:
        """YAML 1.1 turns unquoted 2:00:00 into 7200 (seconds); give Slurm back H:MM:SS."""
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return f"{value // 3600}:{value // 60 % 60:02d}:{value % 60:02d}"
        return value


class DataConfig(Section):
    """Where documents come from, how they are cleaned, and how they are split."""

    corpus: Literal["shakespeare", "none"] = "shakespeare"
    authors: list[Literal["shakespeare", "milton"]] = ["shakespeare"]
    editions: list[Literal["modern", "folio"]] = ["modern"]
    corpus_weight: float = Field(1.0, gt=0.0)
    paths: list[str] = Field(default_factory=list, description="your own .txt/.md files, folders, globs or .jsonl")
    text_field: str = "text"
    sources: list[SourceConfig] = Field(default_factory=list, description="inputs with formats and field maps")
    # cleaning
    normalize: Literal["NFC", "NFKC", "none"] = "NFC"
    fullwidth: bool = Field(True, description="fold full-width letters, digits and spaces to half-width")
    fix_mojibake: bool = Field(False, description="repair mojibake with ftfy (pip install lmforge[data-extra])")
    strip_html: bool = False
    strip_gutenberg: bool = True
    boilerplate_min_docs: int = Field(0, ge=0, description="drop lines repeated in at least N documents; 0 = off")
    pii: list[Literal["email", "phone", "ip", "credit_card", "national_id"]] = [
        "email", "phone", "ip", "credit_card", "national_id"]
    min_chars: int = Field(200, ge=0)
    max_doc_chars: int = Field(5_000_000, ge=1000, description="longer text documents are cut at a line break; "
                               "longer record lines are rejected (bounds memory)")
    max_expansion: float = Field(100.0, gt=1.0, description="a .gz/.zst input expanding more than this many "
                                 "times its size (past 64 MiB) is refused as a decompression bomb")
    # quality
    quality: Literal["off", "books", "web", "code"] = "off"
    filters: list[Literal["gopher_quality", "gopher_repetition", "c4", "fineweb", "code"]] | None = Field(
        None, description="which quality filters run; None uses the preset's list")
    thresholds: dict[str, float] = Field(default_factory=dict, description="override one rule, e.g. c4.min_sentences")
    languages: list[str] = Field(default_factory=list, description="keep only these ISO 639-1 languages")
    language_threshold: float = Field(0.65, ge=0.0, le=1.0)
    detect_language: bool = Field(False, description="record each document's language (always on with languages)")
    # dedup
    dedup: Literal["exact", "near", "none"] = "near"
    near: NearDedupConfig = Field(default_factory=NearDedupConfig)
    dedup_against: list[str] = Field(default_factory=list, description="existing corpus to deduplicate against")
    # engine
    tasks: int = Field(1, ge=1, description="datatrove tasks (input shards)")
    workers: int = Field(1, ge=1, description="datatrove tasks run at once")
    executor: Literal["local", "ray", "slurm"] = Field(
        "local", description="who runs phase 1's tasks; see docs/data.md 'On a cluster'")
    ray: RayConfig = Field(default_factory=RayConfig)
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)
    # splits
    val_fraction: float = Field(0.05, ge=0.0, lt=0.5)
    test_fraction: float = Field(0.05, ge=0.0, lt=0.5)
    min_val_docs: int = Field(1, ge=0)
    min_test_docs: int = Field(1, ge=0)
    split_stratify: Literal["none", "source", "label"] = Field(
        "none", description="split each source (or label) in the same ratios")
    split_group: Literal["cluster", "none"] = Field(
        "cluster", description="keep each near-duplicate cluster in one split")
    max_docs: int | None = Field(None, ge=1, description="keep only the first N documents (for tiny runs)")
    seed: int = 1337

    @field_validator("thresholds", mode="before")
    @classmethod
    def _flatten_thresholds(cls, value: Any) -> Any:
        """Accept {c4: {min_sentences: 3}} (what `data.thresholds.c4.min_sentences=3` becomes) too."""
        if not isinstance(value, dict):
            return value
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            if isinstance(inner, dict):
                flat.update({f"{key}.{k}": v for k, v in inner.items()})
            else:
                flat[key] = inner
        return flat

    @model_validator(mode="after")
    def _executor_settings(self) -> DataConfig:
        if self.executor == "slurm" and not self.slurm.partition:
            raise LmforgeError("data.executor=slurm needs data.slurm.partition (the partition to run on)",
                               "set data.slurm.partition=NAME; `sinfo -s` lists the cluster's partitions")
        return self


class TokenizerConfig(Section):
    """Which tokenizer to train with the `tokenizers` library, and how splits are packed."""

    kind: Literal["bytelevel_bpe", "bpe", "unigram", "wordpiece", "char", "pretrained"] = Field(
        "bytelevel_bpe", description="pretrained: use tokenizer.path as is, no training")
    path: str | None = Field(None, description="pretrained: a tokenizer.json, or a folder holding one "
                             "(default: model.init_from)")
    vocab_size: int = Field(2048, ge=64, le=1_000_000, description="including special tokens")
    min_frequency: int = Field(2, ge=1, description="a pair (or character) must occur this often")
    eos_token: str = Field("<|endoftext|>", min_length=1, description="written after every document")
    bos_token: str | None = Field(None, description="when set, written before every document")
    pad_token: str | None = Field(None, description="reserved for padding; never written by packing")
    unk_token: str = Field("<unk>", min_length=1, description="for unseen characters (not byte-level BPE)")
    dtype: Literal["auto", "uint16", "uint32"] = Field("auto", description="token file type; auto picks uint16 when the vocabulary fits")
    workers: int = Field(0, ge=0, le=256, description="encoding processes; 0 encodes in-process on tokenizers' threads")
    batch_docs: int = Field(64, ge=1, description="documents per encode batch")
    leakage_ngram: int = Field(13, ge=1, le=64, description="word n-gram length of the train/held-out overlap check")

    @model_validator(mode="after")
    def _bytes_fit(self) -> TokenizerConfig:
        # byte-level BPE starts from all 256 byte symbols (GPT-2); a smaller vocabulary is silently ignored
        specials = len({t for t in (self.eos_token, self.bos_token, self.pad_token) if t})
        if self.kind == "bytelevel_bpe" and self.vocab_size < 256 + specials:
            raise ValueError(f"byte-level BPE needs vocab_size >= {256 + specials} (256 bytes + special tokens), "
                             f"got {self.vocab_size}")
        # special_tokens() merges equal strings into one id, so unseen characters would be packed as EOS
        if self.kind not in ("bytelevel_bpe", "pretrained") and self.unk_token in (
                self.eos_token, self.bos_token, self.pad_token):
            raise ValueError(f"unk_token {self.unk_token!r} is also the EOS, BOS or PAD token, so unknown "
                             "characters would be written as that token; give unk_token its own string")
        return self


Family = Literal["gpt", "llama", "lstm", "gru", "cnn", "encoder"]
InitScheme = Literal["auto", "torch", "normal", "gpt2", "small", "xavier_uniform", "xavier_normal",
                     "kaiming_uniform", "kaiming_normal", "orthogonal", "zero_residual"]
InitOverride = Literal["torch", "normal", "scaled", "small", "xavier_uniform", "xavier_normal",
                       "kaiming_uniform", "kaiming_normal", "orthogonal", "zero", "ones"]
TRANSFORMERS = ("gpt", "llama", "encoder")


class ModelConfig(Section):
    """The model's family, shape and initialisation (docs/models.md explains every key).

    `size` names a preset of models/sizes.py; loading (config/load.py) fills the keys it defines
    that are not given here.
    """

    family: Family = "gpt"
    size: str | None = Field(None, description="a size preset of the family (see `lmforge model sizes`)")
    n_layer: int = Field(4, ge=1, le=256)
    n_head: int = Field(4, ge=1, le=256, description="attention heads (transformers)")
    n_kv_head: int | None = Field(None, ge=1, le=256, description="key/value heads for grouped-query attention (llama)")
    n_embd: int = Field(128, ge=8, le=65536, description="width; the hidden size of RNN and CNN layers")
    ffn_dim: int | None = Field(None, ge=1, description="MLP hidden size (gpt: 4·n_embd, llama: ≈8/3·n_embd)")
    block_size: int = Field(128, ge=4, le=131072)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    bias: bool = False
    activation: Literal["gelu", "gelu_tanh"] = Field("gelu", description="gpt MLP activation")
    norm_eps: float = Field(1e-5, gt=0.0, le=1e-1)
    rope_theta: float = Field(10000.0, gt=0.0, description="llama rotary base")
    qk_norm: bool = Field(False, description="RMS-normalise queries and keys per head (llama)")
    tie_embeddings: bool = True
    kernel_size: int = Field(4, ge=2, le=64, description="cnn convolution width")
    dilation_cycle: int = Field(4, ge=1, le=16, description="cnn dilations 1,2,4,.. restart every N layers")
    tbptt: bool = Field(True, description="rnn: carry the hidden state across consecutive training windows")
    init_from: str | None = Field(None, description="a local Hugging Face folder (GPT2LMHeadModel or "
                                  "LlamaForCausalLM): shape keys from its config.json, weights from its "
                                  "model.safetensors")
    vocab_size: int | None = Field(None, ge=2, description="output rows; default: the tokenizer's vocabulary "
                                   "(init_from sets the folder's)")
    init: InitScheme = Field("auto", description="'auto' = the family default (docs/models.md)")
    init_std: float = Field(0.02, gt=0.0, le=1.0)
    init_fan_mode: Literal["fan_in", "fan_out"] = "fan_in"
    init_overrides: dict[str, InitOverride] = Field(
        default_factory=dict, description="parameter-name glob -> scheme, e.g. {'*.proj.weight': zero}")

    @model_validator(mode="after")
    def _shapes_fit(self) -> ModelConfig:
        if self.family in TRANSFORMERS and self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.family == "llama":
            kv = self.n_kv_head or self.n_head
            if self.n_head % kv:
                raise ValueError(f"n_head ({self.n_head}) must be divisible by n_kv_head ({kv})")
            if (self.n_embd // self.n_head) % 2:
                raise ValueError(f"llama head width n_embd/n_head = {self.n_embd // self.n_head} must be even (RoPE)")
        return self

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def mlp_dim(self) -> int:
        """MLP hidden size: GPT-2's 4·d; LLaMA's 2/3·4·d rounded up to a multiple of 32 (Shazeer 2020
        keeps SwiGLU's parameter count equal to a 4·d GELU MLP with the 2/3 factor)."""
        if self.ffn_dim:
            return self.ffn_dim
        if self.family == "llama":
            return -(-int(8 * self.n_embd / 3) // 32) * 32
        return 4 * self.n_embd


OptimizerName = Literal["adamw", "adam", "sgd", "lion", "adafactor", "muon"]
ScheduleName = Literal["constant", "linear", "cosine", "wsd", "step", "exponential", "inverse_sqrt",
                       "triangular", "triangular2", "exp_range", "one_cycle"]


# schedules whose shape follows the run's length, so a time budget can set it (train/budget.py)
BUDGET_SCHEDULES = ("constant", "linear", "cosine", "wsd", "one_cycle", "exponential")


class TrainConfig(Section):
    """Optimizer, schedule, batch, precision, checkpoints and the loop's rhythm (docs/training.md)."""

    steps: int = Field(2000, ge=1)
    # batch: the global batch is what one optimizer step sees, over every micro-batch and process
    batch_size: int = Field(16, ge=1, description="global batch in sequences per optimizer step")
    batch_tokens: int | None = Field(None, ge=1, description="global batch in tokens; sets batch_size = "
                                     "batch_tokens / model.block_size (must divide)")
    micro_batch_size: int | None = Field(None, ge=1, description="sequences per forward pass and process; "
                                         "default: the whole share of the batch (no accumulation)")
    grad_accum: int | None = Field(None, ge=1, description="micro-batches per optimizer step; an alternative "
                                   "to micro_batch_size")
    batch_warmup_steps: int = Field(0, ge=0, description="ramp the global batch linearly from one micro-batch "
                                    "per process to batch_size over these steps (GPT-3)")
    loader: Literal["random", "epoch"] = Field("random", description="random windows, or every window once "
                                               "per epoch in a fresh shuffled order")
    # optimizer
    optimizer: OptimizerName = "adamw"
    lr: float = Field(3e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(0.1, ge=0.0, le=10.0)
    beta1: float = Field(0.9, ge=0.0, lt=1.0)
    beta2: float = Field(0.99, ge=0.0, lt=1.0)
    eps: float = Field(1e-8, gt=0.0, le=1.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum; Muon uses 0.95")
    nesterov: bool = False
    lr_mult: dict[Literal["matrix", "embedding", "norm_bias"], float] = Field(
        default_factory=dict, description="per-group LR multipliers, e.g. {embedding: 0.5}")
    layer_decay: float = Field(1.0, gt=0.0, le=1.0, description="layer-wise LR decay: each block gets this "
                               "times the LR of the one above it (fine-tuning; 1 = off)")
    l1: float = Field(0.0, ge=0.0, description="L1 penalty strength on weight matrices (0 = off)")
    fused: Literal["auto", "fused", "foreach", "off"] = "auto"
    # schedule
    schedule: ScheduleName = "cosine"
    warmup_steps: int = Field(100, ge=0)
    min_lr: float = Field(3e-4, ge=0.0, description="floor of decaying schedules; base LR of cyclical ones")
    decay_fraction: float = Field(0.2, gt=0.0, le=1.0, description="wsd: share of steps spent decaying")
    step_size: int = Field(500, ge=1, description="step: steps between drops; cyclical: half a cycle")
    gamma: float | None = Field(None, gt=0.0, le=1.0, description="step: drop factor (0.1); exponential and "
                                "exp_range: per-step factor (default reaches min_lr at the last step)")
    pct_start: float = Field(0.3, gt=0.0, lt=1.0, description="one_cycle: share of steps rising")
    div_factor: float = Field(25.0, ge=1.0, description="one_cycle: start at lr / div_factor")
    final_div_factor: float = Field(1e4, ge=1.0, description="one_cycle: end at start / final_div_factor")
    # gradients and precision
    grad_clip: float = Field(1.0, ge=0.0, description="max gradient norm (or value); 0 turns clipping off")
    clip_mode: Literal["norm", "value"] = "norm"
    doc_mask: bool = Field(False, description="attend only within each document of a training window (gpt, llama)")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "float32", description="auto: bfloat16 where the hardware has bf16 matmuls (CUDA, or a CPU with avx512_bf16/AMX), else float32")
    compile: bool = Field(False, description="torch.compile the model and the loss")
    compile_loss: Literal["auto", "on", "off"] = Field(
        "auto", description="compile the loss alone; auto: with train.compile, or when a compiler is present "
                            "and the run's bf16/fp16 logits reach 2e9 elements (the saving then repays the compile)")
    activation_checkpointing: bool = False
    max_bad_steps: int = Field(5, ge=1, description="stop after this many non-finite losses in a row "
                               "(each such step is skipped, never applied)")
    # rhythm, checkpoints
    eval_interval: int = Field(250, ge=1)
    eval_batches: int = Field(20, ge=1)
    log_interval: int = Field(10, ge=1)
    checkpoint_interval: int = Field(500, ge=1)
    keep_checkpoints: int = Field(2, ge=1, description="keep the newest K, plus the best by validation loss")
    checkpoint_format: Literal["full", "sharded"] = Field(
        "full", description="full: gathered weights in safetensors; sharded: every process writes its own "
                            "shard with torch.distributed.checkpoint (for FSDP models too big to gather)")
    # where and how
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    distributed: Literal["ddp", "fsdp"] = Field("ddp", description="under torchrun: how to spread the model")
    threads: int = Field(0, ge=0, description="CPU threads; 0 uses every core")
    seed: int = 1337
    max_seconds: float | None = Field(None, gt=0, description="stop training after this wall time, wherever the "
                                      "schedule is (time_budget fits the schedule to the time instead)")
    time_budget: float | None = Field(None, gt=0, description="seconds of training: a probe measures how many steps "
                                      "fit, and the schedule ends with the budget (docs/training.md)")
    budget_steps: int | None = Field(None, ge=1, description="written by a time-budgeted run: the steps its budget "
                                     "gave there; when set, the run trains exactly that many and measures nothing")
    budget_replans: list[tuple[int, int]] = Field(
        default_factory=list, description="written by a time-budgeted run: [step, steps] for each count it "
        "planned, from the probe's [0, n] on; the decay keeps its progress at each change, so the LR bends "
        "there instead of jumping (train/schedule.py). Used only while its last count is train.steps")

    @model_validator(mode="after")
    def _budget_schedule(self) -> TrainConfig:
        """A time budget sets the step count, so the schedule must stretch to it: a shape fixed in
        steps (step_size cycles, a given gamma, inverse square root) would not end with the budget."""
        if self.time_budget is None:
            return self
        fixed = (self.schedule in ("step", "triangular", "triangular2", "exp_range", "inverse_sqrt")
                 or (self.schedule == "exponential" and self.gamma is not None))
        if fixed:
            name = f"{self.schedule} with gamma" if self.schedule == "exponential" else self.schedule
            raise ValueError(f"schedule '{name}' cannot "
                             "follow train.time_budget: its shape is fixed in steps, not by the run's length; use "
                             f"{', '.join(BUDGET_SCHEDULES)} (exponential without gamma)")
        return self

    @field_validator("fused", "compile_loss", mode="before")
    @classmethod
    def _yaml_on_off(cls, value: Any, info: Any) -> Any:
        """YAML 1.1 reads `on`/`off` as booleans: take them back as the words they were."""
        if isinstance(value, bool):
            return {"fused": ("off", "fused"), "compile_loss": ("off", "on")}[info.field_name][value]
        return value


class EvalConfig(Section):
    """What `lmforge eval` measures and samples."""

    splits: list[Literal["val", "test"]] = Field(
        ["val", "test"], min_length=1, description="held-out splits to score, at least one (the first also untrained)")
    max_tokens: int | None = Field(None, ge=1, description="evaluate at most this many tokens per split")
    batch_size: int = Field(16, ge=1)
    samples: int = Field(3, ge=0)
    sample_tokens: int = Field(200, ge=1)
    prompt: str = "ROMEO:"
    temperature: float = Field(0.8, gt=0.0, le=10.0)
    top_k: int | None = Field(50, ge=1)
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="nucleus sampling mass for samples")
    seed: int = 1337
    accuracy_top_k: int = Field(5, ge=1, description="k of the top-k next-token accuracy")
    bootstrap_rounds: int = Field(1000, ge=0, description="resamples for every 95% interval; 0 = none")
    tasks: list[str] = Field(default_factory=lambda: ["next_line"],
                             description="multiple-choice tasks: built-in names (next_line) or JSONL files")
    task_items: int = Field(100, ge=1, description="questions in a built-in task")
    task_choices: int = Field(4, ge=2, le=26, description="choices per built-in question")
    cv_folds: int = Field(0, ge=0, description="k-fold cross-validation over train+val documents; 0 = holdout")
    cv_stratified: bool = Field(False, description="stratify the folds by document source")
    cv_repeats: int = Field(1, ge=1, description="repeat the k folds with new shuffles")
    cv_steps: int | None = Field(None, ge=1, description="training steps per fold; default train.steps")

    @model_validator(mode="after")
    def _cv_needs_two_folds(self) -> EvalConfig:
        if self.cv_folds == 1:
            raise ValueError("cv_folds must be 0 (holdout) or at least 2")
        return self


class EarlyStopConfig(Section):
    """Stop when a metric stops improving. Defaults follow Lightning's EarlyStopping
    (patience 3 checks, min_delta 0, mode min); `target` is its stopping_threshold."""

    enabled: bool = False
    metric: Literal["val_loss", "loss"] = "val_loss"
    mode: Literal["min", "max"] = "min"
    patience: int = Field(3, ge=1, description="checks without improvement before stopping")
    min_delta: float = Field(0.0, ge=0.0, description="smallest change that counts as improvement")
    target: float | None = Field(None, description="stop as soon as the metric reaches this value")
    restore_best: bool = Field(False, description="put the best weights back before the last checkpoint")


class PlateauConfig(Section):
    """Cut the LR when a metric plateaus. Defaults follow Keras' ReduceLROnPlateau
    (factor 0.1, patience 10, min_delta 1e-4 absolute, cooldown 0, min_lr 0)."""

    enabled: bool = False
    metric: Literal["val_loss", "loss"] = "val_loss"
    mode: Literal["min", "max"] = "min"
    factor: float = Field(0.1, gt=0.0, lt=1.0)
    patience: int = Field(10, ge=0)
    threshold: float = Field(1e-4, ge=0.0)
    cooldown: int = Field(0, ge=0)
    min_lr: float = Field(0.0, ge=0.0)


class AverageConfig(Section):
    """Weight averaging: an EMA of the weights or stochastic weight averaging (SWA)."""

    kind: Literal["none", "ema", "swa"] = "none"
    ema_decay: float = Field(0.999, gt=0.0, lt=1.0)
    start: float = Field(0.75, ge=0.0, lt=1.0, description="fraction of steps before averaging starts")
    every: int = Field(10, ge=1, description="update the average every N steps")


class MonitorConfig(Section):
    """Dashboards, training statistics and live adjustment (docs/monitoring.md)."""

    console: Literal["auto", "panel", "bar", "lines", "none"] = Field(
        "auto", description="auto: live panel on a terminal, plain progress lines otherwise (files, CI); "
        "panel and bar also print lines without a terminal")
    tensorboard: bool = True
    wandb: bool = False
    wandb_mode: Literal["offline", "online"] = Field("offline", description="offline sends nothing anywhere")
    wandb_project: str = "lmforge"
    mlflow: bool = False
    mlflow_uri: str | None = Field(None, description="tracking URI; default a SQLite file in the run directory")
    stats_interval: int = Field(100, ge=0, description="steps between training statistics; 0 turns them off")
    histogram_interval: int = Field(0, ge=0, description="steps between weight/gradient histograms; 0 = off")
    sample_tokens: int = Field(0, ge=0, description="tokens of text sample logged at each eval; 0 = off")
    source_loss: bool = Field(False, description="validation loss per data source at each eval (an extra pass)")
    peak_flops: float | None = Field(None, gt=0, description="for MFU; default: measured matmul rate")
    control: bool = Field(True, description="poll RUN/control/ for `lmforge ctl` commands")
    early_stop: EarlyStopConfig = Field(default_factory=EarlyStopConfig)
    plateau: PlateauConfig = Field(default_factory=PlateauConfig)
    average: AverageConfig = Field(default_factory=AverageConfig)


class DoctorConfig(Section):
    """The training doctor: detectors over the run's statistics, and what to do about a finding
    (docs/doctor.md). Thresholds were chosen on the scenario suite (bench/doctor.py)."""

    policy: Literal["off", "suggest", "auto"] = Field(
        "suggest", description="off: no checks; suggest: record diagnoses with remedies; auto: also apply "
        "the first remedy, verify it, undo it and try the next when it did not help")
    window: int = Field(20, ge=4, description="logged steps in the rolling window of the spike z-scores")
    spike_z: float = Field(6.0, gt=0.0, description="loss or gradient-norm z-score that counts as a spike")
    spike_min_rise: float = Field(0.15, ge=0.0, description="a loss spike must also rise this share above the "
                                  "window's median")
    explode_factor: float = Field(20.0, gt=1.0, description="gradient norm this many times the early median "
                                  "counts as exploding")
    explode_init_loss: float = Field(2.0, gt=1.0, description="a first loss this many times log(vocabulary) "
                                     "means the initialisation blew the outputs up")
    explode_ratio: float = Field(70.0, gt=1.0, description="first-to-last block gradient-norm ratio above "
                                 "this is exploding (AUTOTRAINER)")
    vanish_ratio: float = Field(1e-3, gt=0.0, description="first-to-last block gradient-norm ratio below this "
                                "is vanishing (AUTOTRAINER)")
    vanish_norm: float = Field(1e-4, gt=0.0, description="global gradient norm below this counts as vanishing")
    vanish_share: float = Field(0.05, gt=0.0, lt=1.0, description="every block's weight gradient below this "
                                "share of the global norm, twice in a row, counts as vanishing")
    diverge_factor: float = Field(1.5, gt=1.0, description="smoothed loss this many times its best so far, or "
                                  "above the first loss, is divergence")
    update_high: float = Field(0.1, gt=0.0, description="median update/weight ratio above this: LR too high")
    update_low: float = Field(3e-4, gt=0.0, description="median update/weight ratio below this: LR too low")
    overfit_rise: float = Field(0.02, ge=0.0, description="validation loss this share above its best, "
                                "while training loss still falls, is overfitting")
    overfit_patience: int = Field(2, ge=1, description="evaluations in a row above the best before overfitting")
    underfit_share: float = Field(0.93, gt=0.0, description="train and validation loss above this share of the "
                                  "unigram entropy, past min_progress of the run, is underfitting")
    min_progress: float = Field(0.5, ge=0.0, le=1.0, description="share of the steps before the slow-progress "
                                "detectors (underfitting, plateau, LR too low) may speak")
    plateau_gain: float = Field(0.005, ge=0.0, description="relative loss gain over the last plateau_span of "
                                "the run below this is a plateau")
    plateau_span: float = Field(0.3, gt=0.0, le=1.0, description="share of the steps the plateau gain is "
                                "measured over")
    plateau_level: float = Field(0.9, gt=0.0, description="a plateau counts only while the loss is above this "
                                 "share of the unigram entropy (lower, it is a good run's end, not stuck)")
    oscillation_share: float = Field(0.6, gt=0.0, le=1.0, description="share of sign changes in the loss's "
                                     "steps above which, with a large swing, the loss oscillates")
    oscillation_swing: float = Field(0.1, ge=0.0, description="mean absolute step of the loss, relative to "
                                     "its level, that counts as a large swing")
    dead_share: float = Field(0.9, gt=0.0, le=1.0, description="share of near-zero MLP activations in a block "
                              "above which its units are dead")
    repeat_epochs: float = Field(4.0, gt=0.0, description="passes over the training tokens above which the "
                                 "data repeats too often (Muennighoff et al. 2023: up to about 4 epochs "
                                 "are nearly as good as new data)")
    leak_overlap: float = Field(0.01, ge=0.0, le=1.0, description="share of validation 13-grams seen in training "
                                "above which validation leaks into training")
    verify_steps: int = Field(30, ge=1, description="auto: steps after a repair before it is judged")
    restart: bool = Field(True, description="auto: a remedy that changes a setting (LR, regularisation, "
                          "initialisation) restarts from step 0 with it; false: it goes on from where the run is")
    max_repairs: int = Field(6, ge=0, description="auto: repairs tried per run before the doctor only reports")

    @field_validator("policy", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        """YAML 1.1 reads `off` as false: take it back as the word it was."""
        return "off" if value is False else value


class ReportConfig(Section):
    """The run report."""

    title: str | None = None
    lang: Literal["en", "zh"] = Field("en", description="language of every heading, table header and figure "
                                      "label: en or zh (Chinese, drawn with the Noto Sans CJK font of mplfonts)")


class ParamSpec(Section):
    """One dimension of a hyperparameter search (docs/tuning.md). Written short as
    `{float: [lo, hi], log: true}`, `{int: [lo, hi], step: 2}` or `{choice: [a, b]}`; stored as
    kind + range (or values)."""

    kind: Literal["float", "int", "choice"]
    range: list[float] | None = Field(None, description="float and int: [low, high], both included")
    values: list[str | int | float | bool] | None = Field(None, description="choice: the values to try")
    log: bool = Field(False, description="float and int: sample on a log scale (low must be > 0)")
    step: float | None = Field(None, gt=0, description="int (default 1) or float: the spacing of the values")
    grid: int = Field(3, ge=2, le=64, description="sampler=grid: points on a float range without step")
    when: dict[str, str | int | float | bool | list[str | int | float | bool]] = Field(
        default_factory=dict, description="sample this key only when these keys of the space have these values")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        """`{float: [lo, hi]}` -> kind float, range [lo, hi]; `{choice: [...]}` -> kind choice, values."""
        if not isinstance(value, dict) or "kind" in value:
            return value
        kinds = [k for k in ("float", "int", "choice") if k in value]
        if len(kinds) != 1:
            raise ValueError("give exactly one of float: [low, high], int: [low, high] or choice: [values]")
        out = {k: v for k, v in value.items() if k != kinds[0]}
        out["kind"] = kinds[0]
        out["values" if kinds[0] == "choice" else "range"] = value[kinds[0]]
        return out

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.kind == "choice":
            if not self.values:
                raise ValueError("choice needs at least one value")
            if self.range is not None or self.log or self.step is not None:
                raise ValueError("choice takes values only (no range, log or step)")
            return self
        if self.range is None or len(self.range) != 2:
            raise ValueError(f"{self.kind} needs range [low, high]")
        low, high = self.range
        if not low < high:
            raise ValueError(f"impossible range [{low:g}, {high:g}]: low must be below high")
        if self.log and low <= 0:
            raise ValueError(f"log scale needs low > 0, got {low:g}")
        if self.log and self.step is not None:
            raise ValueError("log scale and step exclude each other (Optuna samples one or the other)")
        if self.kind == "int" and (low != int(low) or high != int(high) or
                                   (self.step is not None and self.step != int(self.step))):
            raise ValueError("int range and step must be whole numbers")
        if self.values is not None:
            raise ValueError(f"{self.kind} takes a range, not values")
        return self


class TuneConfig(Section):
    """`lmforge tune`: the search space, the search and where its study lives (docs/tuning.md)."""

    space: dict[str, ParamSpec] = Field(default_factory=dict, description="config key -> its range "
                                        "(model.*, train.*, monitor.* keys; data and tokenizer keys stay fixed)")
    sampler: Literal["grid", "random", "tpe", "gp", "cmaes", "qmc"] = Field(
        "tpe", description="how the next trial is chosen (Optuna's samplers)")
    pruner: Literal["none", "median", "sha", "hyperband"] = Field(
        "median", description="how a trial that is doing worse than others is stopped at an evaluation")
    trials: int = Field(20, ge=1, description="trials of the study in all (a resumed study counts its old ones)")
    metric: str = Field("val_loss", description="what the search optimises: val_loss or bits_per_byte (the final "
                        "validation loss, in nats or bits per byte), or task:NAME.METRIC, a multiple-choice task of "
                        "eval.tasks scored after every evaluation (task:next_line.acc_norm; metrics acc, acc_norm)")
    direction: Literal["auto", "minimize", "maximize"] = Field(
        "auto", description="auto: minimise a loss, maximise a task's accuracy")
    workers: int = Field(1, ge=1, le=256, description="worker processes on this machine sharing the study")
    storage: str | None = Field(None, description="None: a journal file in RUN/tune/; or an RDB URL "
                                "(postgresql://user@host/db) to share one study between machines")
    study: str | None = Field(None, description="the study's name in the storage (default: the config's name)")
    seed: int = Field(0, description="the sampler's seed (each trial trains with train.seed)")
    startup_trials: int = Field(5, ge=0, description="random trials before TPE/GP models (per Hyperband bracket), "
                                "and trials before the median pruner prunes")
    reduction_factor: int = Field(3, ge=2, description="sha and hyperband keep the best 1/reduction_factor of "
                                  "the trials at each rung (3: their papers' default)")
    min_steps: int | None = Field(None, ge=1, description="steps before a pruner may stop a trial (default: the "
                                  "first evaluation after the longest LR warm-up a trial can have, at least "
                                  "train.eval_interval)")

    @field_validator("metric")
    @classmethod
    def _metric_form(cls, value: str) -> str:
        """The form only; whether the task and its metric exist is checked when the study starts
        (tune/objective.py), where eval.tasks and the task files are known."""
        if value in ("val_loss", "bits_per_byte") or re.fullmatch(r"task:\S+\.\w+", value):
            return value
        raise ValueError(f"unknown metric {value!r}: use val_loss, bits_per_byte or task:NAME.METRIC "
                         "(e.g. task:next_line.acc_norm)")


class FinetuneConfig(Section):
    """`lmforge finetune`: a classification head on a pretrained base (docs/finetune.md).

    Documents come from the data stage (the `data` section, with its missing-value rules) and are
    split by document, stratified by label; passages are cut after the split, so no passage of a
    held-out document is trained on."""

    label_field: str = Field("author", min_length=1, description="record field holding the label: author, "
                             "edition or work for the built-in corpus, or a field of your own records")
    split: Literal["document", "position"] = Field("document", description="document: whole documents are held "
                                                   "out; position: the last part of every document is (for a "
                                                   "label that names the document, such as work)")
    group_field: str | None = Field(None, description="documents sharing this field's value share a split and a "
                                    "cross-validation fold (work: both editions of one play); near-duplicate "
                                    "clusters always do")
    passage_chars: int = Field(500, ge=20, description="characters per passage (cut at a space)")
    max_tokens: int = Field(512, ge=4, description="tokens read per passage; beyond model.block_size it is read in "
                            "windows whose pooled vectors are averaged")
    max_passages_per_doc: int | None = Field(60, ge=1, description="evenly spaced passages kept per training or "
                                             "validation document (None: all)")
    test_passages_per_doc: int | None = Field(None, ge=1, description="evenly spaced passages scored per held-out "
                                              "test document, split=document (None: all of them)")
    train_passages: int | None = Field(None, ge=2, description="keep this many training passages (a random, "
                                       "stratified subset: the training-set size of compare transfer)")
    val_fraction: float = Field(0.15, gt=0.0, lt=0.5, description="documents held out for validation")
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5, description="documents held out for the test")
    pooling: Literal["last", "mean", "cls"] = Field("last", description="last real token or mean (decoders); "
                                                    "cls (encoders)")
    init: Literal["pretrained", "scratch"] = Field("pretrained", description="scratch: the base's shape with "
                                                   "fresh weights (the transfer baseline)")
    freeze_embeddings: bool = False
    freeze_blocks: int = Field(0, ge=0, description="freeze the first k blocks")
    lora: bool = Field(False, description="train LoRA adapters (peft) and the head; the base stays frozen")
    lora_r: int = Field(8, ge=1)
    lora_alpha: float = Field(16.0, gt=0.0)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    lora_targets: list[str] | None = Field(None, description="module names to adapt; None: every attention "
                                           "and MLP projection of the family")
    head_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout before the classification head")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    class_weights: Literal["none", "balanced"] = Field("none", description="balanced: weight each class's loss by "
                                                       "n / (classes x its training passages), scikit-learn's rule")
    seed: int = 1337


class AugmentOp(Section):
    """One augmentation operation and how much it changes."""

    name: Literal["synonym", "insert", "swap", "delete", "char_noise", "span_mask", "sentence_shuffle",
                  "to_early", "to_modern", "paraphrase"] = Field(
        description="synonym / insert / swap / delete (EDA), char_noise, span_mask, sentence_shuffle, "
                    "to_early / to_modern (spelling learned from the corpus's paired editions), paraphrase "
                    "(words rewritten by a trained model: augment.paraphrase)")
    rate: float = Field(0.1, ge=0.0, le=1.0, description="share of words (characters for char_noise, sentences "
                        "for sentence_shuffle) changed, in [0, 1]")
    copies: int = Field(1, ge=1, le=20, description="augmented copies made of each training record")


class ParaphraseConfig(Section):
    """The paraphrase operation: a trained lmforge model rewrites a share of each record's words."""

    model: str | None = Field(None, description="the lmforge run (its newest valid checkpoint) or one of its "
                              "checkpoints/step-N folders whose model writes the new words")
    mode: Literal["spans", "continue"] = Field("spans", description="spans: spans of about 3 words, each "
                                               "rewritten after the text before it; continue: the last words "
                                               "rewritten as a continuation of the rest")
    temperature: float = Field(0.8, gt=0.0, le=10.0)
    top_k: int | None = Field(50, ge=1, description="sample among the k likeliest tokens; None: all")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="nucleus sampling mass; None: off")


class AugmentConfig(Section):
    """The optional augment stage (docs/labeling.md): augmented copies of the training split only;
    validation and test are never touched. Off unless `operations` is given."""

    operations: list[AugmentOp] = Field(default_factory=list, description="operations applied, each to every "
                                        "training record; empty: the stage is skipped")
    seed: int = 1337
    mask_token: str = Field("_", min_length=1, description="what span_mask writes for a masked span")
    synonym_vocab: int = Field(3000, ge=10, description="words given distributional neighbours (learned from "
                               "the training split)")
    spelling_pairs: int | None = Field(8, ge=1, description="paired editions the spelling table is learned from "
                                       "(None: all 35)")
    paraphrase: ParaphraseConfig = Field(default_factory=ParaphraseConfig)

    @model_validator(mode="after")
    def _paraphrase_model(self) -> AugmentConfig:
        if any(op.name == "paraphrase" for op in self.operations) and not self.paraphrase.model:
            raise ValueError("the paraphrase operation needs augment.paraphrase.model: a trained lmforge run "
                             "or one of its checkpoints/step-N folders (`lmforge run -o RUN` makes one)")
        return self


class LabelRule(Section):
    """A labeling function written as data: it votes `label` or abstains."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["keyword", "regex", "field", "length"]
    label: str = Field(min_length=1, description="the label voted when the rule matches")
    keywords: list[str] = Field(default_factory=list, description="keyword: any of these words (whole words, "
                                "case-insensitive)")
    pattern: str | None = Field(None, description="regex: a Python regular expression searched in the text")
    field: str | None = Field(None, description="field: the metadata field compared")
    equals: list[str] = Field(default_factory=list, description="field: the values that match")
    min_chars: int | None = Field(None, ge=0, description="length: at least this many characters")
    max_chars: int | None = Field(None, ge=0, description="length: at most this many characters")

    @model_validator(mode="after")
    def _complete(self) -> LabelRule:
        need = {"keyword": bool(self.keywords), "regex": bool(self.pattern),
                "field": bool(self.field and self.equals),
                "length": self.min_chars is not None or self.max_chars is not None}
        if not need[self.kind]:
            what = {"keyword": "keywords", "regex": "pattern", "field": "field and equals",
                    "length": "min_chars or max_chars"}[self.kind]
            raise ValueError(f"rule '{self.name}' of kind {self.kind} needs {what}")
        if self.pattern:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"rule '{self.name}': pattern {self.pattern!r} is not a regular expression: {exc}"
                                 ) from None
        return self


class LabelConfig(Section):
    """The optional label stage (docs/labeling.md): rules vote, a label model combines the votes,
    human answers win over both. Off unless `rules` is given."""

    field: str = Field("label", min_length=1, description="record field the chosen label is written to")
    labels: list[str] = Field(default_factory=list, description="the classes, in key order for `lmforge label` "
                              "(empty: the labels the rules vote)")
    rules: list[LabelRule] = Field(default_factory=list, description="labeling functions as data; empty: the "
                                   "stage is skipped")
    model: Literal["dawid_skene", "majority"] = Field("dawid_skene", description="how votes become one label: "
                                                      "Dawid-Skene EM (1979) or majority vote")
    min_confidence: float = Field(0.0, ge=0.0, le=1.0, description="records whose label probability is below "
                                  "this keep no label")
    seed: int = 1337


class Config(Section):
    """The whole run: one section per stage."""

    name: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+$")
    data: DataConfig = Field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    doctor: DoctorConfig = Field(default_factory=DoctorConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    label: LabelConfig = Field(default_factory=LabelConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, value: str) -> str:
        """runs/NAME must be a folder of its own: `.` or `..` (a file called `...yaml` has the
        stem `..`) would make the working directory the run, whose checkpoints a fresh run clears."""
        if set(value) == {"."}:
            raise ValueError(f"name {value!r} is not a folder of its own; name the run with letters or digits "
                             "(name: my-run, or rename the config file)")
        return value

    @model_validator(mode="after")
    def _pretrained_tokenizer_path(self) -> Config:
        """A pretrained tokenizer comes from tokenizer.path, else from the model.init_from folder."""
        if self.tokenizer.kind == "pretrained" and not self.tokenizer.path:
            if not self.model.init_from:
                raise ValueError("tokenizer.kind=pretrained needs tokenizer.path (a tokenizer.json or a folder "
                                 "holding one) or model.init_from")
            self.tokenizer.path = self.model.init_from
        if self.model.init_from and self.tokenizer.kind != "pretrained":
            raise ValueError(f"model.init_from starts from pretrained weights, but tokenizer.kind={self.tokenizer.kind} "
                             "would train a new tokenizer whose ids mean nothing to them; set "
                             "tokenizer.kind=pretrained (the folder's tokenizer.json, or tokenizer.path)")
        return self

    def section(self, name: str) -> dict[str, Any]:
        """A section as plain JSON-ready data (for stage identities)."""
        return getattr(self, name).model_dump(mode="json")
