"""After phase 2 (``train.linear_erasure``): fit the anonymizer's linear erasers on its published training clips.

For every keep ratio it will be deployed at, the trained anonymizer decodes every view of every training clip in
inference mode; each clip's coefficients in the decoder's basis, with the clip's private attributes, fit one
LEACE eraser (:class:`~stprivacy.models.erasure.LinearEraser`), which the anonymizer then applies to everything it
publishes at that ratio. Deterministic: no seed, no learning rate, seconds on a CPU.

With ``train.erasure_second_order`` each eraser also gets a
:class:`~stprivacy.models.erasure.SecondOrderGuard`, fitted after the linear correction by
:func:`fit_second_order_guard`: full-batch gradient descent on one closed-form objective (how much of the attributes
the best ridge-regularised linear reader of the coefficients, their squares and their products within a tubelet
explains), so there is no adversary that moves and nothing to chase. Deterministic too: seconds on a CPU for
the 40 coefficients of a synth-quick clip at a = 0.7, 1-2 minutes for its 128 at a = 1.
"""

from __future__ import annotations

import logging

import torch
from tqdm.auto import tqdm

from stprivacy.config import ratio_in
from stprivacy.data.clips import ClipSet, to_float
from stprivacy.data.disk import flat_clips
from stprivacy.evaluation.leakage import action_probe, held_out_probe, linear_probe
from stprivacy.evaluation.metrics import cmap
from stprivacy.evaluation.subspace import mlp_scores, with_products
from stprivacy.models import STPrivacy
from stprivacy.models.erasure import LinearEraser, SecondOrderGuard, coefficients, decoder_basis
from stprivacy.runtime import RuntimeConfig

log = logging.getLogger(__name__)


def erasure_ratios(cfg) -> list[float]:
    """The keep ratios a run's linear erasers are fitted for (``train.erasure_keep_ratios``, by default training's
    and 1, the anonymization-only ablation); largest first."""
    return sorted(set(cfg.train.erasure_keep_ratios or (cfg.model.keep_ratio, 1.0)), reverse=True)


def refit_in_loop(f: STPrivacy, train: ClipSet, cfg, draw: int) -> dict:
    """``train.erasure_refit_every``: refit every eraser on a random sample of ``erasure_refit_clips`` training
    clips at the anonymizer's current state (phase 2 then trains through them), and put ``f`` back in training
    mode. Deterministic in ``draw``, so every rank of a distributed run fits the same erasers."""
    n = min(cfg.train.erasure_refit_clips, len(train))
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed * 7919 + draw))[:n]
    was_training = f.training
    ratios = fit_run_erasers(f, train.subset(pick), cfg)
    f.train(was_training)
    return {"keep_ratios": ratios, "clips": n}


def clip_coefficients(model: STPrivacy, clips: ClipSet, keep_ratio: float, basis: torch.Tensor,
                      offset: torch.Tensor, runtime: RuntimeConfig, batch_size: int = 64) -> torch.Tensor:
    """``(N * V) x S x r`` decoder coefficients of every view of every clip (zero where dropped), before erasure."""
    device = runtime.torch_device()
    model.to(device).eval()
    n = len(clips) * clips.views
    rows = []
    for start in tqdm(range(0, n, batch_size), desc=f"erasure a={keep_ratio}", leave=False,
                      disable=not runtime.progress):
        x = to_float(flat_clips(clips.videos, start, min(start + batch_size, n))).to(device)
        tubelets, keep = model.decoded_tubelets(x, keep_ratio)
        rows.append(coefficients(tubelets.float(), keep, basis.to(device), offset.to(device)).cpu())
    return torch.cat(rows)


def erasure_readings(model: STPrivacy, val: ClipSet, runtime: RuntimeConfig) -> dict[str, float]:
    """The instrument of the erasers, on validation clips they were not fitted on: per keep ratio, the mean AP
    over the attributes of a linear probe (logistic regression, out of fold on ``val``) on the clips' coefficient
    vectors before and after erasure; after erasure on the coefficients and their squares, and on all of
    :func:`quadratic_features` (second-order readers, which the linear correction does not stop and a
    second-order guard should); and the top-1 of a linear action probe before and after (what erasure cost the
    action, as far as a linear reader sees)."""
    out = {}
    attributes = val.attributes.repeat_interleave(val.views, dim=0)
    actions = val.actions.repeat_interleave(val.views, dim=0)
    for eraser in model.erasers.values():
        a = round(float(eraser.keep_ratio), 6)
        before = clip_coefficients(model, val, a, eraser.basis, eraser.offset, runtime)
        after = eraser.erase_coefficients(before).flatten(1)[:, eraser.live]
        before = before.flatten(1)[:, eraser.live]
        pairs = tubelet_pairs(eraser.live, eraser.basis.shape[1])
        readers = {"before": before, "after": after, "after_squares": torch.cat([after, after ** 2], 1),
                   "after_quadratic": quadratic_features(after, pairs)}
        for name, feats in readers.items():
            live = feats[:, feats.std(0) > 0].double().numpy()
            out[f"val_linear_{name}_a{a:g}"] = float(linear_probe(live, attributes).mean())
            if name in ("before", "after"):
                out[f"val_linear_action_{name}_a{a:g}"] = action_probe(live, actions)
    return out


#: the most live coefficients :func:`product_readings` reads every product of (40 at a = 0.7 in synth-quick:
#: 860 features; 128 at a = 1 would be 8,384)
MAX_PRODUCT_READER_LIVE = 64


def principal_axes(x: torch.Tensor, live: torch.Tensor, rank: int) -> torch.Tensor:
    """``d x d`` block-diagonal rotation of ``N x d`` live coefficients (entries ``live`` of a flattened S x rank
    grid) into the principal axes of each tubelet position's own coefficients over ``x``, largest first."""
    axes = torch.zeros(len(live), len(live), dtype=x.dtype)
    positions = live // rank
    for position in positions.unique():
        cols = (positions == position).nonzero().flatten()
        _, vectors = torch.linalg.eigh(torch.cov(x[:, cols].T).reshape(len(cols), len(cols)))
        axes[cols[:, None], cols] = vectors.flip(1)
    return axes


def product_readings(model: STPrivacy, fit_clips: ClipSet, val: ClipSet, runtime: RuntimeConfig,
                     fit_coefficients: dict[float, torch.Tensor] | None = None) -> dict[str, float]:
    """A stronger reader than the guard's default objective and than phase 3's ridge: per keep ratio, the mean AP on
    ``val`` of a logistic regression on every coefficient and every product of two (across tubelets too), fitted on
    the published ``fit_clips`` (the eraser's own fitting clips: what an attacker with labelled clips of its own
    would learn); and, as ``val_mlp_after_a<r>``, the cMAP of the subspace attacker's MLP reader
    (:func:`~stprivacy.evaluation.subspace.mlp_scores`) of the coefficients, which reads moments above the second
    too. Both read the coefficients in :func:`principal_axes`, as the subspace attacker of the pixels does. Ratios
    with more than :data:`MAX_PRODUCT_READER_LIVE` live coefficients are skipped. ``fit_coefficients``: the
    ``fit_clips``' coefficients by keep ratio, as :func:`fit_erasers` kept them (else decoded again)."""
    out = {}
    for eraser in model.erasers.values():
        if len(eraser.live) > MAX_PRODUCT_READER_LIVE:
            continue
        a = round(float(eraser.keep_ratio), 6)
        fit_c = (fit_coefficients or {}).get(a)
        if fit_c is None:
            fit_c = clip_coefficients(model, fit_clips, a, eraser.basis, eraser.offset, runtime)
        val_c = clip_coefficients(model, val, a, eraser.basis, eraser.offset, runtime)
        fit_x, x = (eraser.erase_coefficients(c).flatten(1)[:, eraser.live].double() for c in (fit_c, val_c))
        # in each tubelet position's principal axes, the basis an attacker of the pixels finds (its scores are
        # these, up to scale): an MLP's reading depends on the basis, and a guard fitted in the decoder's own
        # basis was read at 57 there and at 69 in this one (docs/results/recipe_study.md, fourteenth session)
        axes = principal_axes(fit_x, eraser.live, eraser.basis.shape[1])
        fit_x, x = fit_x @ axes, x @ axes
        fit_attrs = fit_clips.attributes.repeat_interleave(fit_clips.views, dim=0)
        attrs = val.attributes.repeat_interleave(val.views, dim=0)
        # the subspace attacker's two readers, on the coefficients themselves rather than on recovered scores
        out[f"val_products_after_a{a:g}"] = float(held_out_probe(with_products(fit_x), fit_attrs, with_products(x),
                                                                 attrs).mean())
        out[f"val_mlp_after_a{a:g}"] = cmap(mlp_scores(fit_x, fit_attrs.numpy(), x), attrs.numpy())
    return out


#: full-batch steps, hidden width and learning rate of a second-order guard's fit (Adam, float64): the setting
#: validated on synth-quick (recipe_study.md, twelfth session), not tuned. A fit costs about 4 s for 40
#: coefficients and 1-2 minutes for 128 (a = 1 there) on one CPU core: each step solves a reader of 2.5 x as many
#: quadratic features.
GUARD_STEPS, GUARD_HIDDEN, GUARD_LR = 600, 16, 3e-3
#: ridge of the guard's closed-form reader, on standardised features: keeps its solve well posed
GUARD_RIDGE = 1e-2


def tubelet_pairs(live: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs into ``live`` (entries of a flattened S x rank coefficient grid) of every two coefficients of
    the same tubelet: a tubelet's pixels are quadratic in them together (a cell's mean square has their products)."""
    pos = {int(v): i for i, v in enumerate(live)}
    pairs = [(pos[v], pos[w]) for v in pos for w in pos if v < w and v // rank == w // rank]
    first, second = zip(*pairs, strict=True) if pairs else ((), ())
    return torch.tensor(first, dtype=torch.long), torch.tensor(second, dtype=torch.long)


def guard_pairs(live: torch.Tensor, rank: int, products: str = "tubelet") -> tuple[torch.Tensor, torch.Tensor]:
    """The products a guard's reader sees (``train.erasure_guard_products``): :func:`tubelet_pairs`, or with
    ``"all"`` every two of the ``live`` coefficients."""
    if products == "all":
        first, second = torch.triu_indices(len(live), len(live), offset=1)
        return first, second
    return tubelet_pairs(live, rank)


def quadratic_features(x: torch.Tensor, pairs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``N x d`` coefficients -> the coefficients, their squares and the products of :func:`tubelet_pairs`."""
    return torch.cat([x, x ** 2, x[:, pairs[0]] * x[:, pairs[1]]], 1)


def linear_leak(features: torch.Tensor, attributes: torch.Tensor, ridge: float = GUARD_RIDGE) -> torch.Tensor:
    """The variance of ``attributes`` (summed over them) that the best ridge-regularised linear reader of
    ``features`` explains, in closed form: ``tr(C_zf (C_ff + ridge I)^-1 C_fz)``. Differentiable."""
    f = features - features.mean(0)
    z = attributes - attributes.mean(0)
    cov = f.T @ f / len(f) + ridge * torch.eye(f.shape[1], dtype=f.dtype)
    cross = f.T @ z / len(f)
    return (cross * torch.linalg.solve(cov, cross)).sum()


def fit_second_order_guard(x: torch.Tensor, attributes: torch.Tensor, pairs: tuple[torch.Tensor, torch.Tensor],
                           distortion: float, seed: int = 0) -> SecondOrderGuard:
    """A guard for ``N x d`` live coefficients (after an eraser's linear correction) and their ``N x K``
    attributes: minimises :func:`linear_leak` of its output's :func:`quadratic_features` plus ``distortion`` times
    its mean squared change, in standardised units. The initial hidden layer comes from ``seed``."""
    x = x.double()
    scale = x.std(0).clamp_min(1e-8)
    guard = SecondOrderGuard(x.mean(0), scale, GUARD_HIDDEN)
    first = guard.net[0]
    bound = first.in_features ** -0.5
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # nn.Linear's own init range, from a generator of our own (the global one stays put)
        first.weight.copy_(torch.rand(first.weight.shape, generator=g, dtype=torch.float64) * 2 * bound - bound)
        first.bias.copy_(torch.rand(first.bias.shape, generator=g, dtype=torch.float64) * 2 * bound - bound)
    z, target = (x - guard.centre) / guard.scale, attributes.double()
    opt = torch.optim.Adam(guard.parameters(), lr=GUARD_LR)
    with torch.enable_grad():
        for _ in range(GUARD_STEPS):
            out = guard.standardised(x)
            loss = linear_leak(quadratic_features(out, pairs), target) + distortion * ((out - z) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return guard.requires_grad_(False)


def fit_eraser(basis: torch.Tensor, offset: torch.Tensor, x: torch.Tensor, attributes: torch.Tensor,
               keep_ratio: float, second_order: bool = False, distortion: float = 0.1,
               products: str = "tubelet", linear: bool = True, noise: float = 0.0) -> LinearEraser:
    """One eraser on ``x`` (N x S x r coefficients) and ``attributes``; with ``second_order`` its guard too; without
    ``linear``, the guard alone (no direction erased); with ``noise``, fresh noise of that many times each
    coefficient's spread (after the linear correction, as the guard standardises it) at every publication."""
    eraser = (LinearEraser.fit(basis, offset, x, attributes, keep_ratio) if linear
              else LinearEraser.without_correction(basis, offset, x, keep_ratio))
    corrected = eraser.correct(x.flatten(1)[:, eraser.live].double())
    if second_order:
        pairs = guard_pairs(eraser.live, basis.shape[1], products)
        eraser.guard = fit_second_order_guard(corrected, attributes, pairs, distortion)
    if noise:
        eraser.noise.copy_(noise * corrected.std(0).clamp_min(1e-8))
    return eraser


def fit_run_erasers(model: STPrivacy, clips: ClipSet, cfg, keep: dict[float, torch.Tensor] | None = None
                    ) -> list[float]:
    """:func:`fit_erasers` with a run's settings (``train.erasure_*``)."""
    t = cfg.train
    ratios = erasure_ratios(cfg)
    noise = {a: t.erasure_noise for a in ratios
             if not t.erasure_noise_keep_ratios or ratio_in(a, t.erasure_noise_keep_ratios)}
    return fit_erasers(model, clips, ratios, cfg.runtime, t.erasure_second_order, t.erasure_distortion,
                       t.erasure_guard_products, keep, t.erasure_guard_only_keep_ratios, noise)


def fit_erasers(model: STPrivacy, clips: ClipSet, keep_ratios: list[float], runtime: RuntimeConfig,
                second_order: bool = False, distortion: float = 0.1, products: str = "tubelet",
                keep: dict[float, torch.Tensor] | None = None, guard_only: tuple[float, ...] = (),
                noise: dict[float, float] | None = None) -> list[float]:
    """Fit one eraser per keep ratio (ratios with the same keep counts share one) on ``clips`` and install them
    in ``model`` (``second_order``, ``distortion``, ``products``, ``guard_only``: ``train.erasure_second_order``,
    ``erasure_distortion``, ``erasure_guard_products``, ``erasure_guard_only_keep_ratios``; ``noise``: the
    publication noise by keep ratio, ``train.erasure_noise`` at ``erasure_noise_keep_ratios``). Returns the ratios
    fitted; with ``keep``, also puts each ratio's coefficients there (what :func:`product_readings` reads next, so
    that it need not decode them again)."""
    if len(clips) < 2:
        raise ValueError(f"linear erasure needs labelled training clips to fit on, got {len(clips)}")
    if guard_only and not second_order:
        raise ValueError("a guard-only eraser needs its second-order guard (second_order=True): without it, it would "
                         "publish the coefficients unchanged")
    basis, offset = decoder_basis(model.decode, model.cfg.embed_dim)
    attributes = clips.attributes.float().repeat_interleave(clips.views, dim=0)
    fitted, seen = [], set()
    for a in sorted(set(keep_ratios), reverse=True):
        counts = tuple(model.keep_counts(a))
        if counts in seen:
            continue
        seen.add(counts)
        x = clip_coefficients(model, clips, a, basis, offset, runtime)
        if keep is not None:
            keep[round(a, 6)] = x
        linear = not ratio_in(a, guard_only)
        sigma = next((v for r, v in (noise or {}).items() if ratio_in(a, [r])), 0.0)
        model.set_eraser(a, fit_eraser(basis, offset, x, attributes, a, second_order, distortion, products, linear,
                                       sigma))
        fitted.append(a)
        what = "linear eraser" + (" and second-order guard" if second_order else "") if linear else "guard alone"
        what += f", publication noise {sigma:g}" if sigma else ""
        log.info("%s fitted at a=%g on %d clips (%d coefficients each, rank %d)", what, a, len(x), x[0].numel(),
                 basis.shape[1])
    return fitted
