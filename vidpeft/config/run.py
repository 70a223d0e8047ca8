"""RunConfig: the whole configuration of a training run, built once from recipe + flags + `--set`,
validated once, passed down as typed sections, written to WORK_DIR/config.yaml and read back from it.

config.yaml layout: `data:`, `test:`, `train:` (the sections), `model:` (backbone, method, options,
pretrained, backbone_options), the run's paths and switches, and `resolved:` (what the run derived:
world size, accumulation, lr, precision, loader workers)."""
from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from ..data.config import DataConfig, config_key
from ..errors import MissingFile, UnknownOption, UserError
from ..fileio import write_atomic
from .flags import FLAG_OF_KEY
from .recipes import load_recipe
from .train import TrainConfig
from .values import InvalidValue, check_known, field_names

# sections a `--set section.key=value` may address (backbone: the backbone's own options;
# methods: METHOD.option, e.g. methods.aim.adapter_dim)
SET_SECTIONS = ("data", "test", "train", "backbone", "methods")


@dataclass(frozen=True)
class ModelConfig:
    backbone: str
    method: str = "full"
    options: Mapping[str, Any] = field(default_factory=dict)  # the method's options
    pretrained: str | None = None  # checkpoint path (resolved) or hub name
    backbone_options: Mapping[str, Any] = field(default_factory=dict)  # e.g. drop_path_rate, head_norm


@dataclass(frozen=True)
class Resolved:
    """What a run derived from its configuration and machine (config.yaml's `resolved:`)."""

    world_size: int
    batch_size: int
    accumulation: int
    effective_batch_size: int
    lr: float
    precision: str
    num_workers: int | None = None  # the training loader's workers (data.num_workers auto resolved); None: not recorded
    compile: bool | None = None  # whether the model was compiled (train.compile, auto: on CUDA); None: not recorded
    device_augment: bool | None = None  # whether training clips were augmented on the device (data.device_augment, auto: on CUDA)


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    data_root: str
    work_dir: str
    lists: Mapping[str, str] = field(default_factory=lambda: {s: f"{s}.csv" for s in ("train", "val", "test")})
    recipe: str = "vpetl"
    dataset: str | None = None
    select_on_test: bool = False
    tensorboard: bool = False
    overwrite: bool = False
    resume: bool = False
    resolved: Resolved | None = None

    @property
    def work_path(self) -> Path:
        return Path(self.work_dir)

    @property
    def root(self) -> Path:
        return Path(self.data_root)

    def list_path(self, split: str) -> Path:
        return self.root / self.lists[split]

    def to_dict(self) -> dict[str, Any]:
        """The config.yaml mapping (plain types only)."""
        out: dict[str, Any] = {**self.data.sections(), "train": _plain(asdict(self.train)),
                               "model": _plain(asdict(self.model))}
        out.update({f.name: _plain(getattr(self, f.name)) for f in fields(self)
                    if f.name not in ("model", "data", "train", "resolved")})
        out["resolved"] = asdict(self.resolved) if self.resolved else None
        return out

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any], where: str = "config") -> "RunConfig":
        """A RunConfig from a config.yaml mapping; unknown keys are a one-line error naming `where`."""
        try:
            check_known(where, cfg, ["data", "test", "train", "model", *field_names(cls)])
            model = dict(cfg["model"])
            check_known("model", model, field_names(ModelConfig))
            resolved = cfg.get("resolved")
            run = {k: v for k, v in cfg.items() if k not in ("data", "test", "train", "model", "resolved")}
            return cls(model=ModelConfig(**model), data=DataConfig.from_recipe(cfg),
                       train=train_config(cfg.get("train") or {}), resolved=Resolved(**resolved) if resolved else None,
                       **run)
        except (KeyError, TypeError) as error:
            raise UserError(f"{where}: not a vidpeft-train config ({error})") from None

    def write(self, path: Path) -> None:
        write_atomic(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def read(cls, path: Path) -> "RunConfig":
        if not path.is_file():
            raise MissingFile(f"{path}: missing; is this a vidpeft-train work dir?")
        return cls.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, str(path))

    def with_views(self, **options: Any) -> "RunConfig":
        """A copy with data options changed for testing (None = as trained), validated as flags."""
        given = {k: v for k, v in options.items() if v is not None}
        with flag_errors({config_key(k): flag_of(config_key(k)) for k in given}):
            return replace(self, data=self.data.override(**given))


def train_config(section: Mapping[str, Any]) -> TrainConfig:
    check_known("train", section, field_names(TrainConfig))
    return TrainConfig(**section)


def build_run_config(recipe: str, dataset: str | None, model: ModelConfig, flags: Mapping[str, Any],
                     sets: list[str], **run: Any) -> RunConfig:
    """The run: `recipe` (with its dataset and backbone entries), then flag values (dotted key ->
    value; None = not given), then `--set key=value`; each section validated here, once. A bad
    value that came from a flag is named by its flag (see `flag_errors`)."""
    cfg = load_recipe(recipe, dataset, backbone=model.backbone)
    given = {key: value for key, value in flags.items() if value is not None}
    for dotted, value in given.items():
        set_dotted(cfg, dotted, value)
    for item in sets:
        dotted, value = parse_set(item)
        set_dotted(cfg, dotted, value)
    with flag_errors({key: flag_of(key) for key in given}):
        train = train_config(cfg.get("train") or {})
        data = DataConfig.from_recipe(cfg)
    method_options = dict((cfg.get("methods") or {}).get(model.method) or {})  # e.g. AIM's SSv2 settings
    model = replace(model, options={**method_options, **model.options},
                    backbone_options={"drop_path_rate": train.drop_path, **(cfg.get("backbone") or {})})
    return RunConfig(model=model, data=data, train=train, recipe=recipe, dataset=dataset, **run)


def parse_set(item: str) -> tuple[str, Any]:
    """`section.key=value` (value read as YAML) -> (dotted key, value)."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise UserError(f"--set {item!r}: write it as section.key=value, e.g. --set train.lr=0.01")
    dotted, text = item.split("=", 1)
    return dotted.strip(), yaml.safe_load(text)


def set_dotted(cfg: dict, dotted: str, value: Any) -> None:
    """Set `section.key` (or `methods.METHOD.option`) in a recipe mapping; unknown sections are an error
    (keys are checked when the section is built)."""
    section, *_ = dotted.split(".")
    if section not in SET_SECTIONS:
        raise UnknownOption(f"--set {dotted}: unknown section {section!r}; sections: {', '.join(SET_SECTIONS)} "
                            "(e.g. --set train.momentum=0.8)")
    node = cfg
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"--set {dotted}: {part} is a value, not a section")
    node[last] = copy.deepcopy(value)


def flag_of(dotted: str) -> str:
    """The command-line flag of a config key (train.batch_size -> --batch-size)."""
    return FLAG_OF_KEY.get(dotted, dotted)


@contextmanager
def flag_errors(flags_by_key: Mapping[str, str]) -> Iterator[None]:
    """Re-word an InvalidValue of a key the user gave as a flag: `--batch-size 0; must be at least 1`."""
    try:
        yield
    except InvalidValue as error:
        flag = flags_by_key.get(error.key, "")
        if not flag.startswith("--"):
            raise
        raise InvalidValue(error.key, error.detail, flag) from None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
