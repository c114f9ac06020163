"""Procedural renderer: a human-like figure (head, torso, arms, legs) drawn from anti-aliased capsules.

Coordinates are in pixels, x to the right and y down. Limb directions are angles from straight down, positive
towards the image's right: direction ``(sin a, cos a)``. Poses are functions of the motion phase, so an action is
*only* its motion; the five private attributes only change colours and shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stprivacy.data.synthetic.config import ACTIONS, ATTRIBUTES, SynthConfig

SKIN_TONES = (np.array([0.95, 0.80, 0.68]), np.array([0.40, 0.26, 0.17]))  # skin_color 0 = light, 1 = dark

# Body proportions as fractions of the figure height.
NECK_Y, HEAD_Y, HEAD_R = -0.40, -0.52, 0.11
UPPER_ARM, FOREARM, THIGH, SHIN = 0.17, 0.16, 0.23, 0.22

# Action-dependent attribute priors used when ``attribute_correlation`` > 0 (rows follow ACTIONS).
_CORRELATED_PRIOR = np.array([
    # skin, face, gender, nudity, relationship
    [0.5, 0.8, 0.5, 0.3, 0.2],  # wave: usually facing the camera
    [0.5, 0.7, 0.5, 0.3, 0.6],  # clap: often with an audience
    [0.5, 0.4, 0.5, 0.8, 0.3],  # jump: sports wear
    [0.5, 0.5, 0.5, 0.7, 0.2],  # squat
    [0.5, 0.3, 0.5, 0.3, 0.4],  # walk_left
    [0.5, 0.3, 0.5, 0.3, 0.4],  # walk_right
    [0.5, 0.5, 0.3, 0.5, 0.9],  # punch: a second person
    [0.5, 0.5, 0.3, 0.6, 0.9],  # kick: a second person
])


@dataclass
class RenderedClip:
    #: T x H x W x 3 uint8 frames.
    frames: np.ndarray
    #: Action index into :data:`ACTIONS`.
    action: int
    #: Five {0, 1} attributes in the order of :data:`ATTRIBUTES`.
    attributes: np.ndarray
    #: T x H x W uint8 person mask (255 = a person covers the pixel), for the blackening baseline: the union of
    #: the actor and the bystander.
    person_mask: np.ndarray
    #: T x H x W uint8 mask of the actor alone (the figure whose motion is the action). The sparsifier should keep
    #: it and may drop the bystander, whose only information is private (relationship).
    actor_mask: np.ndarray


def sample_labels(rng: np.random.Generator, cfg: SynthConfig) -> tuple[int, np.ndarray]:
    action = int(rng.integers(len(ACTIONS)))
    p = (1 - cfg.attribute_correlation) * 0.5 + cfg.attribute_correlation * _CORRELATED_PRIOR[action]
    return action, (rng.random(len(ATTRIBUTES)) < p).astype(np.int64)


def _streams(seed: int | tuple[int, ...]) -> list[np.random.Generator]:
    """The clip's independent random streams: labels, scene, bystander, look, motion."""
    ss = np.random.SeedSequence(list(seed) if isinstance(seed, tuple) else seed)
    return [np.random.default_rng(s) for s in ss.spawn(5)]


def clip_labels(seed: int | tuple[int, ...], cfg: SynthConfig) -> tuple[int, np.ndarray]:
    """The action and attributes :func:`render_clip` draws for ``seed``, without rendering."""
    return sample_labels(_streams(seed)[0], cfg)


def render_clip(seed: int | tuple[int, ...], cfg: SynthConfig, action: int | None = None,
                attributes: np.ndarray | None = None) -> RenderedClip:
    """Render one clip, fully determined by ``seed`` and ``cfg``.

    Labels, scene, bystander, look and motion draw from separate random streams, so overriding ``action`` or
    ``attributes`` (for tests and illustrations) changes only what they define.
    """
    r_labels, r_scene, r_other, r_look, r_motion = _streams(seed)
    sampled_action, sampled_attrs = sample_labels(r_labels, cfg)
    action = sampled_action if action is None else int(action)
    attrs = sampled_attrs if attributes is None else np.asarray(attributes, dtype=np.int64)
    canvas = _Canvas(cfg.num_frames, cfg.size, r_scene, cfg)
    skin_attr, face, gender, nudity, relation = (int(v) for v in attrs)
    if relation:
        side = r_other.choice([-1.0, 1.0])
        other = _Appearance.random(r_other, skin=int(r_other.integers(2)), face=int(r_other.integers(2)),
                                   gender=int(r_other.integers(2)), nudity=int(r_other.integers(2)))
        height = cfg.figure_height * cfg.size * r_other.uniform(0.5, 0.6)
        centre = np.array([cfg.size * (0.5 + side * r_other.uniform(0.33, 0.40)),
                           cfg.size * r_other.uniform(0.52, 0.6)])
        _draw_figure(canvas, _idle_pose(cfg.num_frames, height, centre, r_other), other, height, cfg)
    look = _Appearance.random(r_look, skin=skin_attr, face=face, gender=gender, nudity=nudity)
    height = cfg.figure_height * cfg.size * r_motion.uniform(1 - cfg.scale_jitter, 1 + cfg.scale_jitter)
    jitter = r_motion.uniform(-cfg.position_jitter, cfg.position_jitter, size=2) * cfg.size
    centre = np.array([cfg.size / 2, cfg.size / 2 + 0.04 * height]) + jitter
    pose = _action_pose(action, cfg, height, centre, r_motion)
    canvas.start_actor()
    _draw_figure(canvas, pose, look, height, cfg)
    frames = canvas.finish(r_scene)
    return RenderedClip(frames, action, attrs, _to_mask(canvas.person), _to_mask(canvas.actor))


def _to_mask(alpha: np.ndarray) -> np.ndarray:
    return (alpha * 255).round().astype(np.uint8)


# ----------------------------------------------------------------------------------------------- appearance
@dataclass
class _Appearance:
    skin: np.ndarray
    shirt: np.ndarray
    pants: np.ndarray
    hair: np.ndarray
    face: int
    gender: int
    nudity: int

    @classmethod
    def random(cls, rng: np.random.Generator, skin: int, face: int, gender: int, nudity: int) -> _Appearance:
        return cls(
            skin=np.clip(SKIN_TONES[skin] + rng.normal(0, 0.025, 3), 0, 1),
            shirt=_dark_colour(rng),
            pants=_dark_colour(rng),
            hair=np.full(3, rng.uniform(0.05, 0.18)) * np.array([1.0, 0.85, 0.7]),
            face=face, gender=gender, nudity=nudity,
        )


def _dark_colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated, darkish clothing colour, never close to a skin tone."""
    # Hues from yellow-green round to purple: no orange or brown garment that could pass for (dark) skin, so
    # bare limbs (nudity) stay an appearance cue.
    hue, sat, val = rng.uniform(0.17, 0.95), rng.uniform(0.5, 0.9), rng.uniform(0.25, 0.5)
    rgb = np.array([abs(((hue * 6 + k) % 6) - 3) - 1 for k in (0, 4, 2)]).clip(0, 1)
    return val * (1 - sat + sat * rgb)


# ----------------------------------------------------------------------------------------------- poses
@dataclass
class _Pose:
    """Per-frame joint positions (T x 2 each) and limb angles (T each)."""

    hip: np.ndarray
    arm_upper: tuple[np.ndarray, np.ndarray]  # left, right
    arm_lower: tuple[np.ndarray, np.ndarray]
    leg_upper: tuple[np.ndarray, np.ndarray]
    leg_lower: tuple[np.ndarray, np.ndarray]


def _action_pose(action: int, cfg: SynthConfig, height: float, centre: np.ndarray, rng) -> _Pose:
    t = np.arange(cfg.num_frames, dtype=np.float64)
    period = rng.uniform(*cfg.period)
    theta = 2 * math.pi * (t / period + rng.uniform())
    s, c = np.sin(theta), 0.5 + 0.5 * np.sin(theta)  # signed wave, and a 0..1 wave
    one = np.ones_like(t)
    arm_l, arm_r, fore_l, fore_r = -0.22 * one, 0.22 * one, -0.12 * one, 0.12 * one
    leg_l, leg_r, shin_l, shin_r = -0.12 * one, 0.12 * one, -0.08 * one, 0.08 * one
    dx, dy = 0 * t, 0 * t
    name = ACTIONS[action]
    if name == "wave":
        arm_r, fore_r = 2.3 * one, 2.75 + 0.55 * s
    elif name == "clap":
        arm_l, arm_r = -0.75 * one, 0.75 * one
        fore_l, fore_r = 0.35 + 1.1 * c, -0.35 - 1.1 * c
    elif name == "jump":
        dy = -0.16 * height * np.clip(s, 0, None)
        arm_l, arm_r = -0.6 - 1.6 * c, 0.6 + 1.6 * c
        fore_l, fore_r = arm_l - 0.2, arm_r + 0.2
    elif name == "squat":
        dy = 0.17 * height * c
        leg_l, leg_r = -0.25 - 1.0 * c, 0.25 + 1.0 * c
        shin_l, shin_r = -0.1 + 0.2 * c, 0.1 - 0.2 * c
        arm_l, arm_r = -0.3 - 1.2 * c, 0.3 + 1.2 * c
        fore_l, fore_r = arm_l, arm_r
    elif name in ("walk_left", "walk_right"):
        direction = -1.0 if name == "walk_left" else 1.0
        speed = 0.45 * height / cfg.num_frames
        dx = direction * speed * (t - (cfg.num_frames - 1) / 2)
        leg_l, leg_r = -0.45 * s, 0.45 * s
        shin_l, shin_r = leg_l - 0.15, leg_r - 0.15
        arm_l, arm_r = 0.4 * s - 0.15, -0.4 * s + 0.15
        fore_l, fore_r = arm_l, arm_r
    elif name == "punch":
        c_r, c_l = c, 0.5 - 0.5 * s
        arm_r, arm_l = 0.35 + 1.25 * c_r, -0.35 - 1.25 * c_l
        fore_r, fore_l = arm_r + 0.9 * (1 - c_r), arm_l - 0.9 * (1 - c_l)
    elif name == "kick":
        leg_r = 0.12 + 1.35 * c
        shin_r = leg_r - 0.35 * (1 - c)
        arm_l, arm_r = -0.9 * one, 0.9 * one
        fore_l, fore_r = arm_l, arm_r
    hip = np.stack([centre[0] + dx, centre[1] + dy], axis=1)
    return _Pose(hip, (arm_l, arm_r), (fore_l, fore_r), (leg_l, leg_r), (shin_l, shin_r))


def _idle_pose(frames: int, height: float, centre: np.ndarray, rng) -> _Pose:
    """A bystander standing and swaying slightly."""
    t = np.arange(frames, dtype=np.float64)
    sway = 0.08 * np.sin(2 * math.pi * (t / rng.uniform(10, 16) + rng.uniform()))
    one = np.ones_like(t)
    hip = np.stack([centre[0] + 0 * t, centre[1] + 0 * t], axis=1)
    return _Pose(hip, (-0.2 + sway, 0.2 + sway), (-0.1 + sway, 0.1 + sway), (-0.1 * one, 0.1 * one),
                 (-0.08 * one, 0.08 * one))


def _direction(angle: np.ndarray) -> np.ndarray:
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)


# ----------------------------------------------------------------------------------------------- drawing
class _Canvas:
    """T frames of float RGB with a textured background, and the union mask of every person drawn."""

    def __init__(self, frames: int, size: int, rng: np.random.Generator, cfg: SynthConfig):
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
        self.grid = np.stack([xx, yy], axis=-1)  # H x W x 2
        base = rng.uniform(0.72, 0.9) + rng.normal(0, 0.03, 3)
        coarse = rng.normal(0, 1, (5, 5, 3))
        texture = _upsample(coarse, size) * cfg.texture
        bg = np.clip(base + texture, 0, 1)
        for _ in range(cfg.clutter):
            centre = rng.uniform(0, size, 2)
            d = np.linalg.norm(self.grid - centre, axis=-1)
            alpha = np.clip(rng.uniform(2, 6) - d + 0.5, 0, 1)[..., None]
            bg = bg * (1 - alpha) + rng.uniform(0.2, 0.9, 3) * alpha
        self.rgb = np.repeat(bg[None], frames, axis=0)
        self.person = np.zeros((frames, size, size))
        self.actor = np.zeros((frames, size, size))
        self._drawing_actor = False
        self.noise = cfg.noise

    def start_actor(self) -> None:
        """Everything painted from now on belongs to the actor (painted last, so nothing covers it)."""
        self._drawing_actor = True

    def capsule(self, a: np.ndarray, b: np.ndarray, radius: float, colour: np.ndarray, person: bool = True):
        """Paint segments a[t] -> b[t] (T x 2) of the given radius, anti-aliased, on every frame.

        Only the bounding box of the segment over all frames is computed: limbs are small, so this is most of the
        renderer's speed.
        """
        size = self.grid.shape[0]
        pad = radius + 1.5
        lo = np.floor(np.minimum(a.min(0), b.min(0)) - pad).astype(int).clip(0, size)
        hi = np.ceil(np.maximum(a.max(0), b.max(0)) + pad).astype(int).clip(0, size)
        if hi[0] <= lo[0] or hi[1] <= lo[1]:
            return
        ys, xs = slice(lo[1], hi[1]), slice(lo[0], hi[0])
        p = self.grid[None, ys, xs] - a[:, None, None, :]  # T x h x w x 2
        ab = (b - a)[:, None, None, :]
        denom = (ab * ab).sum(-1) + 1e-9
        h = np.clip((p * ab).sum(-1) / denom, 0, 1)
        dist = np.sqrt(((p - h[..., None] * ab) ** 2).sum(-1))
        alpha = np.clip(radius - dist + 0.5, 0, 1)
        region = self.rgb[:, ys, xs]
        self.rgb[:, ys, xs] = region + (colour - region) * alpha[..., None]
        if person:
            np.maximum(self.person[:, ys, xs], alpha, out=self.person[:, ys, xs])
            if self._drawing_actor:
                np.maximum(self.actor[:, ys, xs], alpha, out=self.actor[:, ys, xs])

    def disc(self, centre: np.ndarray, radius: float, colour: np.ndarray, person: bool = True):
        self.capsule(centre, centre, radius, colour, person)

    def polygon_band(self, top: np.ndarray, half_top: float, bottom: np.ndarray, half_bottom: float, colour):
        """A trapezoid (skirt) from ``top`` (T x 2) to ``bottom``, approximated by stacked capsules."""
        for f in np.linspace(0, 1, 6):
            centre = top + f * (bottom - top)
            half = half_top + f * (half_bottom - half_top)
            off = np.array([half, 0.0])
            self.capsule(centre - off, centre + off, 1.2, colour)

    def finish(self, rng: np.random.Generator) -> np.ndarray:
        rgb = self.rgb + rng.normal(0, self.noise, self.rgb.shape)
        return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def _upsample(coarse: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of a small k x k x 3 grid to size x size x 3 (a smooth texture)."""
    k = coarse.shape[0]
    pos = np.linspace(0, k - 1, size)
    i0 = np.floor(pos).astype(int).clip(0, k - 2)
    f = pos - i0
    rows = coarse[i0] * (1 - f)[:, None, None] + coarse[i0 + 1] * f[:, None, None]
    return rows[:, i0] * (1 - f)[None, :, None] + rows[:, i0 + 1] * f[None, :, None]


def _draw_figure(canvas: _Canvas, pose: _Pose, look: _Appearance, height: float, cfg: SynthConfig) -> None:
    w = cfg.limb_width * height
    hip = pose.hip
    neck = hip + np.array([0.0, NECK_Y * height])
    head = hip + np.array([0.0, HEAD_Y * height])
    head_r = HEAD_R * height
    limb = look.skin if look.nudity else look.shirt
    leg_colour = look.skin if look.nudity else look.pants
    # long hair behind the head (gender 1)
    if look.gender:
        canvas.capsule(head, head + np.array([0.0, 0.2 * height]), head_r * 1.15, look.hair)
    # legs
    for side in (0, 1):
        off = np.array([(-1 if side == 0 else 1) * 0.05 * height, 0.0])
        knee = hip + off + THIGH * height * _direction(pose.leg_upper[side])
        foot = knee + SHIN * height * _direction(pose.leg_lower[side])
        canvas.capsule(hip + off, knee, w / 2, leg_colour)
        canvas.capsule(knee, foot, w / 2, leg_colour)
        canvas.disc(foot, w * 0.55, look.pants * 0.5)
        if look.nudity:  # shorts
            canvas.capsule(hip + off, hip + off + 0.3 * (knee - hip - off), w / 2 + 0.3, look.pants)
    # torso: broad and straight (gender 0) or narrow with a skirt (gender 1)
    shoulder_half = (0.09 if look.gender else 0.13) * height
    torso_r = (0.075 if look.gender else 0.095) * height
    canvas.capsule(neck + np.array([0.0, 0.04 * height]), hip, torso_r, look.shirt)
    canvas.capsule(neck - np.array([shoulder_half, 0]), neck + np.array([shoulder_half, 0]), w / 2, look.shirt)
    if look.gender:
        canvas.polygon_band(hip - np.array([0, 0.02 * height]), 0.08 * height, hip + np.array([0, 0.2 * height]),
                            0.17 * height, look.shirt)
    # arms, with hands always in skin colour
    for side in (0, 1):
        shoulder = neck + np.array([(-1 if side == 0 else 1) * shoulder_half, 0.0])
        elbow = shoulder + UPPER_ARM * height * _direction(pose.arm_upper[side])
        hand = elbow + FOREARM * height * _direction(pose.arm_lower[side])
        canvas.capsule(shoulder, elbow, w / 2, limb)
        canvas.capsule(elbow, hand, w / 2 * 0.9, limb)
        if look.nudity:  # short sleeves
            canvas.capsule(shoulder, shoulder + 0.35 * (elbow - shoulder), w / 2 + 0.3, look.shirt)
        canvas.disc(hand, w * 0.6, look.skin)
    # head: the face (skin, eyes, mouth) or the back of the head (hair)
    canvas.capsule(neck - np.array([0, 0.02 * height]), neck + np.array([0, 0.03 * height]), w * 0.4, look.skin)
    if look.face:
        canvas.disc(head, head_r, look.skin)
        canvas.capsule(head - np.array([head_r, head_r * 0.5]), head + np.array([head_r, -head_r * 0.5]),
                       head_r * 0.45, look.hair)  # fringe
        eye = 0.42 * head_r
        dark = np.array([0.05, 0.05, 0.08])
        canvas.disc(head + np.array([-eye, 0.05 * head_r]), max(0.22 * head_r, 0.6), dark)
        canvas.disc(head + np.array([eye, 0.05 * head_r]), max(0.22 * head_r, 0.6), dark)
        mouth = np.array([0.35 * head_r, 0.55 * head_r])
        canvas.capsule(head + mouth * [-1, 1], head + mouth, max(0.12 * head_r, 0.45), np.array([0.55, 0.12, 0.12]))
    else:
        canvas.disc(head, head_r, look.hair)
