# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""ShapesWorld: the constants of the world, scenes, seeded sampling and the renderer.

Everything here follows docs/toyworld.md literally, because renderers, parsers and analyzers written against that
spec must agree pixel for pixel. Two versions exist and neither changes: `shapesworld-v1` (the module-level
constants below) and `shapesworld-v2` (larger, slower objects in the same 64 x 64 frame, so that each object spans
several transformer patches; `WORLDS`). Colours, shapes, motions, regions, text forms and held-out pairs are shared.
A scene records its version, and every size in pixels is looked up from it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterator
from typing import Any

import numpy as np


SHAPESWORLD_VERSION = "shapesworld-v1"

#: Palette, in RGB. The background is black and is not part of the palette.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 200, 0),
    "blue": (0, 80, 255),
    "yellow": (255, 220, 0),
    "magenta": (230, 0, 230),
    "cyan": (0, 220, 220),
}
BACKGROUND: tuple[int, int, int] = (0, 0, 0)
SHAPES: tuple[str, ...] = ("square", "circle", "triangle")
#: Side of the object's box in pixels.
SIZES: dict[str, int] = {"small": 10, "large": 18}
MOTIONS: tuple[str, ...] = ("left", "right", "up", "down", "still")
#: Unit displacement per frame in image coordinates (x to the right, y downwards).
MOTION_VECTORS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
    "still": (0, 0),
}
#: Pixels travelled per frame by a moving object.
SPEED = 3
#: Colour-shape pairs that never appear in training splits (compositional generalisation is measured on them).
HELD_OUT_PAIRS: frozenset[tuple[str, str]] = frozenset({("red", "triangle"), ("green", "circle"), ("blue", "square")})
#: Region names of the 3 x 3 grid, indexed [row][column].
REGION_GRID: tuple[tuple[str, ...], ...] = (
    ("top left", "top", "top right"),
    ("left", "center", "right"),
    ("bottom left", "bottom", "bottom right"),
)
REGIONS: tuple[str, ...] = tuple(name for row in REGION_GRID for name in row)

FRAME_HEIGHT = 64
FRAME_WIDTH = 64
DEFAULT_NUM_FRAMES = 9
DEFAULT_FPS = 8


@dataclasses.dataclass(frozen=True)
class WorldSpec:
    """The pixel constants of one ShapesWorld version (what differs between versions)."""

    version: str
    #: Side of the object's box in pixels, per size word.
    sizes: dict[str, int]
    #: Pixels travelled per frame by a moving object.
    speed: int
    height: int = FRAME_HEIGHT
    width: int = FRAME_WIDTH
    num_frames: int = DEFAULT_NUM_FRAMES
    fps: int = DEFAULT_FPS

    def travel(self, num_frames: int) -> int:
        """Distance in pixels a moving object covers between the first and the last frame."""
        return self.speed * (num_frames - 1)

    def to_dict(self) -> dict[str, Any]:
        """Every constant of this version, with the ones all versions share (what a model folder records)."""
        return {
            **dataclasses.asdict(self),
            "colours": {name: list(rgb) for name, rgb in COLOURS.items()},
            "background": list(BACKGROUND),
            "shapes": list(SHAPES),
            "motions": list(MOTIONS),
            "held_out_pairs": sorted(list(pair) for pair in HELD_OUT_PAIRS),
            "min_object_gap": MIN_OBJECT_GAP,
        }


SHAPESWORLD_V1 = WorldSpec(version=SHAPESWORLD_VERSION, sizes=SIZES, speed=SPEED)
#: v2: objects 2x (small) and ~1.6x (large) v1's side and two thirds of its speed, in the same frame. With the
#: 4x VAE and (1, 2, 2) patches a transformer token covers 8 x 8 pixels, so a v2 object spans 2.5-3.5 tokens a side
#: where a small v1 object fitted inside one (the measurements that chose these numbers: docs/toyworld.md).
SHAPESWORLD_V2 = WorldSpec(version="shapesworld-v2", sizes={"small": 20, "large": 28}, speed=2)
WORLDS: dict[str, WorldSpec] = {spec.version: spec for spec in (SHAPESWORLD_V1, SHAPESWORLD_V2)}


#: The file a ShapesWorld model folder records its world in (`WorldSpec.to_dict()` under "world").
WORLD_FILENAME = "shapesworld.json"


def world_of_folder(folder: str) -> WorldSpec:
    """The world a ShapesWorld model folder was trained on: its `shapesworld.json`, or v1 for folders that predate
    the file (the v1 checkpoint)."""
    from pathlib import Path

    path = Path(folder) / WORLD_FILENAME
    if not path.is_file():
        return SHAPESWORLD_V1
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        version = record["world"]["version"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} does not record a world (expected JSON with world.version): {error}") from None
    return get_world(version)


def get_world(version: str | WorldSpec | None = None) -> WorldSpec:
    """The `WorldSpec` of `version` (a name from `WORLDS`, a spec, or `None` for v1)."""
    if version is None:
        return SHAPESWORLD_V1
    if isinstance(version, WorldSpec):
        return version
    if version not in WORLDS:
        raise ValueError(f"Unknown ShapesWorld version {version!r}; expected one of {tuple(WORLDS)}.")
    return WORLDS[version]

#: Splits understood by the samplers. "val" draws from the training distribution with its own random stream.
SPLITS: tuple[str, ...] = ("train", "val", "test")
_SPLIT_STREAM_IDS = {"train": 0, "val": 1, "test": 2}
#: Gap in pixels kept between the boxes of two objects in every frame, so that no object is ever occluded and every
#: attribute stays measurable from pixels (the sampler's choice; the renderer still draws overlaps in order).
MIN_OBJECT_GAP = 2


def region_of(x: float, y: float, height: int = FRAME_HEIGHT, width: int = FRAME_WIDTH) -> str:
    """Name of the 3 x 3 grid cell that contains the point `(x, y)` (pixel-continuous coordinates)."""
    column = min(max(int(3.0 * x / width), 0), 2)
    row = min(max(int(3.0 * y / height), 0), 2)
    return REGION_GRID[row][column]


@functools.lru_cache(maxsize=None)
def shape_mask(shape: str, side: int) -> np.ndarray:
    """Boolean `(side, side)` mask of a filled shape inside its box, sampled at pixel centres (hard edges).

    - square: every pixel of the box;
    - circle: pixels whose centre lies within `side / 2` of the box centre;
    - triangle: isosceles, apex at the top centre, base along the bottom edge of the box: a pixel is inside when its
      centre's horizontal distance to the axis is at most half the base width scaled by its depth, `v / 2`.
    """
    centres = np.arange(side, dtype=np.float64) + 0.5
    v, u = np.meshgrid(centres, centres, indexing="ij")  # v: rows (y), u: columns (x)
    half = side / 2.0
    if shape == "square":
        mask = np.ones((side, side), dtype=bool)
    elif shape == "circle":
        mask = (u - half) ** 2 + (v - half) ** 2 <= half**2
    elif shape == "triangle":
        mask = np.abs(u - half) <= v / 2.0
    else:
        raise ValueError(f"Unknown shape {shape!r}; expected one of {SHAPES}.")
    mask.setflags(write=False)
    return mask


@dataclasses.dataclass(frozen=True)
class ShapeObject:
    """One object of a scene.

    Args:
        colour: a key of `COLOURS`.
        shape: one of `SHAPES`.
        size: a key of `SIZES`.
        motion: one of `MOTIONS`.
        x, y: top-left corner of the object's box in the first frame, in pixels.
    """

    colour: str
    shape: str
    size: str
    motion: str
    x: int
    y: int
    #: The world version whose pixel sizes and speed this object has (not part of `to_dict`: the scene records it).
    world: str = SHAPESWORLD_VERSION

    def __post_init__(self):
        get_world(self.world)
        if self.colour not in COLOURS:
            raise ValueError(f"Unknown colour {self.colour!r}; expected one of {tuple(COLOURS)}.")
        if self.shape not in SHAPES:
            raise ValueError(f"Unknown shape {self.shape!r}; expected one of {SHAPES}.")
        if self.size not in SIZES:
            raise ValueError(f"Unknown size {self.size!r}; expected one of {tuple(SIZES)}.")
        if self.motion not in MOTIONS:
            raise ValueError(f"Unknown motion {self.motion!r}; expected one of {MOTIONS}.")

    @property
    def side(self) -> int:
        return WORLDS[self.world].sizes[self.size]

    @property
    def is_held_out(self) -> bool:
        return (self.colour, self.shape) in HELD_OUT_PAIRS

    def position(self, frame: int) -> tuple[int, int]:
        """Top-left corner of the box at `frame`."""
        dx, dy = MOTION_VECTORS[self.motion]
        speed = WORLDS[self.world].speed
        return self.x + speed * dx * frame, self.y + speed * dy * frame

    def centre(self, frame: int) -> tuple[float, float]:
        """Centre of the box at `frame`: the point regions are computed from."""
        x, y = self.position(frame)
        return x + self.side / 2.0, y + self.side / 2.0

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["world"]
        return data


@dataclasses.dataclass(frozen=True)
class Scene:
    """A ShapesWorld scene: one or two objects, drawn in order (the second on top), over a black background."""

    objects: tuple[ShapeObject, ...]
    num_frames: int = DEFAULT_NUM_FRAMES
    height: int = FRAME_HEIGHT
    width: int = FRAME_WIDTH
    version: str = SHAPESWORLD_VERSION

    def __post_init__(self):
        get_world(self.version)
        # The scene's version decides its objects' pixel sizes and speed.
        objects = tuple(
            obj if obj.world == self.version else dataclasses.replace(obj, world=self.version) for obj in self.objects
        )
        object.__setattr__(self, "objects", objects)
        colours = [obj.colour for obj in self.objects]
        if len(set(colours)) != len(colours):
            raise ValueError(f"Two objects of a scene never share a colour, got {colours}.")
        if self.num_frames < 1:
            raise ValueError(f"`num_frames` must be positive, got {self.num_frames}.")

    @property
    def has_held_out(self) -> bool:
        return any(obj.is_held_out for obj in self.objects)

    def start_region(self, obj: ShapeObject) -> str:
        return region_of(*obj.centre(0), height=self.height, width=self.width)

    def end_region(self, obj: ShapeObject) -> str:
        return region_of(*obj.centre(self.num_frames - 1), height=self.height, width=self.width)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "num_frames": self.num_frames,
            "height": self.height,
            "width": self.width,
            "objects": [obj.to_dict() for obj in self.objects],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        version = data.get("version", SHAPESWORLD_VERSION)
        if version not in WORLDS:
            raise ValueError(f"Scene is {version!r}; this code implements {tuple(WORLDS)}.")
        spec = WORLDS[version]
        return cls(
            objects=tuple(ShapeObject(**obj, world=version) for obj in data["objects"]),
            num_frames=int(data.get("num_frames", spec.num_frames)),
            height=int(data.get("height", spec.height)),
            width=int(data.get("width", spec.width)),
            version=version,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Scene:
        return cls.from_dict(json.loads(text))


def render_scene(scene: Scene) -> np.ndarray:
    """Render `scene` to a `(num_frames, height, width, 3)` uint8 RGB array.

    Objects are pasted in order, so the second one covers the first where they overlap; parts of a hand-built scene
    that fall outside the frame are clipped (sampled scenes always stay inside).
    """
    frames = np.zeros((scene.num_frames, scene.height, scene.width, 3), dtype=np.uint8)
    frames[...] = BACKGROUND
    for obj in scene.objects:
        mask = shape_mask(obj.shape, obj.side)
        colour = np.asarray(COLOURS[obj.colour], dtype=np.uint8)
        for f in range(scene.num_frames):
            x, y = obj.position(f)
            # Clip the box to the frame.
            x0, y0 = max(x, 0), max(y, 0)
            x1, y1 = min(x + obj.side, scene.width), min(y + obj.side, scene.height)
            if x0 >= x1 or y0 >= y1:
                continue
            sub = mask[y0 - y : y1 - y, x0 - x : x1 - x]
            frames[f, y0:y1, x0:x1][sub] = colour
    return frames


def travel(num_frames: int, version: str | WorldSpec | None = None) -> int:
    """Distance in pixels a moving object covers between the first and the last frame."""
    return get_world(version).travel(num_frames)


def _position_range(
    motion: str, side: int, extent: int, num_frames: int, axis: int, spec: WorldSpec
) -> tuple[int, int]:
    """Inclusive range of the first-frame box coordinate along `axis` (0: x, 1: y) keeping the whole path inside."""
    step = MOTION_VECTORS[motion][axis]
    distance = spec.travel(num_frames)
    low, high = 0, extent - side
    if step > 0:
        high -= distance
    elif step < 0:
        low += distance
    return low, high


def _boxes_apart(a: ShapeObject, b: ShapeObject, num_frames: int, gap: int) -> bool:
    for f in range(num_frames):
        ax, ay = a.position(f)
        bx, by = b.position(f)
        separated_x = ax + a.side + gap <= bx or bx + b.side + gap <= ax
        separated_y = ay + a.side + gap <= by or by + b.side + gap <= ay
        if not (separated_x or separated_y):
            return False
    return True


def _split_pairs(split: str) -> list[tuple[str, str]]:
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
    pairs = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    if split in ("train", "val"):
        pairs = [pair for pair in pairs if pair not in HELD_OUT_PAIRS]
    return pairs


def sample_scene(
    rng: np.random.Generator,
    split: str = "train",
    num_objects: int | None = None,
    num_frames: int = DEFAULT_NUM_FRAMES,
    require_held_out: bool = False,
    allow_overlap: bool = False,
    height: int | None = None,
    width: int | None = None,
    version: str | WorldSpec | None = None,
) -> Scene:
    """Draw one scene from `rng`.

    Args:
        rng: the only source of randomness, so that a seeded generator gives the same scene every time.
        split: "train" and "val" exclude `HELD_OUT_PAIRS`; "test" draws from every colour-shape pair.
        num_objects: 1 or 2; drawn uniformly when `None`.
        num_frames: frames of the clip; a moving object's whole path stays inside the frame.
        require_held_out: force one object (in a random slot) to be a held-out pair (only for "test").
        allow_overlap: by default objects keep `MIN_OBJECT_GAP` pixels apart in every frame, so that the analyzer
            can recover every attribute from a clean render; set to `True` to let them overlap.
        height, width: the frame (default: the version's).
        version: the world version (`WORLDS`; default `shapesworld-v1`).
    """
    spec = get_world(version)
    height = spec.height if height is None else height
    width = spec.width if width is None else width
    sizes = spec.sizes
    pairs = _split_pairs(split)
    if require_held_out and split != "test":
        raise ValueError("Held-out colour-shape pairs only appear in the 'test' split.")
    if num_objects is None:
        num_objects = int(rng.integers(1, 3))
    if num_objects not in (1, 2):
        raise ValueError(f"A ShapesWorld scene has one or two objects, got {num_objects}.")
    if spec.travel(num_frames) + max(sizes.values()) > min(height, width):
        raise ValueError(
            f"A large object moving for {num_frames} frames ({spec.travel(num_frames)} px) does not fit in a "
            f"{height}x{width} frame."
        )
    held_out = sorted(HELD_OUT_PAIRS)
    held_out_slot = int(rng.integers(0, num_objects)) if require_held_out else -1

    for _ in range(1000):
        objects: list[ShapeObject] = []
        for slot in range(num_objects):
            candidates = held_out if slot == held_out_slot else pairs
            candidates = [pair for pair in candidates if pair[0] not in {obj.colour for obj in objects}]
            colour, shape = candidates[int(rng.integers(0, len(candidates)))]
            size = tuple(sizes)[int(rng.integers(0, len(sizes)))]
            motion = MOTIONS[int(rng.integers(0, len(MOTIONS)))]
            x_low, x_high = _position_range(motion, sizes[size], width, num_frames, axis=0, spec=spec)
            y_low, y_high = _position_range(motion, sizes[size], height, num_frames, axis=1, spec=spec)
            x = int(rng.integers(x_low, x_high + 1))
            y = int(rng.integers(y_low, y_high + 1))
            objects.append(
                ShapeObject(colour=colour, shape=shape, size=size, motion=motion, x=x, y=y, world=spec.version)
            )
        if allow_overlap or len(objects) < 2 or _boxes_apart(objects[0], objects[1], num_frames, MIN_OBJECT_GAP):
            return Scene(
                objects=tuple(objects), num_frames=num_frames, height=height, width=width, version=spec.version
            )
    raise RuntimeError("Could not place two non-overlapping objects; is the frame too small?")


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Generator for sample `index` of `split`: independent streams, so a dataset of N is a prefix of one of N + k."""
    if split not in _SPLIT_STREAM_IDS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
    return np.random.default_rng([int(seed), _SPLIT_STREAM_IDS[split], int(index)])


def sample_scenes(
    num_samples: int,
    split: str = "train",
    seed: int = 0,
    num_frames: int = DEFAULT_NUM_FRAMES,
    version: str | WorldSpec | None = None,
) -> list[Scene]:
    """The `num_samples` scenes of a seeded split.

    In the "test" split every other scene (even indices) contains a held-out colour-shape pair, so that even a small
    test set measures compositional generalisation; odd indices draw from all pairs.
    """
    return list(iter_scenes(num_samples, split=split, seed=seed, num_frames=num_frames, version=version))


def iter_scenes(
    num_samples: int,
    split: str = "train",
    seed: int = 0,
    num_frames: int = DEFAULT_NUM_FRAMES,
    version: str | WorldSpec | None = None,
) -> Iterator[Scene]:
    for index in range(num_samples):
        rng = scene_rng(seed, split, index)
        require_held_out = split == "test" and index % 2 == 0
        yield sample_scene(
            rng, split=split, num_frames=num_frames, require_held_out=require_held_out, version=version
        )

