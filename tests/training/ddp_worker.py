"""Run by ``torchrun`` from test_distributed.py: one epoch of recognizer training on the tiny synthetic data, with
whatever number of processes torchrun starts; rank 0 saves the weights and the predictions to ``argv[1]``."""

import sys

import torch
from safetensors.torch import save_file

from stprivacy.config import load_experiment
from stprivacy.data.build import build_datasets
from stprivacy.models import VideoRecognizer
from stprivacy.runtime import seed_everything
from stprivacy.training import distributed
from stprivacy.training.supervised import FitConfig, fit, predict


def train_and_predict(accumulate: int = 1) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    cfg = load_experiment("tiny", [f"runtime.accumulate={accumulate}", "runtime.threads=1"])
    cfg.runtime.apply_threads()
    train, test, _ = build_datasets(cfg.data, cfg.seed, progress=False)
    seed_everything(0)
    model = VideoRecognizer(cfg.recognizer, len(train.action_names))
    initial = {f"__init__.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    # 32 clips in batches of 12: the last batch (8) is short, which the weighting must get right too
    fit(model, train, "action", FitConfig(epochs=2, batch_size=12, lr=1e-3, warmup_epochs=0.5), cfg.runtime, seed=0)
    scores = torch.from_numpy(predict(model, test, "action", cfg.runtime))
    out = {**initial, **{k: v.detach().clone() for k, v in model.state_dict().items()}}
    # The gradient of one global batch of 7 clips (split 4 / 3 over two ranks), summed over ranks: Adam hides a
    # wrongly scaled gradient, so the test compares gradients too.
    batch = {"video": train.videos[:7, 0].float() / 255, "action": train.actions[:7]}
    model.zero_grad()

    def loss_fn(part):
        return {"total": torch.nn.functional.cross_entropy(model(part["video"]), part["action"])}, None

    distributed.backward_parts(batch, loss_fn, torch.device("cpu"), accumulate)
    distributed.sync_gradients([model])
    out.update({f"__grad__.{k}": p.grad.clone() for k, p in model.named_parameters()})
    return out, scores


if __name__ == "__main__":
    group = distributed.init_from_env(torch.device("cpu"))
    accumulate = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    weights, scores = train_and_predict(accumulate)
    if group.is_main:
        save_file({**weights, "__scores__": scores}, sys.argv[1])
    distributed.shutdown()
