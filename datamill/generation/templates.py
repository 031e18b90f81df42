"""A spec's Jinja templates, rendered in a bounded sandbox.

A spec may come from any API client, so its templates are untrusted code. They run in
Jinja's `SandboxedEnvironment` (no attribute of Python's internals, no unsafe ``format``)
with `StrictUndefined` (a misspelt variable is an error, not an empty string), and with
cooperative bounds that refuse, with a message naming the bound, what would otherwise take
the process's time or memory:

- ``range()`` hands out at most `MAX_RANGE_ITEMS` numbers per render, in all (nested loops
  multiply: ``range(1000)`` inside ``range(1000)`` asks for a million);
- ``**`` and ``*`` refuse a result over `MAX_INT_BITS` bits (``9**9**7``) or a repeated
  string or list over `MAX_PROMPT_CHARS` items;
- a rendered prompt holds at most `MAX_PROMPT_CHARS` characters.

What these do not catch (a loop over a long string, a filter asked for a gigabyte) is
bounded by the process that renders (`confined`): a deadline per render and a memory cap.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

# A prompt's characters at most: twice a spec's size (its grounding documents included).
MAX_PROMPT_CHARS = 2_000_000
# Numbers ``range()`` may hand out per render, in all.
MAX_RANGE_ITEMS = 100_000
# The bits of an integer a template may compute (about 3,000 decimal digits).
MAX_INT_BITS = 10_000
# ``lipsum()`` paragraphs at most.
MAX_LIPSUM = 100

APPENDED = (
    "\n\n(Variation {{ variation.index }}: take {{ variation.angle }}, written for "
    "{{ variation.audience }}; the people involved are {{ variation.parties }}.)"
)

# The numbers ``range()`` may still hand out in the render under way.
_range_left: ContextVar[list[int]] = ContextVar("range_left")


class TemplateProblem(ValueError):
    """A template that does not compile or does not render; the message says where."""


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    left = _range_left.get(None)
    if left is None:
        left = [MAX_RANGE_ITEMS]
        _range_left.set(left)
    if len(numbers) > left[0]:
        raise SecurityError(
            f"the template's range() calls ask for more than {MAX_RANGE_ITEMS:,} numbers "
            "in all (nested loops multiply)"
        )
    left[0] -= len(numbers)
    return numbers


def _int_bits(value: Any) -> float:
    return float(abs(value).bit_length()) if isinstance(value, int) else 0.0


def _check_power(base: Any, exponent: Any) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
        return  # floats overflow with an error; a negative power is a float
    if abs(base) > 1 and exponent * math.log2(abs(base)) > MAX_INT_BITS:
        raise SecurityError(f"the template computes a number over {MAX_INT_BITS:,} bits (**)")


def _check_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if _int_bits(left) + _int_bits(right) > MAX_INT_BITS:
            raise SecurityError(f"the template computes a number over {MAX_INT_BITS:,} bits (*)")
        return
    for sequence, times in ((left, right), (right, left)):
        sized = isinstance(sequence, str | list | tuple) and isinstance(times, int)
        if sized and len(sequence) * times > MAX_PROMPT_CHARS:
            raise SecurityError(
                f"the template repeats a string or list past {MAX_PROMPT_CHARS:,} items (*)"
            )


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox with the bounds of this module's docstring."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False)
        self.globals["range"] = _bounded_range
        self.globals["lipsum"] = _bounded_lipsum(self.globals["lipsum"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            _check_power(left, right)
        else:
            _check_product(left, right)
        return super().call_binop(context, operator, left, right)


def _bounded_lipsum(lipsum: Any) -> Any:
    def bounded(n: int = 5, *args: Any, **kwargs: Any) -> Any:
        return lipsum(min(int(n), MAX_LIPSUM), *args, **kwargs)

    return bounded


ENVIRONMENT = BoundedSandbox()


@lru_cache(maxsize=256)
def _compiled(source: str, vary: bool) -> Any:
    try:
        if vary and "variation" not in meta.find_undeclared_variables(ENVIRONMENT.parse(source)):
            source += APPENDED
        return ENVIRONMENT.from_string(source)
    except TemplateError as exc:
        raise TemplateProblem(f"the template does not compile: {exc}") from None
    except RecursionError:
        raise TemplateProblem("the template nests too deeply to compile") from None


def render(source: str, variables: dict[str, Any], *, vary: bool = False) -> str:
    """``source`` rendered with ``variables``, within the bounds; with ``vary``, a template
    that does not mention ``variation`` gets a line appended that does."""
    template = _compiled(source, vary)
    token = _range_left.set([MAX_RANGE_ITEMS])
    size = 0
    parts: list[str] = []
    try:
        for part in template.generate(**variables):
            size += len(part)
            if size > MAX_PROMPT_CHARS:
                raise TemplateProblem(
                    f"the template renders more than {MAX_PROMPT_CHARS:,} characters"
                )
            parts.append(part)
    except TemplateProblem:
        raise
    except TemplateError as exc:  # SecurityError, UndefinedError, ...
        raise TemplateProblem(f"the template does not render: {exc}") from None
    except MemoryError:
        raise
    except Exception as exc:  # 1/0, a float overflow, int("x"): the template's own errors
        raise TemplateProblem(
            f"the template does not render: {type(exc).__name__}: {exc}"[:2000]
        ) from None
    finally:
        _range_left.reset(token)
    return "".join(parts)
