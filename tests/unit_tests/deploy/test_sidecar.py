import gguf
import numpy as np
import pytest

from metaspider.core.wrapper import sidecar as sidecar_module
from metaspider.core.wrapper.folder import load_manifest, load_weights_numpy
from metaspider.core.wrapper.runtime import NumpyRuntime
from metaspider.core.wrapper.sidecar import export_sidecar, read_sidecar
from metaspider.errors import MetaspiderError


def test_f32_round_trip_is_bit_exact(tiny_wrapper, tmp_path):
    path = export_sidecar(tiny_wrapper, tmp_path / "w.gguf", "f32")
    loaded = read_sidecar(path)
    assert loaded.manifest == load_manifest(tiny_wrapper)
    assert loaded.name == "tiny"
    for name, array in load_weights_numpy(tiny_wrapper).items():
        np.testing.assert_array_equal(loaded.weights[name], array, err_msg=name)


def test_metadata_is_readable_by_plain_gguf_tools(tiny_wrapper, tiny_fingerprint, tmp_path):
    reader = gguf.GGUFReader(export_sidecar(tiny_wrapper, tmp_path / "w.gguf"))
    fields = {name: field.contents() for name, field in reader.fields.items()}
    assert fields["general.architecture"] == "metaspider"
    assert fields["metaspider.format_version"] == 1
    assert fields["metaspider.base.fingerprint"] == tiny_fingerprint
    assert fields["metaspider.read_layers"] == [1, 2]
    assert fields["metaspider.inject_layers"] == [2, 3]
    assert fields["metaspider.injection"] == "pooled"
    assert fields["metaspider.modifier.name"] == "doubter"
    assert fields["metaspider.thresholds.answer_below"] == pytest.approx(0.42)
    assert {t.name for t in reader.tensors} == set(load_weights_numpy(tiny_wrapper))


def test_q8_0_is_smaller_and_close(tiny_wrapper, tmp_path):
    exact = export_sidecar(tiny_wrapper, tmp_path / "f32.gguf", "f32")
    small = export_sidecar(tiny_wrapper, tmp_path / "q8.gguf", "q8_0")
    assert small.stat().st_size < 0.5 * exact.stat().st_size
    weights = read_sidecar(small).weights
    for name, array in load_weights_numpy(tiny_wrapper).items():
        if array.ndim == 1 or name.startswith("confidence."):
            np.testing.assert_array_equal(weights[name], array, err_msg=name)
        else:
            assert np.abs(weights[name] - array).max() <= 0.01 * np.abs(array).max(), name


def test_sidecar_runtime_matches_the_folder_runtime(tiny_wrapper, tiny_fingerprint, tmp_path):
    path = export_sidecar(tiny_wrapper, tmp_path / "w.gguf", "q8_0")
    folder_runtime = NumpyRuntime(tiny_wrapper, tiny_fingerprint)
    sidecar_runtime = NumpyRuntime(path, tiny_fingerprint)
    rng = np.random.default_rng(0)
    for _ in range(5):
        acts = rng.normal(size=(2, 64)).astype(np.float32) * 3
        a, b = folder_runtime.read(acts), sidecar_runtime.read(acts)
        assert abs(a.u - b.u) < 0.01
        ca = folder_runtime.injection(a, 0.7, 1.0, decision_point=9).control
        cb = sidecar_runtime.injection(b, 0.7, 1.0, decision_point=9).control
        for layer in (2, 3):
            cos = ca[layer] @ cb[layer] / np.linalg.norm(ca[layer]) / np.linalg.norm(cb[layer])
            assert cos > 0.999


def test_another_base_model_is_refused_naming_both_fingerprints(tiny_wrapper, tiny_fingerprint, tmp_path):
    path = export_sidecar(tiny_wrapper, tmp_path / "w.gguf")
    with pytest.raises(MetaspiderError) as error:
        NumpyRuntime(path, "sha256:9999ffff")
    assert tiny_fingerprint in str(error.value) and "sha256:9999ffff" in str(error.value)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("keep", [0.0, 0.01, 0.3, 0.6, 0.95])
def test_truncated_file_is_a_clear_error(tiny_wrapper, tmp_path, keep):
    path = export_sidecar(tiny_wrapper, tmp_path / "w.gguf")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(MetaspiderError, match="truncated") as error:
        read_sidecar(path)
    assert str(path) in str(error.value)


def test_unknown_format_version_is_a_clear_error(tiny_wrapper, tmp_path, monkeypatch):
    monkeypatch.setattr(sidecar_module, "SIDECAR_FORMAT_VERSION", 99)
    path = export_sidecar(tiny_wrapper, tmp_path / "w.gguf")
    monkeypatch.undo()
    with pytest.raises(MetaspiderError, match=r"format_version 99.*reads 1.*newer metaspider"):
        read_sidecar(path)


def test_a_gguf_that_is_not_a_sidecar_is_refused(tmp_path):
    path = tmp_path / "cv.gguf"
    writer = gguf.GGUFWriter(str(path), "controlvector")
    writer.add_tensor("direction.1", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(MetaspiderError, match="not a metaspider sidecar.*controlvector"):
        read_sidecar(path)


def test_missing_file_and_unknown_weight_type(tiny_wrapper, tmp_path):
    with pytest.raises(MetaspiderError, match="sidecar not found"):
        read_sidecar(tmp_path / "absent.gguf")
    with pytest.raises(MetaspiderError, match="unknown sidecar weight type 'q4'"):
        export_sidecar(tiny_wrapper, tmp_path / "w.gguf", "q4")
