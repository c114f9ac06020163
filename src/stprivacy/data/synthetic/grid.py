"""A picture of the synthetic benchmark: a few clips, frame by frame, with their labels."""

from __future__ import annotations

from pathlib import Path

from stprivacy.data.synthetic.config import ACTIONS, ATTRIBUTES, SynthConfig
from stprivacy.data.synthetic.render import render_clip


def save_sample_grid(path: str | Path, cfg: SynthConfig, clips: int = 8, seed: int = 0) -> Path:
    """One row per clip (every frame), titled with its action and positive attributes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = min(cfg.num_frames, 8)
    fig, axes = plt.subplots(clips, frames, figsize=(1.3 * frames, 1.45 * clips), squeeze=False)
    for r in range(clips):
        clip = render_clip((seed, 99, r), cfg, action=r % len(ACTIONS))
        step = cfg.num_frames // frames
        for f in range(frames):
            ax = axes[r, f]
            ax.imshow(clip.frames[f * step])
            ax.set_xticks([])
            ax.set_yticks([])
        positives = [a for a, v in zip(ATTRIBUTES, clip.attributes, strict=True) if v] or ["none"]
        axes[r, 0].set_title(f"{ACTIONS[clip.action]}  |  {', '.join(positives)}", fontsize=8, loc="left")
    fig.tight_layout(pad=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=64)
    plt.close(fig)
    return path


