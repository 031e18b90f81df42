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
