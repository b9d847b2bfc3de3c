"""A server process stand-in for tests/test_faults.py: trains, writes or sweeps, and stops at the critical moment.

    python tests/faults_child.py MODE CACHE SIGNAL [GO] [OUT]

It creates the file SIGNAL when it reaches the critical point of MODE, then waits: forever (the test
SIGKILLs it), or until the file GO exists when one is given. OUT receives a JSON summary.
- train:   stops after the first epoch of training (the checkpoint not written yet).
- write:   stops in the middle of writing the checkpoint (half its bytes in the temporary file).
- sweep:   stops after the first cell of a sweep (a trained model loads from CACHE first).
- replica: trains (pausing after the first epoch until GO), or, when another process already holds
           the model's lock, signals that it waits; OUT says whether it trained or loaded.
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

torch.set_num_threads(1)

from core import disk, training  # noqa: E402
from core.data import load_dataset  # noqa: E402

CFG = training.TrainConfig(model="mlp", dataset="digits", epochs=3, augment=False)
SWEEP = dict(probe_size=8, sparsities=(0.0, 0.5, 0.9), bit_widths=(32,))  # a SweepConfig (imported when needed)
SWEEP_WHAT, SWEEP_KEY = "a sweep of mlp on digits, seed 0 (saliency maps)", "sweep-test"


def stop(signal: Path, go: Path | None = None) -> None:
    """Say the critical point is reached, then wait for GO (polling a file: the test's only way in), or forever."""
    signal.touch()
    if go is None:
        threading.Event().wait()
    while not go.exists():
        time.sleep(0.01)


def digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode() + tensor.numpy().tobytes())
    return h.hexdigest()


def main(mode: str, cache: Path, signal: Path, go: Path | None = None, out: Path | None = None) -> None:
    data = load_dataset("digits")
    if mode == "train":
        training.load_or_train(CFG, data, cache, progress=lambda f, m: stop(signal) if f < 1 else None)
    elif mode == "write":
        real = torch.save

        def half_then_stop(obj, f, *args, **kwargs):
            buffer = io.BytesIO()
            real(obj, buffer, *args, **kwargs)
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            f.flush()
            stop(signal)

        torch.save = half_then_stop
        training.load_or_train(CFG, data, cache)
    elif mode == "sweep":
        from core.studies import sweeps  # only here: it costs the other modes seconds of imports

        model = training.load_or_train(CFG, data, cache).model
        with disk.running(cache / "runs", SWEEP_KEY, SWEEP_WHAT):
            sweeps.method_table(model, data, sweeps.SweepConfig(**SWEEP), workers=1,
                                progress=lambda f, m: stop(signal) if 0 < f < 1 else None)
    elif mode == "replica":
        calls = []

        def progress(fraction: float, message: str) -> None:
            calls.append(message)
            if message.startswith("waiting"):
                signal.touch()  # the other process holds the lock: this one waits for its file
            elif fraction < 1 and len([c for c in calls if c.startswith("epoch")]) == 1:
                stop(signal, go)

        result = training.load_or_train(CFG, data, cache, progress=progress)
        trained = any(c.startswith("epoch") for c in calls)
        out.write_text(json.dumps({"from_cache": result.from_cache, "notice": result.notice,
                                   "digest": digest(result.model), "trained": trained}))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], Path(args[1]), Path(args[2]), *(Path(a) for a in args[3:]))
