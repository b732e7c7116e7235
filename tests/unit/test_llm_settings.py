"""LLM settings: environment, overrides, a key that never shows, prices."""

from __future__ import annotations

import pytest

from llm import LLMConfigError, LLMLabeler, LLMSettings

SENTINEL = "sk-test-SENTINEL-0123456789"


def test_from_env_reads_endpoint_key_model_and_tunables():
    env = {
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "OPENAI_API_KEY": SENTINEL,
        "CORPUSMAP_LLM_MODEL": "smollm2",
        "CORPUSMAP_LLM_TIMEOUT": "2.5",
        "CORPUSMAP_LLM_MAX_IN_FLIGHT": "2",
    }
    settings = LLMSettings.from_env(env)
    assert settings.base_url == "http://127.0.0.1:9/v1"
    assert settings.api_key == SENTINEL
    assert settings.model == "smollm2"
    assert settings.timeout_s == 2.5
    assert settings.max_in_flight == 2
    assert settings.configured


def test_overrides_win_and_none_overrides_are_ignored():
    env = {"CORPUSMAP_LLM_MODEL": "gpt-4o", "OPENAI_API_KEY": SENTINEL}
    settings = LLMSettings.from_env(env, model=None, temperature=0.3, base_url=None)
    assert settings.model == "gpt-4o"
    assert settings.temperature == 0.3
    assert settings.base_url is None
    assert LLMSettings.from_env(env, model="gpt-4.1-mini").model == "gpt-4.1-mini"


def test_defaults_without_environment():
    settings = LLMSettings.from_env({})
    assert settings.model == "gpt-4o-mini"
    assert (settings.temperature, settings.max_in_flight, settings.max_retries) == (0.0, 4, 3)
    assert not settings.configured


def test_the_key_never_shows_in_repr_or_str():
    settings = LLMSettings(api_key=SENTINEL)
    assert SENTINEL not in repr(settings)
    assert SENTINEL not in str(settings)
    assert SENTINEL not in f"{settings}"


def test_credentials_in_the_url_are_left_out_of_the_public_url():
    settings = LLMSettings(base_url=f"https://user:{SENTINEL}@gateway.example:8443/v1")
    assert settings.public_base_url == "https://gateway.example:8443/v1"


@pytest.mark.parametrize(
    ("var", "value"), [("CORPUSMAP_LLM_TIMEOUT", "soon"), ("CORPUSMAP_LLM_MAX_IN_FLIGHT", "0")]
)
def test_bad_values_raise_a_config_error_that_names_them(var, value):
    with pytest.raises(LLMConfigError, match="CORPUSMAP_LLM|max_in_flight"):
        LLMSettings.from_env({var: value})


def test_unknown_override_is_an_error():
    with pytest.raises(LLMConfigError, match="unknown"):
        LLMSettings.from_env({}, modle="gpt-4o")


def test_a_labeler_without_endpoint_or_key_says_what_to_set():
    with pytest.raises(LLMConfigError, match="OPENAI_BASE_URL"):
        LLMLabeler(LLMSettings())


def test_prices_and_cost():
    settings = LLMSettings(model="gpt-4o-mini", api_key=SENTINEL)
    assert settings.cost_usd(1_000_000, 1_000_000) == pytest.approx(0.75)
    assert LLMSettings(model="gpt-4o-mini-2024-07-18").price_of() == (0.15, 0.60)
    assert LLMSettings(model="my-own-model").price_of() is None
    assert LLMSettings(model="my-own-model").cost_usd(10**6, 10**6) == 0.0
    custom = LLMSettings(model="mine", prices={"mine": (1.0, 2.0)})
    assert custom.cost_usd(500_000, 250_000) == pytest.approx(1.0)


def test_settings_are_hashable_and_frozen():
    settings = LLMSettings(api_key=SENTINEL)
    assert hash(settings) == hash(LLMSettings(api_key=SENTINEL))
    with pytest.raises(AttributeError):
        settings.model = "x"  # type: ignore[misc]
