# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""ShapesWorld v1 text: prompt and detailed-caption writers, the vocabulary, and a parser of either form.

The parser is deliberately forgiving: it reads text produced by a model, which may be truncated, repeat words or
mix the two forms. It anchors on the closed vocabulary of the world (colours, shapes, sizes, directions, regions)
rather than on an exact grammar, so a scorer can give partial credit instead of failing on the first odd token.
"""

from __future__ import annotations

import dataclasses
import re

from .world import COLOURS, MOTIONS, REGIONS, SHAPES, SIZES, Scene, ShapeObject


@dataclasses.dataclass(frozen=True)
class ParsedObject:
    """What a text says about one object. Fields the text does not state are `None`."""

    colour: str | None = None
    shape: str | None = None
    motion: str | None = None
    size: str | None = None
    start_region: str | None = None
    end_region: str | None = None

    @classmethod
    def from_scene_object(cls, scene: Scene, obj: ShapeObject) -> ParsedObject:
        """The full truth about `obj`, in the same form the parser returns."""
        return cls(
            colour=obj.colour,
            shape=obj.shape,
            motion=obj.motion,
            size=obj.size,
            start_region=scene.start_region(obj),
            end_region=scene.end_region(obj),
        )


def object_to_prompt_clause(obj: ShapeObject) -> str:
    if obj.motion == "still":
        return f"a {obj.colour} {obj.shape} staying still"
    return f"a {obj.colour} {obj.shape} moving {obj.motion}"


def scene_to_prompt(scene: Scene) -> str:
    """The prompt a user would type (Knowledge Recall target): one clause per object joined by ` and `."""
    return " and ".join(object_to_prompt_clause(obj) for obj in scene.objects)


def object_to_caption_sentence(scene: Scene, obj: ShapeObject) -> str:
    if obj.motion == "still":
        return f"A {obj.size} {obj.colour} {obj.shape} stays still in the {scene.start_region(obj)}."
    return (
        f"A {obj.size} {obj.colour} {obj.shape} moves {obj.motion} "
        f"from the {scene.start_region(obj)} to the {scene.end_region(obj)}."
    )


def scene_to_caption(scene: Scene) -> str:
    """The detailed caption (Capability Refinement target): one sentence per object, then the background."""
    sentences = [object_to_caption_sentence(scene, obj) for obj in scene.objects]
    sentences.append("The background is black.")
    return " ".join(sentences)


def _alternatives(words) -> str:
    return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"


_DIRECTION = _alternatives(m for m in MOTIONS if m != "still")
_REGION = _alternatives(REGIONS)
_OBJECT = f"{_alternatives(SIZES)} {_alternatives(COLOURS)} {_alternatives(SHAPES)}"
_CAPTION_SENTENCE = (f"A {_OBJECT} (?:stays still in the {_REGION}|moves {_DIRECTION} from the {_REGION} "
                     f"to the {_REGION})\\.")
_CAPTION_GRAMMAR = re.compile(f"(?:{_CAPTION_SENTENCE} )+The background is black\\.")
_PROMPT_CLAUSE = f"a {_alternatives(COLOURS)} {_alternatives(SHAPES)} (?:staying still|moving {_DIRECTION})"
_PROMPT_GRAMMAR = re.compile(f"{_PROMPT_CLAUSE}(?: and {_PROMPT_CLAUSE})*")


def follows_template(text: str, form: str = "caption") -> bool:
    """Whether `text` is a sentence of the template's grammar (`form`: "caption" or "prompt"), word for word: a
    stuttered or truncated caption ("A A large red the circle ...") can still parse to the right objects, so the
    object scores alone do not show it. Whitespace runs count as one space."""
    grammar = {"caption": _CAPTION_GRAMMAR, "prompt": _PROMPT_GRAMMAR}.get(form)
    if grammar is None:
        raise ValueError(f"form must be 'caption' or 'prompt', got {form!r}.")
    return grammar.fullmatch(" ".join(text.split())) is not None


# Words of the templates, besides the closed attribute vocabularies.
_TEMPLATE_WORDS = ("a", "A", "The", "and", "moving", "staying", "still", "moves", "stays", "from", "the", "to", "in")
_TEMPLATE_WORDS += ("background", "is", "black", ".")


def shapesworld_vocabulary() -> list[str]:
    """Every token that prompts and captions can contain (words and '.'), sorted so that token ids are stable."""
    words = set(_TEMPLATE_WORDS)
    words.update(COLOURS)
    words.update(SHAPES)
    words.update(SIZES)
    words.update(MOTIONS)
    for region in REGIONS:
        words.update(region.split())
    return sorted(words)


_TOKEN_PATTERN = re.compile(r"[A-Za-z]+|\.")
_DIRECTIONS = tuple(motion for motion in MOTIONS if motion != "still")
_REGION_WORDS = {word for region in REGIONS for word in region.split()}
# Tokens that end the description of an object.
_BOUNDARIES = {"a", "an", "and", "."}
_MOTION_VERBS = {"moving", "moves", "move", "moved"}
_STILL_VERBS = {"staying", "stays", "stay", "stayed"}


def _read_region(tokens: list[str], start: int) -> str | None:
    """Region name starting at `tokens[start]`, skipping an optional 'the'."""
    if start < len(tokens) and tokens[start] == "the":
        start += 1
    if start >= len(tokens) or tokens[start] not in _REGION_WORDS:
        return None
    first = tokens[start]
    if first in ("top", "bottom") and start + 1 < len(tokens) and tokens[start + 1] in ("left", "right"):
        return f"{first} {tokens[start + 1]}"
    return first if first in REGIONS else None


def _parse_segment(tokens: list[str]) -> ParsedObject | None:
    colour = next((tok for tok in tokens if tok in COLOURS), None)
    shape = next((tok for tok in tokens if tok in SHAPES), None)
    if colour is None and shape is None:
        return None  # e.g. "The background is black."
    size = next((tok for tok in tokens if tok in SIZES), None)
    motion = start_region = end_region = None
    for i, tok in enumerate(tokens):
        if motion is None and tok in _MOTION_VERBS and i + 1 < len(tokens) and tokens[i + 1] in _DIRECTIONS:
            motion = tokens[i + 1]
        elif motion is None and (tok == "still" or (tok in _STILL_VERBS and "still" in tokens[i + 1 : i + 2])):
            motion = "still"
        elif tok == "from" and start_region is None:
            start_region = _read_region(tokens, i + 1)
        elif tok == "to" and end_region is None:
            end_region = _read_region(tokens, i + 1)
        elif tok == "in" and start_region is None and end_region is None:
            start_region = end_region = _read_region(tokens, i + 1)
    return ParsedObject(
        colour=colour, shape=shape, motion=motion, size=size, start_region=start_region, end_region=end_region
    )


def parse_text(text: str) -> list[ParsedObject]:
    """Objects described by a prompt or a detailed caption (either form, or a model's approximation of them).

    The text is split into object descriptions at determiners, ' and ' and full stops, and also wherever a second
    colour, shape or size shows up where it can only start a new one (so "a red circle blue square" yields two
    objects). Each description gives the first colour, shape and size it names, the direction after a motion verb
    (or 'still'), and regions after 'from the' / 'to the' / 'in the'.
    """
    tokens = [tok.lower() for tok in _TOKEN_PATTERN.findall(text)]
    segments: list[list[str]] = []
    current: list[str] = []

    def close():
        nonlocal current
        if current:
            segments.append(current)
        current = []

    for tok in tokens:
        if tok in _BOUNDARIES:
            close()
            continue
        has_colour = any(t in COLOURS for t in current)
        has_shape = any(t in SHAPES for t in current)
        has_size = any(t in SIZES for t in current)
        starts_new_object = (
            (tok in COLOURS and (has_colour or has_shape))
            or (tok in SHAPES and has_shape)
            or (tok in SIZES and (has_size or has_shape))
        )
        if starts_new_object:
            close()
        current.append(tok)
    close()
    parsed = (_parse_segment(segment) for segment in segments)
    return [obj for obj in parsed if obj is not None]


def scene_objects(scene: Scene) -> list[ParsedObject]:
    """The truth of every object of `scene`, as `ParsedObject`s."""
    return [ParsedObject.from_scene_object(scene, obj) for obj in scene.objects]
