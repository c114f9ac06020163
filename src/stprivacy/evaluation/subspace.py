"""An attacker that knows how the anonymizer paints: each tubelet's principal components, read by a small MLP or
by a logistic regression on every product of two.

With ``train.phase2_output_rank`` r, every kept tubelet of a published video is an offset plus r learned pixel
patterns (before clamping and quantisation), so the whole clip is a few dozen numbers. An attacker with only the
published videos can recover them: the top principal components of each tubelet position, over the published
training clips, span the same patterns. What a linear eraser and a second-order guard leave can then be read by
a logistic regression on those scores and on every product of two of them, across tubelets too (``"quadratic"``:
on the synth-quick output it reads what the coefficient-level product reader of
``training.erasure.product_readings`` reads, from pixels alone), and better by a small MLP on the scores
(``"mlp"``: moments above the second too; docs/results/recipe_study.md, thirteenth session). Phase 3's other
families do not: the ridge's cell moments hold only the products within one tubelet, and the trained networks
learn for a few epochs.

``"subspace"`` in ``evaluate.attackers``; ``evaluate.subspace_rank`` components per position (the decoder's rank
is public in a run's config, so the synthetic presets use it), at most ``evaluate.subspace_scores`` scores (the
ones that vary most over the training clips; their products grow as its square), ``evaluate.subspace_reader``.
It takes no phase-3 seed: the randomised principal-component fit and the MLP are seeded here, so the attacker is
deterministic.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.neural_network import MLPClassifier

from stprivacy.data.clips import ClipSet, to_float
from stprivacy.evaluation.leakage import held_out_scores
from stprivacy.layers.tubelets import video_to_tubelets

#: clips (views) the principal components are fitted on: the top few components of a position are well estimated
#: from this many, and the fit stays seconds at any split size
PCA_CLIPS = 512
#: inverse L2 strength of the logistic regressions, on standardised features (the product reader's)
LOGISTIC_C = 0.1
#: the "mlp" reader: two hidden layers of 256, weight decay 1e-3, early stopping on a tenth of the training rows
#: (seeded, so deterministic); seconds an attribute on a CPU
MLP_HIDDEN, MLP_ALPHA = (256, 256), 1e-3
#: the readers of the scores: a logistic regression on them and every product of two, or a small MLP on them
READERS = ("quadratic", "mlp")


def _views(clips: ClipSet, batch_size: int = 64):
    """Every view of every clip in order, as float ``B x 3 x T x H x W`` batches with their clip indices."""
    for start in range(0, len(clips), batch_size):
        videos = clips.videos[start:start + batch_size]
        index = torch.arange(start, start + len(videos))
        for v in range(videos.shape[1]):
            yield index, to_float(videos[:, v])


def tubelet_components(clips: ClipSet, tubelet: tuple[int, int, int], rank: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``S x D`` mean and ``S x D x rank`` top principal directions of every tubelet position's pixels, over
    (at most :data:`PCA_CLIPS`) views of ``clips``."""
    rows, seen = [], 0
    for _, video in _views(clips):
        rows.append(video_to_tubelets(video, tubelet))
        seen += len(video)
        if seen >= PCA_CLIPS:
            break
    x = torch.cat(rows)[:PCA_CLIPS].transpose(0, 1)  # S x N x D
    means, directions = [], []
    with torch.random.fork_rng():  # a randomised SVD, seeded here so that the attacker is deterministic
        torch.manual_seed(0)
        for position in x:  # float32: directions good to far better than the 8-bit pixels they are read from
            mean = position.mean(0)
            _, _, v = torch.svd_lowrank(position - mean, q=min(rank + 8, *position.shape), niter=4)
            means.append(mean)
            directions.append(v[:, :rank])
    return torch.stack(means), torch.stack(directions)


def tubelet_scores(clips: ClipSet, mean: torch.Tensor, directions: torch.Tensor, tubelet: tuple[int, int, int]
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N V) x (S rank)`` scores of every view of ``clips`` and the clip index of each row."""
    rows, index = [], []
    for idx, video in _views(clips):
        x = video_to_tubelets(video, tubelet) - mean
        rows.append(torch.einsum("bsd,sdr->bsr", x, directions).flatten(1).double())
        index.append(idx)
    return torch.cat(rows), torch.cat(index)


def with_products(scores: torch.Tensor) -> np.ndarray:
    """The scores, their squares and every product of two."""
    first, second = torch.triu_indices(scores.shape[1], scores.shape[1])
    return torch.cat([scores, scores[:, first] * scores[:, second]], 1).numpy()


def mlp_scores(fit_scores: torch.Tensor, fit_labels: np.ndarray, scores: torch.Tensor) -> np.ndarray:
    """``N x K`` probabilities on ``scores`` of one small MLP per binary label fitted on ``fit_scores``
    (standardised on them): any smooth function of the scores, third and higher moments too."""
    def mlp():
        return MLPClassifier(MLP_HIDDEN, alpha=MLP_ALPHA, early_stopping=True, max_iter=300, random_state=0)

    return held_out_scores(fit_scores.numpy(), fit_labels, scores.numpy(), classifier=mlp)


def subspace_attack(train: ClipSet, test: ClipSet, tubelet: tuple[int, int, int], rank: int = 2,
                    max_scores: int = 64, reader: str = "quadratic") -> np.ndarray:
    """Fitted on every view of the published ``train`` clips; ``N x K`` attribute probabilities on ``test`` (the
    mean over its views). ``reader``: one of :data:`READERS`."""
    if reader not in READERS:
        raise ValueError(f"the subspace attacker's reader must be one of {list(READERS)}, got {reader!r}")
    t, p, q = tubelet
    _, _, frames, height, width = train.videos.shape[1:]
    if frames % t or height % p or width % q:
        raise ValueError(f"the subspace attacker's tubelet {tubelet} does not divide the {frames} x {height} x "
                         f"{width} clips")
    mean, directions = tubelet_components(train, tubelet, rank)
    fit_scores, fit_index = tubelet_scores(train, mean, directions, tubelet)
    pick = fit_scores.std(0).argsort(descending=True)[:max_scores]  # a never-shown (black) position scores 0
    test_scores, test_index = tubelet_scores(test, mean, directions, tubelet)
    fit_scores, test_scores, labels = fit_scores[:, pick], test_scores[:, pick], train.attributes[fit_index].numpy()
    if reader == "mlp":
        probs = mlp_scores(fit_scores, labels, test_scores)
    else:
        probs = held_out_scores(with_products(fit_scores), labels, with_products(test_scores), LOGISTIC_C)
    per_clip = np.zeros((len(test), probs.shape[1]))
    np.add.at(per_clip, test_index.numpy(), probs)
    return (per_clip / test.videos.shape[1]).astype(np.float32)
