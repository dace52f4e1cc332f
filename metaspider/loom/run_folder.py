"""A run folder: everything one `metaloom` run collects, trains and reports, in plain files.

    R/run.json                              model, fingerprint, layers
    R/collect/DATASET/SPLIT/chunk-NNNNN.json          one record per question (answer, correct, baselines)
    R/collect/DATASET/SPLIT/chunk-NNNNN.safetensors   float16 activations of those questions (`acts` at the
                                            decision point, `acts_post` at the answer's last token when
                                            collected, `prefix` for stage B)
    R/collect_times.json                    wall time of each data set / split's collect
    R/wrapper/                              the trained wrapper (manifest.json + weights.safetensors)
    R/report.json, R/report.md, R/risk_coverage.png

Chunks are written whole (arrays first, records last, each by rename), so an interrupted collect
loses at most one chunk and a resumed one skips every question already stored. No pickles anywhere."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy
from pydantic import ConfigDict

from metaspider.core.files import atomic_path, write_text_atomically
from metaspider.core.schema import Schema
from metaspider.errors import MetaspiderError

RUN_FILE = "run.json"
WRAPPER_DIR = "wrapper"


class RunConfig(Schema):
    """What every collect into one run must agree on: the base model and the layers read (run.json)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    _title = "run config"

    model: str
    fingerprint: str
    read_layers: tuple[int, ...]
    inject_layers: tuple[int, ...]
    prefix_layer: int | None
    """Block whose output is kept at every position for stage B (the block below the lowest injected
    one), or None when the run only evaluates an existing wrapper."""

    def to_dict(self) -> dict[str, Any]:
        """The run.json layout."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Validate run.json's content; errors name the field."""
        return cls.parse(data)


@dataclass
class Collected:
    """One split of one data set, as stored: records in item order and the arrays beside them."""

    records: list[dict[str, Any]]
    acts: np.ndarray
    """[N, R, d] float16: read-layer outputs at the decision point."""
    prefix: list[np.ndarray] | None
    """Per record [T, d] float16: the prefix layer's output at every input position of prompt + target."""
    acts_post: np.ndarray | None = None
    """[N, R, d] float16: read-layer outputs at the answer's last token; None when some chunk predates them."""

    def labels(self, key: str) -> np.ndarray:
        """One record field as an array (e.g. "correct", "msp") in item order."""
        return np.array([record[key] for record in self.records])

    def field(self, key: str) -> np.ndarray:
        """A numeric record field as floats in item order, NaN where a record lacks it (a baseline an
        older collect did not store)."""
        return np.array([np.nan if record.get(key) is None else float(record[key]) for record in self.records])

    def read_layers(self, collected: tuple[int, ...], wanted: tuple[int, ...]) -> Collected:
        """The same records with only the `wanted` read layers (a wrapper may read a subset of what the run
        collected)."""
        missing = sorted(set(wanted) - set(collected))
        if missing:
            raise MetaspiderError(
                f"the wrapper reads layers {missing}, which this run did not collect (it has {list(collected)})"
            )
        columns = [collected.index(layer) for layer in wanted]
        post = None if self.acts_post is None else self.acts_post[:, columns]
        return Collected(self.records, self.acts[:, columns], self.prefix, post)


class RunFolder:
    """A run folder (layout in the module docstring): collects, the trained wrapper and reports in plain files."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def wrapper_dir(self) -> Path:
        """Where `train` writes the run's wrapper."""
        return self.path / WRAPPER_DIR

    def config(self) -> RunConfig:
        """The run's run.json; a missing or malformed file says what to run."""
        file = self.path / RUN_FILE
        if not file.is_file():
            raise MetaspiderError(
                f"{self.path} is not a metaloom run folder (no {RUN_FILE}); run `metaloom collect` first"
            )
        try:
            return RunConfig.from_dict(json.loads(file.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, MetaspiderError) as exc:
            raise MetaspiderError(f"{file} is malformed: {exc}") from exc

    def has_config(self) -> bool:
        """Whether anything was collected into this folder yet."""
        return (self.path / RUN_FILE).is_file()

    def save_config(self, config: RunConfig) -> None:
        """Write run.json, or check that this collect agrees with the one already there (model and layers)."""
        if self.has_config():
            existing = self.config()
            if existing != config:
                raise MetaspiderError(
                    f"{self.path} was collected with {existing.model} (layers {list(existing.read_layers)}); "
                    f"it cannot also hold {config.model} (layers {list(config.read_layers)}): use another --run folder"
                )
            return
        self.path.mkdir(parents=True, exist_ok=True)
        write_text(self.path / RUN_FILE, json.dumps(config.to_dict(), indent=2) + "\n")

    def split_dir(self, dataset: str, split: str) -> Path:
        """The folder of one data set's split."""
        return self.path / "collect" / dataset_key(dataset) / split

    def stored_ids(self, dataset: str, split: str) -> set[str]:
        """Ids of the items already collected for a split: a resumed collect skips them."""
        chunks = sorted(self.split_dir(dataset, split).glob("chunk-*.json"))
        return {record["id"] for chunk in chunks for record in json.loads(chunk.read_text(encoding="utf-8"))}

    def write_chunk(
        self, dataset: str, split: str, records: list[dict[str, Any]], arrays: dict[str, np.ndarray]
    ) -> None:
        """Append one chunk (arrays first, records last, each written atomically)."""
        folder = self.split_dir(dataset, split)
        folder.mkdir(parents=True, exist_ok=True)
        index = len(list(folder.glob("chunk-*.json")))
        stem = folder / f"chunk-{index:05d}"
        tensors = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
        with atomic_path(stem.with_suffix(".safetensors")) as tmp:
            safetensors.numpy.save_file(tensors, str(tmp))
        write_text(stem.with_suffix(".json"), json.dumps(records, ensure_ascii=False) + "\n")

    def load(self, dataset: str, split: str, with_prefix: bool = False) -> Collected:
        """Every chunk of a split, in item order; `with_prefix` also loads stage B's per-position activations."""
        chunks = sorted(self.split_dir(dataset, split).glob("chunk-*.json"))
        if not chunks:
            raise MetaspiderError(
                f"nothing collected for {dataset} / {split} in {self.path}: run "
                f"`metaloom collect --dataset {dataset} --split {split} --run {self.path}` first"
            )
        records: list[dict[str, Any]] = []
        acts: list[np.ndarray] = []
        prefix: list[np.ndarray] = []
        post: list[np.ndarray] | None = []
        for chunk in chunks:
            chunk_records = json.loads(chunk.read_text(encoding="utf-8"))
            arrays = safetensors.numpy.load_file(str(chunk.with_suffix(".safetensors")))
            records += chunk_records
            acts.append(arrays["acts"])
            if post is not None and "acts_post" in arrays:
                post.append(arrays["acts_post"])
            else:
                post = None
            if with_prefix:
                if "prefix" not in arrays:
                    raise MetaspiderError(f"{chunk} holds no stage-B activations (collected for evaluation only)")
                ends = np.cumsum([r["prefix_len"] for r in chunk_records])
                prefix += np.split(arrays["prefix"], ends[:-1])
        acts_post = np.concatenate(post) if post else None
        return Collected(records, np.concatenate(acts), prefix if with_prefix else None, acts_post)


def dataset_key(dataset: str) -> str:
    """A folder name for a data set: the built-in name, or the file's stem and a hash of its path."""
    path = Path(dataset)
    if path.suffix == ".jsonl":
        digest = hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()[:8]
        return f"{path.stem}-{digest}"
    return dataset


write_text = write_text_atomically
"""Collects of different splits may run at once into one run folder, and both write run.json."""
