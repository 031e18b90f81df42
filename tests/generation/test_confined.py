"""The worker processes that run a spec's code: a call that outlives its deadline costs its
process, not the pool; the workers import datamill as this process does."""

from __future__ import annotations

from pathlib import Path

import pytest

from datamill.generation.confined import ConfinedPool, Limits, RenderItem, render_all
from datamill.generation.templates import TemplateProblem

RUNAWAY = "{% for a in 'x' * 99999 %}{% for b in 'x' * 99999 %}{% endfor %}{% endfor %}"


@pytest.fixture
def make_pool():
    pools: list[ConfinedPool] = []

    def make(**limits: float) -> ConfinedPool:
        pools.append(ConfinedPool(size=1, limits=Limits(**limits)))  # type: ignore[arg-type]
        return pools[-1]

    yield make
    for pool in pools:
        pool.close()


async def test_a_call_past_its_deadline_replaces_the_process(make_pool):
    # The call's own allowance ends before the render's deadline: the process is killed,
    # as one stuck in C code (which no signal interrupts) would be.
    pool = make_pool(seconds=3.0, slack=-2.5)
    await render_all([RenderItem("warm {{ n }}", {"n": 1})], pool)  # started, ready

    with pytest.raises(TemplateProblem, match="did not finish within"):
        await render_all([RenderItem(RUNAWAY, {})], pool)

    assert await render_all([RenderItem("again {{ n }}", {"n": 2})], pool) == ["again 2"]


async def test_a_render_past_its_deadline_keeps_the_process(make_pool):
    pool = make_pool(seconds=0.3)
    with pytest.raises(TemplateProblem, match=r"within 0\.3 s"):
        await render_all([RenderItem(RUNAWAY, {})], pool)
    assert await render_all([RenderItem("{{ n }}", {"n": 3})], pool) == ["3"]


async def test_the_workers_ignore_a_datamill_folder_in_the_working_directory(
    make_pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "datamill").mkdir()
    (tmp_path / "datamill" / "__init__.py").write_text("raise SystemExit('the wrong datamill')\n")
    monkeypatch.chdir(tmp_path)

    assert await render_all([RenderItem("{{ n }}", {"n": 4})], make_pool()) == ["4"]


async def test_a_check_call_leaves_answers_unchecked_past_its_overrun(make_pool):
    from datamill.generation.confined import CheckItem, check_all
    from datamill.generation.quality import Rejection
    from datamill.generation.spec import Quality, RegexRule

    quality = Quality(regex=[RegexRule(pattern="^(a+)+$", field="t")]).model_dump(mode="json")
    slow = {"choices": [{"message": {"role": "assistant", "content": '{"t": "%s!"}' % ("a" * 40)}}]}
    fast = {"choices": [{"message": {"role": "assistant", "content": '{"t": "aaa"}'}}]}
    pool = make_pool(seconds=0.2, overrun=0.3)

    verdicts = await check_all(
        [CheckItem(slow, {}, quality)] * 2 + [CheckItem(fast, {}, quality)], pool
    )

    assert [v.reason if v else None for v in verdicts] == [Rejection.regex, Rejection.regex, None]
    assert verdicts[2] is None  # not checked: the caller sends it again
    (again,) = await check_all([CheckItem(fast, {}, quality)], pool)
    assert again is not None
    assert again.sample == {"t": "aaa"}
