"""A spec's templates run sandboxed: the known escapes through str.format are refused."""

from __future__ import annotations

import pytest

from datamill.generation.templates import TemplateProblem, render


@pytest.mark.parametrize(
    "template",
    [
        # CVE-2025-27516: |attr fetching a string's plain format method.
        '{{ ("{0.__class__.__mro__}"|attr("format"))(topic) }}',
        # CVE-2016-10745 / CVE-2019-10906: format and format_map called directly.
        '{{ "{0.__class__.__mro__}".format(topic) }}',
        '{{ "{x.__class__.__mro__}".format_map({"x": topic}) }}',
    ],
)
def test_format_cannot_reach_python_internals(template: str):
    with pytest.raises(TemplateProblem):
        render(template + "{{ variation }}", {"topic": "contracts", "variation": "v"})


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{% for i in range(400) %}{% for j in range(400) %}{% endfor %}{% endfor %}", "100,000"),
        ("{{ range(100001) | length }}", "100,000 numbers"),
        ("{{ 9 ** (9 ** 7) }}", "10,000 bits"),
        ("{% set n = 3 ** 6000 %}{{ n * n }}", "10,000 bits"),
        ("{{ 'ab' * 1000001 }}", "2,000,000 items"),
        ("{{ [1] * 2000001 }}", "2,000,000 items"),
        ("{% for i in range(3) %}{{ 'x' * 1000000 }}{% endfor %}", "more than 2,000,000 char"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ],
)
def test_bounds_inside_the_sandbox(template: str, words: str):
    with pytest.raises(TemplateProblem, match=words):
        render(template, {})


def test_what_stays_under_the_bounds_renders():
    template = "{% for i in range(300) %}{% for j in range(300) %}{% endfor %}{% endfor %}"
    assert render(template + "{{ 2 ** 64 }} {{ 'ab' * 3 }}", {}) == f"{2**64} ababab"
    assert render("{{ lipsum(1000) }}", {}).count("<p>") == 100
