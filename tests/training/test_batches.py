import torch

from stprivacy.data.clips import ClipSet
from stprivacy.training.batches import all_views, iterate_batches


def _clips(n=6, views=3):
    videos = torch.arange(n * views * 3 * 2 * 4 * 4, dtype=torch.int64).remainder(256).to(torch.uint8)
    videos = videos.reshape(n, views, 3, 2, 4, 4)
    masks = torch.zeros(n, views, 1, 4, dtype=torch.uint8)
    masks[..., 0] = 1  # the top-left token of a 2 x 2 grid
    return ClipSet(videos, torch.arange(n), torch.zeros(n, 5, dtype=torch.long), keep_masks=masks)


def test_training_batches_pick_one_view_and_cover_every_clip():
    clips = _clips()
    seen = []
    for batch in iterate_batches(clips, 4, shuffle=True, generator=torch.Generator().manual_seed(0)):
        assert batch["video"].shape[1:] == (3, 2, 4, 4) and batch["video"].dtype == torch.float32
        assert batch["video"].max() <= 1.0
        seen += batch["action"].tolist()
    assert sorted(seen) == list(range(6))


def test_hflip_mirrors_video_and_keep_mask_together():
    clips = _clips(n=64, views=1)
    flipped = 0
    for batch in iterate_batches(clips, 64, shuffle=False, generator=torch.Generator().manual_seed(1), hflip=True):
        original = clips.videos[:, 0].float() / 255
        is_flipped = ~(batch["video"] == original).flatten(1).all(1)
        assert torch.equal(batch["video"][is_flipped], original[is_flipped].flip(-1))
        # top-left token moved to top-right exactly where the video was mirrored
        assert (batch["keep_mask"][is_flipped][..., 1] == 1).all()
        assert (batch["keep_mask"][~is_flipped][..., 0] == 1).all()
        flipped = int(is_flipped.sum())
    assert 16 < flipped < 48


def test_all_views_flattens_views_in_order():
    clips = _clips(n=5, views=3)
    idx, batch = next(all_views(clips, 6))
    assert idx.tolist() == [0, 1] and batch["video"].shape[0] == 6
    torch.testing.assert_close(batch["video"][4], clips.videos[1, 1].float() / 255)


def test_twins_travel_with_their_clips_and_are_mirrored_with_them():
    clips = _clips(n=32, views=1)
    clips.twins = 255 - clips.videos[:, 0]  # a twin each clip can be told from, and matched to
    for as_uint8 in (False, True):
        for batch in iterate_batches(clips, 8, shuffle=True, generator=torch.Generator().manual_seed(2), hflip=True,
                                     as_uint8=as_uint8):
            video, twin = batch["video"].float(), batch["twin"].float()
            top = 255.0 if as_uint8 else 1.0
            assert torch.allclose(twin, top - video)  # the batch's own twins, flipped where the clip is
