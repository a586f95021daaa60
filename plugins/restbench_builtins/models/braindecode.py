"""braindecode's sleep stagers as restbench models: ``bd-chambon2018``, ``bd-usleep``, ``bd-blanco2020``,
``bd-attnsleep`` and ``bd-deepsleepnet``.

Every braindecode sleep stager that takes one EEG channel is registered here and goes through
the whole benchmark like Sors: trained by any method, corrupted, pruned (its channel groups are
derived with torch-pruning, :mod:`restbench.training.pruning`), exported and timed. Each declares
its input contract (:class:`restbench.api.ModelInput`, braindecode's ``n_chans`` / ``n_times`` /
``sfreq``) and its own options; none declares ``width``, so the core width knob is recorded as not
applied. ``pip install 'restbench[braindecode]'`` installs braindecode.

Why torchaudio is never loaded
------------------------------
braindecode 1.8 requires torchaudio and imports it at module level from
``braindecode/models/__init__`` (``modules/filter.py``, ``eegsimpleconv``, ``brainmodule``,
``meta_neuromotor``, ``emg2qwerty``), although none of the sleep stagers calls it. The only
torchaudio wheels on the package index for Linux are CUDA builds (2.11.1, the newest, requires
torch>=2.11); their native library links ``libc10_cuda.so`` and does not load against the CPU
build of torch 2.13.0 that restbench pins, so ``import braindecode.models`` fails. The options,
measured on this project's CPU machine (2026-12-01):

- a torch/torchaudio pair that loads together: torch 2.11.0 + torchaudio 2.11.0 from the index
  is the CUDA build, 30 packages and 2,595 MB to download (torch 506 MB, cuDNN 349 MB, cuBLAS
  404 MB, ...) on every fresh machine, and it replaces the pinned torch 2.13.0 that the TFLite
  exporter (litert-torch) is tested with;
- a narrowly scoped import guard (chosen): the ``braindecode`` extra costs 27 packages and
  12.4 MB (16 s to install here), torch stays 2.13.0.

:func:`load_braindecode` first imports torchaudio for real; only when that fails (the native
library does not load, or torchaudio is absent) does it put stand-ins for ``torchaudio``,
``torchaudio.functional`` and ``torchaudio.transforms`` into ``sys.modules`` before importing
braindecode. Every name looked up on them is a placeholder that braindecode can import (and
subclass, as ``meta_neuromotor`` does) but that raises :class:`TorchaudioUnavailable`, naming the
function and the load error, the moment it is called or instantiated. The sleep stagers here
never call torchaudio, which the tests prove by training, pruning and exporting them with the
stand-ins in place; a braindecode model that did call it would fail with that one line instead of
computing anything wrong. Where torchaudio loads (a matching CUDA torch), the real one is used.
"""

from __future__ import annotations

import copy
import importlib.machinery
import sys
import types
from typing import TYPE_CHECKING, Any

from restbench.api import EPOCH_S, NOT_IN_PAPER, ModelInput, Option, PluginError, hookimpl

if TYPE_CHECKING:
    from torch import nn

ARCH = "braindecode"
SPEC_VERSION = 1


class TorchaudioUnavailable(RuntimeError):
    """A braindecode model called torchaudio, which cannot load here (see the module docstring)."""


#: Why the stand-ins were installed (None: the real torchaudio loaded, or nothing was tried yet).
TORCHAUDIO_STUB_REASON: str | None = None
_STUBBED = ("torchaudio", "torchaudio.functional", "torchaudio.transforms")


def _stand_in(name: str, reason: str) -> types.ModuleType:
    """A module whose every public attribute is a placeholder that refuses to run."""
    module = types.ModuleType(name, f"restbench stand-in for {name}, which cannot load here: {reason}")
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    module.__path__ = []  # a package, so `from torchaudio.transforms import X` resolves
    module.__restbench_stand_in__ = reason

    def __getattr__(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        qualified = f"{name}.{attr}"

        def refuse(cls, *args: Any, **kwargs: Any) -> Any:
            raise TorchaudioUnavailable(
                f"{qualified} was called, but torchaudio cannot load here ({reason}); restbench loads braindecode "
                "without it because its sleep stagers never call torchaudio (restbench_builtins.models.braindecode)")

        placeholder = type(attr, (), {"__new__": refuse, "__module__": name, "__qualname__": attr,
                                      "__doc__": f"stand-in for {qualified}: raises TorchaudioUnavailable when used"})
        setattr(module, attr, placeholder)
        return placeholder

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    return module


def guard_torchaudio() -> str | None:
    """Make ``import torchaudio`` succeed: the real one when it loads, else the stand-ins.

    Returns why the stand-ins are in place, or None when the real torchaudio loaded. Only an
    import error or a native-library load error (``OSError``) is caught; anything else propagates.
    """
    global TORCHAUDIO_STUB_REASON
    current = sys.modules.get("torchaudio")
    if current is not None:
        return getattr(current, "__restbench_stand_in__", None)
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError) as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else exc!r}"
    else:
        TORCHAUDIO_STUB_REASON = None
        return None
    for loaded in [m for m in sys.modules if m == "torchaudio" or m.startswith("torchaudio.")]:
        del sys.modules[loaded]  # a half-imported torchaudio must not be found later
    stand_ins = {name: _stand_in(name, reason) for name in _STUBBED}
    for name, module in stand_ins.items():
        sys.modules[name] = module
    stand_ins["torchaudio"].functional = stand_ins["torchaudio.functional"]
    stand_ins["torchaudio"].transforms = stand_ins["torchaudio.transforms"]
    TORCHAUDIO_STUB_REASON = reason
    return reason


def load_braindecode() -> Any:
    """``braindecode.models``, imported behind :func:`guard_torchaudio`; a PluginError saying how
    to install it when braindecode is missing."""
    import importlib.util
    import warnings

    if "braindecode.models" not in sys.modules and importlib.util.find_spec("braindecode") is None:
        raise PluginError("braindecode is not installed: pip install 'restbench[braindecode]' "
                          "(with -c constraints.txt in a restbench checkout)")
    guard_torchaudio()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # braindecode's import-time notices (montages, deprecations)
        import braindecode.models as models
    return models


def braindecode_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("braindecode")
    except PackageNotFoundError:
        return "not installed"


def _context_option(default: int) -> Option:
    return Option("context_epochs", int, default, "30-s epochs per input window, the scored epoch last",
                  minimum=1, maximum=40, paper=NOT_IN_PAPER)


class BraindecodeStager:
    """Model plugin: one braindecode sleep stager, built with braindecode's own keywords."""

    version = "1.0.0"
    #: braindecode class name; keyword arguments it always gets; options passed as keywords
    cls_name: str = ""
    fixed: dict[str, Any] = {}
    passed: tuple[str, ...] = ()
    sequence = False  # braindecode maps (B, S, C, T) to (B, n_outputs, S): one window of S epochs

    def build(self, n_times: int, sfreq: float, n_classes: int, spec: dict | None = None,
              options: dict | None = None, **_: Any) -> tuple["nn.Module", dict]:
        """Return ``(BraindecodeNet, spec)``: rebuilt from ``spec`` when given, else for windows of
        ``n_times`` samples at ``sfreq`` Hz (``context_epochs`` of them) and ``n_classes`` outputs."""
        from restbench.api import fill_options

        if spec is None:
            opts = fill_options(self.options, options, self.id)
            context = int(opts.get("context_epochs", self.inputs.context_epochs))
            per_epoch = int(round(EPOCH_S * float(sfreq)))
            if int(n_times) != context * per_epoch:
                raise PluginError(f"{self.id}: a window of {n_times} samples at {sfreq} Hz is not {context} x 30 s "
                                  f"({context * per_epoch} samples)")
            kwargs = {**self.fixed, **{k: opts[k] for k in self.passed}}
            kwargs.update(n_chans=self.inputs.n_chans, n_outputs=int(n_classes), sfreq=float(sfreq),
                          n_times=per_epoch if self.sequence else int(n_times))
            spec = {"arch": ARCH, "spec_version": SPEC_VERSION, "class": self.cls_name,
                    "braindecode_version": braindecode_version(), "kwargs": kwargs, "sequence": self.sequence,
                    "n_chans": self.inputs.n_chans, "n_times": int(n_times), "sfreq": float(sfreq),
                    "n_classes": int(n_classes), "context_epochs": context}
        elif not isinstance(spec, dict) or spec.get("arch") != ARCH or spec.get("class") != self.cls_name:
            raise PluginError(f"{self.id}: spec is not a braindecode {self.cls_name} spec; rebuild it with this model")
        from restbench_builtins.models.braindecode_net import BraindecodeNet

        net = BraindecodeNet(load_braindecode(), spec)
        return net, copy.deepcopy(spec)


#: braindecode's BatchNorm switch, on: slimming ranks channels by BatchNorm scale
BATCH_NORM = Option("apply_batch_norm", bool, True, "BatchNorm after each convolution (slimming needs it)",
                    paper=NOT_IN_PAPER)


class Chambon2018(BraindecodeStager):
    id = "bd-chambon2018"
    description = "braindecode SleepStagerChambon2018: two conv + max-pool blocks, one linear layer (BatchNorm on)"
    citation = "Chambon et al. 2018, IEEE TNSRE 26(4):758-769"
    cls_name = "SleepStagerChambon2018"
    inputs = ModelInput(n_chans=1, context_epochs=1, sfreq=None)
    options = (
        _context_option(1),
        Option("n_conv_chs", int, 8, "filters of each convolution", minimum=2, paper=8),
        BATCH_NORM,
    )
    passed = ("n_conv_chs", "apply_batch_norm")


class Blanco2020(BraindecodeStager):
    id = "bd-blanco2020"
    description = "braindecode SleepStagerBlanco2020: seven conv + max-pool blocks, one linear layer (BatchNorm on)"
    citation = "Blanco et al. 2020, Soft Computing 24:4067-4079"
    cls_name = "SleepStagerBlanco2020"
    # seven stride-2 poolings of size-3 kernels, in samples: sized for 100 Hz
    inputs = ModelInput(n_chans=1, context_epochs=1, sfreq=100.0)
    fixed = {"n_groups": 1}  # braindecode groups channels; one EEG channel is one group
    options = (
        _context_option(1),
        Option("n_conv_chans", int, 20, "filters of each convolution", minimum=2, paper=20),
        BATCH_NORM,
    )
    passed = ("n_conv_chans", "apply_batch_norm")


class USleep(BraindecodeStager):
    id = "bd-usleep"
    description = "braindecode USleep: fully convolutional U-Net, one 30-s segment per epoch, scored epoch last"
    citation = "Perslev et al. 2021, npj Digital Medicine 4:72"
    cls_name = "USleep"
    sequence = True
    inputs = ModelInput(n_chans=1, context_epochs=4, sfreq=None)
    options = (
        _context_option(4),
        Option("depth", int, 12, "encoder/decoder blocks", minimum=1, maximum=14, paper=12,
               profiles={"quick": 8, "smoke": 4}),
        Option("n_time_filters", int, 5, "filters of the first block", minimum=1, paper=5),
        Option("complexity_factor", float, 1.67, "filter multiplier (sqrt(2) growth per block)", minimum=0.1,
               paper=1.67, profiles={"smoke": 0.5}),
    )
    passed = ("depth", "n_time_filters", "complexity_factor")


class AttnSleep(BraindecodeStager):
    id = "bd-attnsleep"
    description = "braindecode AttnSleep: multi-resolution CNN + adaptive feature recalibration + transformer"
    citation = "Eldele et al. 2021, IEEE TNSRE 29:809-818"
    cls_name = "AttnSleep"
    # its transformer width (d_model = 80) matches the CNN's output for 30 s at 100 Hz only
    inputs = ModelInput(n_chans=1, context_epochs=1, sfreq=100.0)
    options = ()


class DeepSleepNet(BraindecodeStager):
    id = "bd-deepsleepnet"
    description = "braindecode DeepSleepNet: two-scale CNN + BiLSTM (24.7 M parameters for one 30-s epoch)"
    citation = "Supratak et al. 2017, IEEE TNSRE 25(11):1998-2008"
    cls_name = "DeepSleepNet"
    # its kernels and strides are in samples, sized for 100 Hz
    inputs = ModelInput(n_chans=1, context_epochs=1, sfreq=100.0)
    options = ()


STAGERS = (Chambon2018, USleep, Blanco2020, AttnSleep, DeepSleepNet)


@hookimpl
def register_models(register):
    for cls in STAGERS:
        register(cls())
