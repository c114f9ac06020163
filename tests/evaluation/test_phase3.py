"""Phase 3's transforms: what the attackers receive."""

import torch

from stprivacy.data.clips import ClipSet, to_float
from stprivacy.evaluation.phase3 import anonymize_clips, sparsify_clips
from stprivacy.layers.tubelets import keep_mask_pixels
from stprivacy.models import STPrivacy
from stprivacy.runtime import RuntimeConfig

RUNTIME = RuntimeConfig(progress=False)


def _clips(n=3):
    return ClipSet(torch.randint(1, 255, (n, 3, 8, 32, 32), dtype=torch.uint8), torch.arange(n) % 3,
                   torch.zeros(n, 5, dtype=torch.long))


def test_sparsify_only_keeps_original_pixels_of_the_anonymizers_choice():
    model = STPrivacy.from_preset("tiny", num_classes=3).eval()
    clips = _clips()
    sparse = sparsify_clips(model, clips, 0.7, RUNTIME)
    anon = anonymize_clips(model, clips, 0.7, RUNTIME)
    # the same tubelets are kept (the raw clip has no black tubelet), with the raw pixels in them
    assert torch.equal(sparse.keep_masks, anon.keep_masks)
    kept = keep_mask_pixels(sparse.keep_masks[:, 0].float(), model.grid).bool().expand(-1, 3, -1, -1, -1)
    raw = clips.videos[:, 0]
    assert torch.equal(sparse.videos[:, 0][kept], raw[kept])
    assert (sparse.videos[:, 0][~kept] == 0).all()
    assert 0.3 < kept.float().mean() < 0.95
    assert not torch.equal(to_float(anon.videos), to_float(sparse.videos))
