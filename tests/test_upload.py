"""core.upload: good files load, everything else is refused with a clear message and runs no code."""
from __future__ import annotations

import io
import pickle

import pytest
import torch
from safetensors.torch import save as safetensors_save

import models
from core.upload import (MAX_BYTES, UploadError, build_model, check_state_dict, load_upload, match_architecture,
                         read_weights, state_digest, technical_detail)

SHAPE, K = (1, 8, 8), 10
ARCHS = models.list_models()


def _state(arch: str = "mlp", seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return models.create_model(arch, SHAPE, K).state_dict()


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _load(blob: bytes, name: str = "w.safetensors", preferred: str = "mlp", **kw):
    return load_upload(blob, name, "digits", SHAPE, K, ARCHS, preferred, **kw)


class WritesAFile:
    """Unpickling this calls open(path, "w"): the file appears only if a loader executes pickled code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_safetensors_round_trip_gives_the_same_tensors_and_metadata():
    state = _state()
    blob = safetensors_save(state, metadata={"dataset": "digits", "note": "hi"})
    up = _load(blob)
    assert up.architecture == "mlp" and up.dataset == "digits" and up.metadata["note"] == "hi"
    assert list(up.state) == list(state)
    assert all(torch.equal(up.state[k], state[k]) for k in state)
    assert up.digest == state_digest(state) and len(up.digest) == 64


def test_torch_state_dict_loads_and_the_architecture_is_recognised():
    state = _state("lenet5")
    up = _load(_torch_bytes(state), "model.pt", preferred="mlp")  # the file decides, not the preference
    assert up.architecture == "lenet5"
    model = build_model(up, SHAPE, K)
    assert not model.training
    assert all(torch.equal(model.state_dict()[k], state[k]) for k in state)


def test_half_precision_is_accepted_as_float32_and_the_input_is_not_modified():
    state = {k: v.half() for k, v in _state().items()}
    before = {k: v.clone() for k, v in state.items()}
    checked = check_state_dict(state, "mlp", SHAPE, K)
    assert all(v.dtype == torch.float32 for v in checked.values())
    assert all(torch.equal(state[k], before[k]) and state[k].dtype == torch.float16 for k in state)


def test_build_model_copies_the_upload():
    up = _load(safetensors_save(_state()))
    model = build_model(up, SHAPE, K)
    with torch.no_grad():
        model[1].weight.zero_()
    assert up.state["1.weight"].abs().sum() > 0


def test_the_payload_really_writes_its_file_when_loaded_unsafely(tmp_path):
    # The control for the next test: without weights_only, loading runs the pickled call.
    target = tmp_path / "written.txt"
    pickle.loads(pickle.dumps({"w": WritesAFile(str(target))}))
    assert target.exists()
    target.unlink()
    torch.load(io.BytesIO(_torch_bytes({"w": WritesAFile(str(target))})), weights_only=False)
    assert target.exists()


@pytest.mark.parametrize("how", ["torch.save", "raw pickle"])
def test_a_pickle_carrying_code_is_refused_and_never_runs(tmp_path, how):
    target = tmp_path / "pwned.txt"
    payload = {"1.weight": WritesAFile(str(target))}
    blob = _torch_bytes(payload) if how == "torch.save" else pickle.dumps(payload)
    with pytest.raises(UploadError, match="refused"):
        _load(blob, "evil.pt")
    assert not target.exists()
    # the same bytes under another name are refused too
    with pytest.raises(UploadError):
        _load(blob, "evil.safetensors")
    assert not target.exists()


def test_wrong_shapes_are_named():
    state = _state()
    state["1.weight"] = torch.zeros(128, 63)
    with pytest.raises(UploadError, match=r"1\.weight is \(128, 63\), expected \(128, 64\)"):
        check_state_dict(state, "mlp", SHAPE, K)


def test_wrong_and_missing_keys_are_named():
    state = _state()
    state["extra"] = state.pop("5.bias")
    with pytest.raises(UploadError, match=r"missing '5\.bias'; unexpected 'extra'"):
        check_state_dict(state, "mlp", SHAPE, K)


def test_integer_tensors_are_refused():
    state = _state()
    state["1.bias"] = torch.zeros(128, dtype=torch.int64)
    with pytest.raises(UploadError, match=r"floating point; 1\.bias \(torch\.int64\)"):
        _load(safetensors_save(state))


def test_nan_is_refused():
    state = _state()
    state["3.weight"][0, 0] = float("nan")
    with pytest.raises(UploadError, match=r"'3\.weight' contains NaN"):
        _load(safetensors_save(state))


def test_oversized_files_are_refused_before_parsing():
    with pytest.raises(UploadError, match="limit is 1 MB"):
        read_weights(b"\0" * 1_000_001, "big.safetensors", max_bytes=1_000_000)
    assert MAX_BYTES == 20 * 1024 * 1024


def test_a_safetensors_file_with_a_missing_tensor_is_refused():
    state = _state()
    del state["5.weight"]
    with pytest.raises(UploadError, match=r"missing '5\.weight'"):
        _load(safetensors_save(state))


def test_random_bytes_and_truncated_files_are_refused():
    noise = bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).to(torch.uint8).tolist())
    with pytest.raises(UploadError, match="neither a safetensors file"):
        _load(noise)
    good = safetensors_save(_state())
    with pytest.raises(UploadError, match="damaged"):
        _load(good[:-100])
    with pytest.raises(UploadError, match="damaged"):
        _load(_torch_bytes(_state())[:500], "cut.pt")


def test_other_file_types_and_non_dicts_are_refused():
    with pytest.raises(UploadError, match="not a weights file"):
        _load(safetensors_save(_state()), "weights.txt")
    with pytest.raises(UploadError, match="found a list"):
        _load(_torch_bytes([torch.zeros(1)]), "list.pt")
    with pytest.raises(UploadError, match="flat dict"):
        _load(_torch_bytes({"state_dict": _state(), "epoch": 3}), "checkpoint.pt")


def test_no_architecture_fits_reports_the_preferred_one_and_the_dataset_from_metadata():
    state = _state("mlp")
    state["1.weight"] = torch.zeros(128, 784)   # an MNIST-sized input layer on 8x8 digits
    blob = safetensors_save(state, metadata={"dataset": "mnist5k"})
    with pytest.raises(UploadError, match=r"(?s)expected \(128, 64\).*made for the 'mnist5k' data set"):
        _load(blob)
    with pytest.raises(UploadError, match="lenet5"):
        match_architecture(_state("mlp"), SHAPE, K, ["lenet5"], "lenet5")


def test_a_refusal_is_in_our_words_and_its_detail_drops_colour_codes_and_unsafe_advice(tmp_path):
    with pytest.raises(UploadError) as refused:
        _load(_torch_bytes({"1.weight": WritesAFile(str(tmp_path / "x"))}), "evil.pt")
    message, detail = str(refused.value), refused.value.detail
    assert "Nothing in the file was run" in message and "open`" in message
    assert "Unsupported global" in detail
    for text in (message, detail):
        assert "\x1b" not in text and "weights_only" not in text and "trust" not in text


def test_technical_detail_keeps_the_facts_and_drops_the_advice():
    torch_says = ("Weights only load failed. This file can still be loaded, to do so you have two options, "
                  "\x1b[1mdo those steps only if you trust the source of the checkpoint\x1b[0m. \n\t(1) In PyTorch "
                  "2.6, we changed the default value of the `weights_only` argument in `torch.load` from `False` to "
                  "`True`. Re-running `torch.load` with `weights_only` set to `False` will likely succeed, but it "
                  "can result in arbitrary code execution. Do it only if you got the file from a trusted source.\n\t"
                  "WeightsUnpickler error: Unsupported global: GLOBAL io.open was not an allowed global by default. "
                  "Please use `torch.serialization.add_safe_globals([io.open])` to allowlist this global if you "
                  "trust this class/function.\n\nCheck the documentation of torch.load to learn more.")
    assert technical_detail(torch_says) == ("Weights only load failed. WeightsUnpickler error: Unsupported global: "
                                            "GLOBAL io.open was not an allowed global by default.")
    assert technical_detail("\x1b[31mbad header\x1b[0m") == "bad header"
