"""SLURM node lists, expanded in Python: `gpu-[07-08]`, `a[01-03,05],b7`.

The master of a SLURM job is the first host of SLURM_JOB_NODELIST; `scontrol show hostnames`
is not always on PATH inside containers, so we expand the list ourselves.
"""

from __future__ import annotations

import re

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
MAX_HOSTS = 100_000  # a typo such as [1-99999999] must not eat the memory


class HostlistError(ValueError):
    pass


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are outside brackets."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise HostlistError(f"unbalanced ']' in {text!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise HostlistError(f"unbalanced '[' in {text!r}")
    parts.append("".join(current))
    return [part for part in (p.strip() for p in parts) if part]


def _expand_ranges(body: str, text: str) -> list[str]:
    values: list[str] = []
    for item in body.split(","):
        match = _RANGE.match(item.strip())
        if not match:
            raise HostlistError(f"bad range {item!r} in {text!r}")
        low, high = match.group(1), match.group(2) or match.group(1)
        if int(high) < int(low):
            raise HostlistError(f"descending range {item!r} in {text!r}")
        if int(high) - int(low) >= MAX_HOSTS:
            raise HostlistError(f"range {item!r} in {text!r} is too large")
        # Zero padding follows the lower bound, as SLURM does ("07-10" -> 07, 08, 09, 10).
        width = len(low)
        values.extend(str(number).zfill(width) for number in range(int(low), int(high) + 1))
    return values


def _expand_one(name: str, text: str) -> list[str]:
    """One host expression, possibly with several bracket groups (`r[1-2]n[1-2]`)."""
    start = name.find("[")
    if start < 0:
        return [name]
    end = name.find("]", start)
    if end < 0:
        raise HostlistError(f"unbalanced '[' in {text!r}")
    prefix, body, rest = name[:start], name[start + 1 : end], name[end + 1 :]
    tails = _expand_one(rest, text) if rest else [""]
    return [prefix + value + tail for value in _expand_ranges(body, text) for tail in tails]


def expand_hostlist(text: str) -> list[str]:
    """All host names of a SLURM node list, in order; HostlistError when it is malformed."""
    hosts: list[str] = []
    for part in _split_top_level(text.strip()):
        hosts.extend(_expand_one(part, text))
        if len(hosts) > MAX_HOSTS:
            raise HostlistError(f"{text!r} names more than {MAX_HOSTS} hosts")
    if not hosts:
        raise HostlistError("the node list is empty")
    return hosts
