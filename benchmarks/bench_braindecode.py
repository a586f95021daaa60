"""restbench's training loop vs braindecode's own (skorch-based ``EEGClassifier``), same model and data.

One epoch of ``--train-windows`` training windows, batch 64, SGD with the quick profile's
learning rate, momentum and weight decay, fp32, on the Sors network at width 1/8 (the same
initial weights for both), with validation on the same ``--val-windows`` windows:

- restbench: ``restbench.training.loop.train_phase`` with ``clean`` selection (macro-F1, loss and
  health numbers on the validation windows, the best epoch's weights kept);
- braindecode: ``EEGClassifier(module, train_split=predefined_split(validation))``: skorch's
  loop with braindecode's default callbacks (train/valid loss, valid accuracy), on the windows
  already in memory (restbench reads each batch from its memory-mapped store).

Runs only where braindecode and skorch import (``pip install 'restbench[braindecode]'``);
otherwise the JSON says it was skipped and why.

    python benchmarks/bench_braindecode.py          # ~2 minutes
    python benchmarks/bench_braindecode.py --smoke  # seconds
"""

from __future__ import annotations

import copy
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

TARGET = 1.10


def load() -> tuple[object, object, str]:
    """``(EEGClassifier, predefined_split, versions)``; raises ImportError (or any load error) if absent."""
    try:  # the braindecode model plugin keeps torchaudio's CUDA-only wheel from loading (see its docstring)
        from restbench_builtins.models.braindecode import guard_torchaudio

        guard_torchaudio()
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import braindecode
        import skorch
        from braindecode import EEGClassifier
        from skorch.helper import predefined_split
    return EEGClassifier, predefined_split, f"braindecode {braindecode.__version__}, skorch {skorch.__version__}"


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__, default_repetitions=5)
    p.add_argument("--train-windows", type=int, default=512)
    p.add_argument("--val-windows", type=int, default=384)
    args = p.parse_args(argv)
    smoke = args.smoke
    try:
        EEGClassifier, predefined_split, versions = load()
    except Exception as exc:  # noqa: BLE001 - any reason it cannot load is the reason to report
        reason = f"braindecode/skorch not importable ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); " \
                 "pip install 'restbench[braindecode]'"
        record = _common.result("braindecode", smoke, {}, {}, [], skipped=reason)
        _common.write(record, args.out)
        return 0

    import numpy as np
    import torch
    from skorch.dataset import Dataset

    from restbench.api import Phase
    from restbench.training.loop import subsample, train_phase

    _common.runtime(args.threads)
    reps = 2 if smoke else args.repetitions
    n_times, width, knobs, data, template = _common.training_case(smoke, args.train_windows, args.val_windows)
    # the windows train_phase's epoch 1 draws, in memory for skorch
    ends = subsample(data.windows("train"), knobs["max_train_windows"], np.random.default_rng([0, 1]))
    x, y = data.get(ends)
    val_x, val_y = data.get(subsample(data.windows("val"), knobs["max_val_windows"], np.random.default_rng([0, 2])))

    def braindecode_epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = EEGClassifier(
                copy.deepcopy(template), optimizer=torch.optim.SGD, optimizer__lr=float(knobs["lr"]),
                optimizer__momentum=float(knobs["momentum"]), optimizer__weight_decay=float(knobs["weight_decay"]),
                batch_size=int(knobs["batch_size"]), max_epochs=1, device="cpu", verbose=0,
                train_split=predefined_split(Dataset(val_x, val_y)),
            )
            clf.fit(x, y)

    phase = Phase(selection="clean")
    fns = {"restbench": lambda: train_phase(copy.deepcopy(template), data, phase, knobs, 0, 1, knobs["lr_milestones"]),
           "braindecode": braindecode_epoch}
    samples = _common.interleaved(fns, reps, warmup=1)
    ratio = _common.paired_ratio(samples["restbench"], samples["braindecode"])
    record = _common.result(
        "braindecode", smoke,
        {"width": width, "n_times": n_times, "train_windows": int(len(ends)), "val_windows": int(len(val_y)),
         "batch_size": knobs["batch_size"], "precision": "fp32", "repetitions": reps, "versions": versions},
        {"train_phase_vs_eegclassifier": ratio},
        [_common.target("train_phase / braindecode EEGClassifier (one epoch with validation)", ratio, TARGET)],
        threads=args.threads, timings={k: _common.summary(v) for k, v in samples.items()},
    )
    _common.write(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
