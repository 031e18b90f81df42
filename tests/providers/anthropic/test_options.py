"""An `anthropic` deployment's options: defaults, and errors naming the key at fault."""

from __future__ import annotations

import orjson
import pytest

from datamill.clock import SystemClock
from datamill.errors import ConfigError
from datamill.plugins import create_provider
from datamill.providers.anthropic import AnthropicProvider
from datamill.providers.anthropic.options import AnthropicOptions, parse_options
from datamill.providers.base import ProviderContext
from datamill.providers.http import HttpPool
from datamill.settings import DeploymentConfig


def deployment(**options) -> DeploymentConfig:
    return DeploymentConfig(name="claude", provider="anthropic", options=options)


def test_defaults():
    options = parse_options(deployment())
    assert options == AnthropicOptions()
    assert (options.default_max_tokens, options.anthropic_version) == (4096, "2023-06-01")
    assert (options.beta, options.json_mode, options.prompt_caching) == ([], "tool", False)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"default_max_tokens": 0}, "deployments.claude.options.default_max_tokens: Input"),
        ({"max_token": 10}, "deployments.claude.options.max_token: unknown option; anthropic"),
        ({"json_mode": "grammar"}, "deployments.claude.options.json_mode: Input"),
        ({"anthropic_version": "2023-06-01\r\nx: y"}, "options.anthropic_version: String"),
        ({"beta": ["a,b"]}, "deployments.claude.options.beta: 'a,b' is not one beta flag"),
    ],
)
def test_invalid_options_stop_start_up_naming_the_key(options, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_options(deployment(**options))


async def test_the_provider_type_is_registered():
    http = HttpPool()
    try:
        provider = create_provider(deployment(), ProviderContext(http=http, clock=SystemClock()))
    finally:
        await http.aclose()
    assert isinstance(provider, AnthropicProvider)
    caps = provider.capabilities
    assert (caps.chat, caps.embeddings, caps.streaming, caps.native_batch) == (
        True,
        False,
        True,
        True,
    )
    assert provider.embedding_fields == {}
    # No base_url: Anthropic's own API.
    assert provider._messages.origin.host == "api.anthropic.com"
    assert provider._messages.origin.scheme == "https"
    assert provider._messages.head.startswith(b"POST /v1/messages HTTP/1.1")


def test_every_option_is_documented_with_its_default():
    from tests.test_docs import read, section, table_rows

    text = section(read("docs/providers.md"), "## `anthropic`")
    rows = table_rows(text)

    assert set(rows) - {"option"} == set(AnthropicOptions.model_fields)
    for name, field in AnthropicOptions.model_fields.items():
        default = field.get_default(call_default_factory=True)
        assert rows[name][1] == f"`{orjson.dumps(default).decode()}`", name


async def test_the_documented_deployment_loads(tmp_path):
    from datamill.settings import load_settings
    from tests.test_docs import code_blocks, read, section

    text = section(read("docs/providers.md"), "## `anthropic`")
    [config] = [block for block in code_blocks(text, "toml") if 'provider = "anthropic"' in block]
    (tmp_path / "datamill.toml").write_text(config)

    environ = {
        "ANTHROPIC_API_KEY": "sk-ant-doc",
        "DATAMILL_CONFIG": str(tmp_path / "datamill.toml"),
        # The key alone would also register the pass-through `anthropic` deployment.
        "DATAMILL_AUTO_DEPLOYMENTS": "false",
    }
    [claude] = load_settings(environ).deployments
    http = HttpPool()
    try:
        provider = create_provider(claude, ProviderContext(http=http, clock=SystemClock()))
    finally:
        await http.aclose()
    assert isinstance(provider, AnthropicProvider)
    assert provider.options.default_max_tokens == 8192
    assert provider.options.prompt_caching is True
    assert b"x-api-key: sk-ant-doc" in provider._messages.head
