"""The dataset formats people have, each turned into the one axolotl's chat_template reads.

- `messages`: axolotl's own: roles system/user/assistant, content a text or a list of parts
  ({"type": "text", "text"} and {"type": "image", "path"|"url"|"base64"|"image"}).
- LLaVA / ShareGPT: `conversations` of {"from": "human"|"gpt"|"system", "value"} with `<image>`
  placeholders, and the images in `image` (one) or `images` (a list).
- Hugging Face's: `messages` whose image parts are bare {"type": "image"} placeholders, filled
  in order from an `images` column.
- Captioning pairs: `image` and `text` (or `caption`): the caption is the answer to a fixed
  prompt.

Each row becomes {"messages": [...]}, images as parts in the turn that mentioned them. A row
that fits none, or breaks its format's rules, raises RowProblem with what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IMAGE_PLACEHOLDER = "<image>"
CAPTION_PROMPT = "Describe this image."
ROLES = ("system", "user", "assistant")
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}
# Where an image part keeps its reference, as axolotl reads them.
IMAGE_KEYS = ("path", "url", "base64", "image")
CAPTION_KEYS = ("text", "caption")


class RowProblem(Exception):
    """What is wrong with one row, said as the rest of "row N ..."."""


@dataclass(frozen=True)
class Converted:
    format: str
    messages: list[dict[str, Any]]


def detect_format(row: dict[str, Any]) -> str:
    if "messages" in row:
        return "hf-images" if "images" in row else "messages"
    if "conversations" in row:
        return "llava"
    if "image" in row and any(key in row for key in CAPTION_KEYS):
        return "caption"
    raise RowProblem(
        "has none of: messages (axolotl's format), conversations (LLaVA/ShareGPT),"
        " image with text or caption (captioning pairs)"
    )


def convert(row: dict[str, Any]) -> Converted:
    kind = detect_format(row)
    if kind == "messages":
        messages = _messages(row["messages"], images=None)
    elif kind == "hf-images":
        messages = _messages(row["messages"], images=_image_list(row["images"], "images"))
    elif kind == "llava":
        images = row.get("images", row.get("image"))
        listed = (
            [] if images is None else _image_list(images, "images" if "images" in row else "image")
        )
        messages = _conversations(row["conversations"], listed)
    else:
        messages = _caption(row)
    _check_turns(messages)
    return Converted(kind, messages)


def image_part(reference: Any, where: str) -> dict[str, Any]:
    """An axolotl image part from a reference as datasets hold them."""
    if isinstance(reference, str) and reference.strip():
        text = reference.strip()
        if text.startswith(("http://", "https://")):
            return {"type": "image", "url": text}
        if text.startswith("data:image/") or (len(text) > 256 and "/" not in text[:64]):
            return {"type": "image", "base64": text}
        return {"type": "image", "path": text}
    if isinstance(reference, dict):
        # Hugging Face's Image feature in Parquet: {"bytes": ..., "path": ...}.
        data = reference.get("bytes")
        if isinstance(data, bytes | bytearray) and data:
            import base64

            return {"type": "image", "base64": base64.b64encode(data).decode("ascii")}
        for key in IMAGE_KEYS:
            if isinstance(reference.get(key), str) and reference[key].strip():
                return {"type": "image", key: reference[key].strip()}
    raise RowProblem(f"{where}: an image must be a path, URL or base64 text, not {reference!r:.60}")


def _image_list(value: Any, column: str) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    return [image_part(item, f"{column}[{i}]") for i, item in enumerate(items)]


def _text_of(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise RowProblem(f"{where} must be text, not {type(value).__name__}")
    return value


def _messages(value: Any, images: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise RowProblem("messages must be a non-empty list of turns")
    unused = list(images or [])
    turns = []
    for index, turn in enumerate(value):
        where = f"messages[{index}]"
        if not isinstance(turn, dict):
            raise RowProblem(f"{where} must be an object with role and content")
        role = turn.get("role")
        if role not in ROLES:
            raise RowProblem(f"{where}.role is {role!r}; allowed: {', '.join(ROLES)}")
        content = turn.get("content")
        if isinstance(content, str):
            parts = [{"type": "text", "text": content}]
        elif isinstance(content, list) and content:
            parts = [
                _part(part, f"{where}.content[{i}]", unused, images is not None)
                for i, part in enumerate(content)
            ]
        else:
            raise RowProblem(f"{where}.content must be text or a non-empty list of parts")
        turns.append({"role": role, "content": parts})
    if unused:
        raise RowProblem(f"images holds {len(unused)} more image(s) than messages has placeholders")
    return turns


def _part(part: Any, where: str, unused: list[dict[str, Any]], from_column: bool) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise RowProblem(f"{where} must be an object with a type")
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": _text_of(part.get("text"), f"{where}.text")}
    if kind == "image":
        if any(part.get(key) for key in IMAGE_KEYS):
            return image_part({key: part.get(key) for key in IMAGE_KEYS}, where)
        if from_column:
            if not unused:
                raise RowProblem(f"{where} is an image placeholder but images has no image left")
            return unused.pop(0)
        raise RowProblem(f"{where} is an image with none of: {', '.join(IMAGE_KEYS)}")
    raise RowProblem(f"{where}.type is {kind!r}; allowed: text, image")


def _conversations(value: Any, images: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise RowProblem("conversations must be a non-empty list of turns")
    placeholders = 0
    for turn in value:
        if isinstance(turn, dict) and isinstance(turn.get("value"), str):
            placeholders += turn["value"].count(IMAGE_PLACEHOLDER)
    if placeholders not in (0, len(images)):
        raise RowProblem(
            f"has {placeholders} {IMAGE_PLACEHOLDER} placeholder(s) for {len(images)} image(s)"
        )
    unused = list(images)
    turns = []
    for index, turn in enumerate(value):
        where = f"conversations[{index}]"
        if not isinstance(turn, dict):
            raise RowProblem(f"{where} must be an object with from and value")
        speaker = turn.get("from", turn.get("role"))
        role = _SHAREGPT_ROLES.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            allowed = ", ".join(sorted(_SHAREGPT_ROLES))
            raise RowProblem(f"{where}.from is {speaker!r}; allowed: {allowed}")
        text = _text_of(turn.get("value", turn.get("content")), f"{where}.value")
        parts: list[dict[str, Any]] = []
        if placeholders:
            pieces = text.split(IMAGE_PLACEHOLDER)
            for i, piece in enumerate(pieces):
                if i > 0:
                    parts.append(unused.pop(0))
                if piece.strip():
                    parts.append({"type": "text", "text": piece.strip()})
        else:
            if role == "user" and unused:
                # No placeholder: the images go before the first user text, as LLaVA does.
                parts.extend(unused)
                unused = []
            parts.append({"type": "text", "text": text})
        turns.append({"role": role, "content": parts or [{"type": "text", "text": ""}]})
    if unused:
        raise RowProblem(f"has {len(unused)} image(s) but no user turn to put them in")
    return turns


def _caption(row: dict[str, Any]) -> list[dict[str, Any]]:
    key = next(key for key in CAPTION_KEYS if key in row)
    caption = _text_of(row[key], key)
    return [
        {
            "role": "user",
            "content": [
                image_part(row["image"], "image"),
                {"type": "text", "text": CAPTION_PROMPT},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": caption}]},
    ]


def _check_turns(turns: list[dict[str, Any]]) -> None:
    """What axolotl's chat_template strategy needs of the turns: user and assistant take turns
    after any system turns, the first is the user's, and an assistant answers with text."""
    roles = [turn["role"] for turn in turns]
    start = 0
    while start < len(roles) and roles[start] == "system":
        start += 1
    rest = roles[start:]
    if "system" in rest:
        raise RowProblem("has a system turn after the conversation started")
    if not rest or rest[0] != "user":
        raise RowProblem("must start (after any system turns) with a user turn")
    for i in range(1, len(rest)):
        if rest[i] == rest[i - 1]:
            raise RowProblem(
                f"has two {rest[i]} turns in a row (turns {start + i} and {start + i + 1})"
            )
    answers = [turn for turn in turns if turn["role"] == "assistant"]
    if not answers:
        raise RowProblem("has no assistant turn: nothing to learn")
    if not any(
        part["type"] == "text" and part["text"].strip()
        for turn in answers
        for part in turn["content"]
    ):
        raise RowProblem("has no assistant text: nothing to learn")
    for turn in answers:
        if any(part["type"] == "image" for part in turn["content"]):
            raise RowProblem("has an image in an assistant turn; images belong to user turns")
