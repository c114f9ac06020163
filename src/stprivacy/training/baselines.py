"""Training the learned baselines with their own published objectives (METHOD.md section 7).

Each batch alternates two steps, like phase 2 of STPrivacy:

1. **transform step**, adversary frozen: the transform ``f`` and an action recognizer ``A`` (trained jointly, as in
   all three papers) minimise ``CE(A(f(x)), y) + privacy term``:

   * VITA: ``+ gamma * max_i -H(P_i(f(x)))`` (the most confident member of a privacy ensemble, restarted every
     ``vita.restart_every`` epochs);
   * BDQ: ``- alpha * H(P(f(x)))`` (entropy of the privacy model's prediction, pushed up);
   * SPAct: ``- omega * NT-Xent(E(v1), E(v2))`` (two augmented frames of the same anonymized clip, pushed apart);

2. **adversary step** on the detached ``f(x)``: the privacy model(s) minimise their BCE (VITA, BDQ), or the
   contrastive encoder its NT-Xent (SPAct, which never sees a privacy label).

SPAct's UNet is first trained to reconstruct its input. Every stage is resumable through the shared epoch loop;
the trained transform is saved alone as ``checkpoints/<name>`` and phase 3 uses only that.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from stprivacy.config import BaselinesConfig, ExperimentConfig, peak_lr
from stprivacy.data.clips import ClipSet
from stprivacy.errors import ConfigError
from stprivacy.losses import action_loss, binary_entropy, nt_xent, privacy_loss
from stprivacy.models import VideoRecognizer
from stprivacy.models.baselines import build_learned_baseline
from stprivacy.models.baselines.spact import ContrastiveEncoder, two_views
from stprivacy.models.pretrained import with_pretrained
from stprivacy.models.recognizers import AttackerEnsemble
from stprivacy.training import distributed
from stprivacy.training.batches import epoch_batches
from stprivacy.training.checkpoint import checkpoint_exists, load_modules, save_checkpoint
from stprivacy.training.epochs import run_epochs
from stprivacy.training.optim import make_optimizer, warmup_cosine
from stprivacy.training.run_dir import RunDir


def entropies(ensemble: AttackerEnsemble, video: torch.Tensor) -> torch.Tensor:
    """The mean prediction entropy of each privacy model."""
    return torch.stack([binary_entropy(m(video).float()) for m in ensemble])


class Objective:
    """What differs between the three methods: the adversary, the privacy term of the transform step, the
    adversary's own losses (with their ``total``), and what happens before an epoch."""

    adversary: nn.Module

    def privacy_term(self, video: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def adversary_losses(self, video: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def before_epoch(self, epoch: int, run: RunDir) -> None:
        pass


class LabelledPrivacyObjective(Objective):
    """VITA and BDQ: the adversary is a set of privacy models trained with the attribute labels (BCE)."""

    def __init__(self, cfg: ExperimentConfig, num_attributes: int, members: int):
        self.adversary = AttackerEnsemble(cfg.baselines.privacy_models, members, cfg.recognizer, cfg.frame_attacker,
                                          num_attributes)

    def adversary_losses(self, video, batch):
        bce = torch.stack([privacy_loss(m(video).float(), batch["attributes"]) for m in self.adversary]).mean()
        return {"adv_bce": bce, "total": bce}


class VitaObjective(LabelledPrivacyObjective):
    def __init__(self, cfg: ExperimentConfig, num_attributes: int):
        self.cfg = cfg.baselines.vita
        super().__init__(cfg, num_attributes, self.cfg.ensemble)

    def privacy_term(self, video, batch):
        budget = -entropies(self.adversary, video).min()  # max_i of -H: the most confident privacy model
        return {"budget": budget, "privacy_term": self.cfg.gamma * budget}

    def before_epoch(self, epoch, run):
        every = self.cfg.restart_every
        if every and epoch and epoch % every == 0:
            self.adversary.restart()
            run.log("privacy_restart", phase="vita", epoch=epoch + 1)


class BdqObjective(LabelledPrivacyObjective):
    def __init__(self, cfg: ExperimentConfig, num_attributes: int):
        self.cfg = cfg.baselines.bdq
        super().__init__(cfg, num_attributes, 1)

    def privacy_term(self, video, batch):
        entropy = entropies(self.adversary, video).mean()
        return {"entropy": entropy, "privacy_term": -self.cfg.alpha * entropy}


class SpactObjective(Objective):
    def __init__(self, cfg: ExperimentConfig, num_attributes: int):
        self.cfg = cfg.baselines.spact
        self.adversary = ContrastiveEncoder(self.cfg, cfg.frame_attacker)
        self.views = torch.Generator().manual_seed(cfg.seed + 7)

    def _nt_xent(self, video):
        v1, v2 = two_views(video, self.views)
        return nt_xent(self.adversary(v1).float(), self.adversary(v2).float(), self.cfg.temperature)

    def privacy_term(self, video, batch):
        loss = self._nt_xent(video)
        return {"nt_xent": loss, "privacy_term": -self.cfg.omega * loss}

    def adversary_losses(self, video, batch):
        loss = self._nt_xent(video)
        return {"adv_nt_xent": loss, "total": loss}


OBJECTIVES = {"vita": VitaObjective, "spact": SpactObjective, "bdq": BdqObjective}


def train_learned_baseline(name: str, train: ClipSet, cfg: ExperimentConfig, run: RunDir) -> nn.Module:
    """Train (or resume, or load) the learned baseline ``name``; returns its transform in eval mode."""
    t = train.clip_shape[0]
    bc = cfg.baselines
    transform = build_learned_baseline(name, t, bc.vita, bc.spact, bc.bdq)
    _check_fits(name, transform, train)
    final = run.checkpoint(name)
    if checkpoint_exists(final):
        load_modules(final, {"transform": transform})
        return transform.eval()
    device = cfg.runtime.torch_device()
    transform.to(device)
    if name == "spact" and bc.spact.pretrain_epochs:
        _pretrain_reconstruction(transform, train, cfg, run, name)
    objective = OBJECTIVES[name](cfg, len(train.attribute_names))
    action = with_pretrained(VideoRecognizer(cfg.recognizer, len(train.action_names))).to(device)
    objective.adversary.to(device)
    for m in (transform, action, objective.adversary):
        distributed.broadcast_module(m)
    utility = nn.ModuleDict({"transform": transform, "action": action})
    steps = _steps(train, bc)
    opts = {"utility": make_optimizer(utility, peak_lr(bc), bc.weight_decay),
            "adversary": make_optimizer(objective.adversary, peak_lr(bc), bc.weight_decay)}
    scheds = {k: warmup_cosine(o, bc.epochs * steps, int(bc.warmup_epochs * steps)) for k, o in opts.items()}
    gen = torch.Generator().manual_seed(cfg.seed + 11)
    modules = {"transform": transform, "action": action, "adversary": objective.adversary}
    run_epochs(phase=name, epochs=bc.epochs, run=run, stem=run.checkpoint(f"{name}_train"), modules=modules,
               optimizers=opts, schedulers=scheds, generator=gen, tc=cfg.train, lr_option="baselines.lr",
               epoch_fn=lambda epoch: _adversarial_epoch(name, transform, action, objective, train, cfg, opts,
                                                         scheds, gen, epoch),
               before_epoch=lambda epoch: objective.before_epoch(epoch, run))
    if distributed.current().is_main:
        save_checkpoint(final, {"transform": transform}, metadata={"baseline": name, "epochs": bc.epochs})
    distributed.barrier()
    return transform.eval()


def _check_fits(name: str, transform: nn.Module, clips: ClipSet) -> None:
    """Fail before training, with the setting to change, when the network cannot take these clips."""
    t, h, w = clips.clip_shape
    try:
        with torch.no_grad():
            transform.eval()(torch.zeros(1, 3, t, h, w))
    except ValueError as exc:
        raise ConfigError(f"baseline {name} cannot take {t}x{h}x{w} clips: {exc} (see baselines.{name})") from None
    transform.train()


def _steps(train: ClipSet, bc: BaselinesConfig) -> int:
    return max(1, -(-len(train) // bc.batch_size))


@contextmanager
def _batches(train: ClipSet, cfg: ExperimentConfig, gen: torch.Generator, desc: str, draw: tuple[int, ...]):
    """Global batches without keep masks (on the CPU; :func:`distributed.backward_parts` moves each rank's share)."""
    with epoch_batches(train, cfg.baselines.batch_size, generator=gen, hflip=cfg.data.hflip,
                       device=cfg.runtime.torch_device(), desc=desc, progress=cfg.runtime.progress,
                       draw=draw) as bar:
        yield ({k: v for k, v in b.items() if k != "keep_mask"} for b in bar)


def _adversarial_epoch(name, transform, action, objective, train, cfg, opts, scheds, gen, epoch) -> dict[str, float]:
    runtime, steps = cfg.runtime, _steps(train, cfg.baselines)
    device = runtime.torch_device()
    adversary = objective.adversary
    transform.train(), action.train(), adversary.train()
    sums: dict[str, float] = {}
    with _batches(train, cfg, gen, f"{name} epoch {epoch + 1}/{cfg.baselines.epochs}", (6, epoch)) as batches:
        for batch in batches:
            adversary.requires_grad_(False)

            def utility_loss(part):
                with runtime.autocast(device):
                    video = transform(part["video"])
                    losses = {"ce": action_loss(action(video).float(), part["action"])}
                    losses.update(objective.privacy_term(video, part))
                losses["total"] = losses["ce"] + losses["privacy_term"]
                return losses, video.detach()

            opts["utility"].zero_grad(set_to_none=True)
            losses, parts = distributed.backward_parts(batch, utility_loss, device, runtime.accumulate)
            distributed.apply_update(opts["utility"], [transform, action], losses)
            adversary.requires_grad_(True)
            opts["adversary"].zero_grad(set_to_none=True)

            def adversary_loss(part, video):
                with runtime.autocast(device):
                    return objective.adversary_losses(video, part)

            adv = distributed.backward_again(parts, adversary_loss)
            distributed.apply_update(opts["adversary"], [adversary], adv)
            for s in scheds.values():
                s.step()
            adv["adv_total"] = adv.pop("total")
            for k, v in {**losses, **adv}.items():
                sums[k] = sums.get(k, 0.0) + v / steps
    for m in (transform, action, adversary):  # BatchNorm statistics: rank 0's
        distributed.broadcast_module(m)
    return sums


def _pretrain_reconstruction(transform: nn.Module, train: ClipSet, cfg: ExperimentConfig, run: RunDir,
                             name: str) -> None:
    """SPAct's first stage: the UNet learns to reproduce its input (L1)."""
    bc, runtime = cfg.baselines, cfg.runtime
    device = runtime.torch_device()
    epochs, steps = bc.spact.pretrain_epochs, _steps(train, bc)
    opts = {"transform": make_optimizer(transform, peak_lr(bc), bc.weight_decay)}
    scheds = {"transform": warmup_cosine(opts["transform"], epochs * steps, int(bc.warmup_epochs * steps))}
    gen = torch.Generator().manual_seed(cfg.seed + 13)

    def loss_fn(part):
        with runtime.autocast(device):
            return {"total": (transform(part["video"]).float() - part["video"]).abs().mean()}, None

    def epoch_fn(epoch: int) -> dict[str, float]:
        transform.train()
        total = 0.0
        with _batches(train, cfg, gen, f"{name} reconstruction {epoch + 1}/{epochs}", (5, epoch)) as batches:
            for batch in batches:
                opts["transform"].zero_grad(set_to_none=True)
                losses, _ = distributed.backward_parts(batch, loss_fn, device, runtime.accumulate)
                distributed.apply_update(opts["transform"], [transform], losses)
                scheds["transform"].step()
                total += losses["total"] / steps
        distributed.broadcast_module(transform)
        return {"reconstruction": total}

    run_epochs(phase=f"{name} pretrain", epochs=epochs, run=run, stem=run.checkpoint(f"{name}_pretrain"),
               modules={"transform": transform}, optimizers=opts, schedulers=scheds, generator=gen, tc=cfg.train,
               epoch_fn=epoch_fn, lr_option="baselines.lr")
