"""The baselines STPrivacy is compared with, each a video transform judged by the same phase-3 harness
(METHOD.md section 7).

* non-learned (:mod:`.fixed`): ``raw``, ``downsample2x``, ``downsample4x``, ``blur_weak``, ``blur_strong``,
  ``blackening``: functions from a :class:`~stprivacy.data.clips.ClipSet` to one of the same shape;
* learned: ``vita`` (:mod:`.vita`), ``spact`` (:mod:`.spact`), ``bdq`` (:mod:`.bdq`): networks from a float
  ``B x 3 x T x H x W`` video in [0, 1] to one of the same shape, trained with their own published objective by
  :mod:`stprivacy.training.baselines`.
"""

from stprivacy.lazy import exports

__getattr__, __all__ = exports(__name__, {
    "config": ["BASELINES", "FIXED_NAMES", "LEARNED_BASELINES", "BdqConfig", "SpactConfig", "VitaConfig",
               "check_baseline"],
    "fixed": ["FIXED_BASELINES"],
    "bdq": ["BdqTransform"],
    "spact": ["SpactTransform"],
    "vita": ["VitaTransform"],
    "registry": ["apply_baseline", "build_learned_baseline"],
})
