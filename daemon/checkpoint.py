"""One checkpoint format and one loader, for the CLI, the daemon and the tests.

A checkpoint holds only tensors and plain data so it loads with `weights_only=True`
(no pickled code runs on load), and carries everything needed to rebuild the model:
its config, the vocabulary (MidiTok's tokenizer JSON included) and how it was trained.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from daemon.model import DrumTransformer, ModelConfig
from daemon.vocab import Vocabulary

FORMAT_VERSION = 1
BUNDLED = Path(__file__).resolve().parent / "checkpoints" / "drumigen-gmd.pt"


def save(path: Path, model: DrumTransformer, vocab: Vocabulary, meta: dict, optimizer=None) -> None:
    state = {
        "format_version": FORMAT_VERSION,
        "model_config": asdict(model.config),
        "model": _on_cpu(model.state_dict()),
        "vocab": vocab.to_dict(),
        "meta": meta,
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    write(path, state)


def write(path: Path, state: dict) -> None:
    """torch.save through a temporary file, so a crash never leaves half a checkpoint behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        torch.save(state, tmp)
    except RuntimeError as err:  # torch's "open file failed ... Permission denied" is no OSError
        tmp.unlink(missing_ok=True)
        raise OSError(f"{path} could not be written ({(str(err).splitlines() or [repr(err)])[0][:200]})") from None
    tmp.replace(path)


def check_writable(path: Path) -> None:
    """An OSError now for a checkpoint path that cannot be written, rather than after the
    minutes of training before its first save: its folder made, a file made and removed there."""
    if path.is_dir():
        raise IsADirectoryError(21, "a folder, not a checkpoint file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".write-test-"):
        pass


def read(path: Path, what: str = "checkpoint") -> object:
    """What a file holds, loaded weights-only, or a clear error saying it is no MidiDrumiGen `what`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError:  # a file that cannot be read (permissions, a disk error) says so itself
        raise
    except Exception as err:  # a .mid, a truncated download, anything torch cannot unpickle safely
        raise ValueError(f"{path} is not a MidiDrumiGen {what} ({type(err).__name__})") from None


def damaged(path: Path, what: str, err: Exception) -> ValueError:
    """The error for a file that loads but whose fields or tensors do not fit."""
    return ValueError(f"{path} is a damaged {what} ({type(err).__name__}: {str(err).splitlines()[0][:200]})")


def _on_cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors on the CPU, those that share memory (tied weights) still one tensor: copied
    from a GPU one by one, the head would be saved twice, 1.1 MB more."""
    copies: dict[tuple, torch.Tensor] = {}
    out = {}
    for k, v in tensors.items():
        key = (v.data_ptr(), v.shape, v.stride(), v.dtype)
        if key not in copies:
            copies[key] = v.detach().cpu()
        out[k] = copies[key]
    return out


def load_state(path: Path) -> dict:
    state = read(path)
    version = state.get("format_version") if isinstance(state, dict) else None
    if version != FORMAT_VERSION:
        raise ValueError(f"{path} has checkpoint format {version!r}; this MidiDrumiGen reads {FORMAT_VERSION}")
    missing = [key for key in ("model_config", "model", "vocab", "meta") if key not in state]
    if missing:
        raise ValueError(f"{path} is a damaged checkpoint: it lacks {', '.join(missing)}")
    return state


def sha256(path: Path) -> str:
    """The file's digest: which checkpoint a distilled one was taught by."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(path: Path, device: str | torch.device = "cpu") -> tuple[DrumTransformer, Vocabulary, dict]:
    """The model in eval mode on `device`, its vocabulary and its training metadata."""
    device = torch.device(device)  # a RuntimeError for a name torch does not know
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} asked for, but torch sees no CUDA GPU here: use cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device mps asked for, but torch sees no Apple GPU (MPS) here: use cpu or auto")
    state = load_state(path)
    try:
        model = DrumTransformer(ModelConfig(**state["model_config"]))
        model.load_state_dict(state["model"])
        vocab = Vocabulary.from_dict(state["vocab"])
    except (TypeError, KeyError, RuntimeError, AttributeError, ValueError) as err:  # fields or tensors that do not fit
        raise damaged(path, "checkpoint", err) from None
    model.to(device).eval()
    return model, vocab, state["meta"]
