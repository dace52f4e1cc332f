import json

import numpy as np
import pytest
import torch

from metaspider.core.wrapper.config import WrapperConfig
from metaspider.core.wrapper.folder import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    CalibratedThreshold,
    WrapperManifest,
    check_fingerprint,
    load_manifest,
    load_torch_wrapper,
    load_weights_numpy,
    save_wrapper,
)
from metaspider.core.wrapper.modifiers import Modifier
from metaspider.core.wrapper.torch_module import MetaWrapper
from metaspider.errors import MetaspiderError

FINGERPRINT = "sha256:1111aaaa"
OTHER = "sha256:2222bbbb"


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    config = WrapperConfig(
        d_model=16,
        read_layers=(1, 2),
        inject_layers=(2,),
        bottleneck=8,
        n_heads=2,
        injection="pooled",
        damping_floor=0.5,
    )
    wrapper = MetaWrapper(config)
    wrapper.fit_calibration(torch.tensor([-1.0, 0.0, 1.0, 2.0]), torch.tensor([0.0, 1.0, 0.0, 1.0]))
    manifest = WrapperManifest(
        base_fingerprint=FINGERPRINT,
        base_model="smollm2-135m",
        config=config,
        modifier=Modifier("doubter", 2.0),
        gain=1.2,
        answer_below=0.42,
        calibrated=(CalibratedThreshold(max_risk=0.1, delta=0.05, threshold=0.31),),
        training_data={"dataset": "countries", "splits": ["train"], "n": 800},
        metrics={"auroc": 0.81},
    )
    folder = save_wrapper(tmp_path / "doubter", wrapper.state_dict(), manifest)
    return folder, wrapper, manifest


def test_round_trip(saved):
    folder, wrapper, manifest = saved
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST_FILE, WEIGHTS_FILE]
    assert load_manifest(folder) == manifest
    weights = load_weights_numpy(folder)
    for name, tensor in wrapper.state_dict().items():
        np.testing.assert_array_equal(weights[name], tensor.numpy())
    loaded, loaded_manifest = load_torch_wrapper(folder, expected_fingerprint=FINGERPRINT)
    assert loaded_manifest == manifest and not loaded.training
    acts = torch.randn(1, 2, 16)
    with torch.no_grad():
        assert torch.equal(loaded.uncertainty(acts)[0], wrapper.uncertainty(acts)[0])
    assert loaded.calib_a.item() == wrapper.calib_a.item() != 1.0


def test_manifest_json_layout(saved):
    folder, _, _ = saved
    data = json.loads((folder / MANIFEST_FILE).read_text())
    assert data["format_version"] == 1
    assert data["base"] == {"fingerprint": FINGERPRINT, "model": "smollm2-135m"}
    assert data["modifier"] == {"name": "doubter", "bias": 2.0, "gain": 1.2}
    assert data["thresholds"] == {
        "answer_below": 0.42,
        "calibrated": [{"max_risk": 0.1, "delta": 0.05, "threshold": 0.31}],
    }
    assert data["config"]["read_layers"] == [1, 2]


def test_fingerprint_mismatch_names_both_fingerprints_and_the_folder(saved):
    folder, _, manifest = saved
    with pytest.raises(MetaspiderError) as error:
        load_torch_wrapper(folder, expected_fingerprint=OTHER)
    message = str(error.value)
    assert FINGERPRINT in message and OTHER in message and str(folder) in message
    check_fingerprint(manifest, FINGERPRINT, folder)


def test_truncated_weights_file_is_named(saved):
    folder, _, _ = saved
    path = folder / WEIGHTS_FILE
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(MetaspiderError, match=WEIGHTS_FILE):
        load_weights_numpy(folder)
    with pytest.raises(MetaspiderError, match=WEIGHTS_FILE):
        load_torch_wrapper(folder)


def test_missing_files_are_named(saved):
    folder, _, _ = saved
    (folder / WEIGHTS_FILE).unlink()
    with pytest.raises(MetaspiderError, match=f"not found: .*{WEIGHTS_FILE}"):
        load_weights_numpy(folder)
    (folder / MANIFEST_FILE).unlink()
    with pytest.raises(MetaspiderError, match=f"not found: .*{MANIFEST_FILE}"):
        load_manifest(folder)


def test_unknown_format_version_says_which_are_supported(saved):
    folder, _, _ = saved
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps(json.loads(path.read_text()) | {"format_version": 7}))
    with pytest.raises(MetaspiderError, match=r"format_version 7 is not supported.*reads 1"):
        load_manifest(folder)


def test_malformed_manifests_name_the_file_and_field(saved):
    folder, _, _ = saved
    path = folder / MANIFEST_FILE
    data = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in data.items() if k != "base"}))
    with pytest.raises(MetaspiderError, match=f"{MANIFEST_FILE} lacks the field 'base'"):
        load_manifest(folder)
    path.write_text(json.dumps(data | {"config": data["config"] | {"bottleneck": 9}}))
    with pytest.raises(MetaspiderError, match=f"{MANIFEST_FILE}.*bottleneck 9"):
        load_manifest(folder)
    path.write_text("{not json")
    with pytest.raises(MetaspiderError, match=f"{MANIFEST_FILE} is not valid JSON"):
        load_manifest(folder)


def test_weights_that_do_not_fit_the_config_are_refused(saved, tmp_path):
    _, wrapper, manifest = saved
    state = dict(wrapper.state_dict())
    del state["e_sure"]
    with pytest.raises(MetaspiderError, match="e_sure"):
        save_wrapper(tmp_path / "broken", state, manifest)
    assert not (tmp_path / "broken").exists()
