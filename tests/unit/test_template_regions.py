"""Regions as configuration: AmazonBusinessRegion picks the API host and default marketplace (RegionSettings),
ApiEndpoint/MarketplaceId override them, RequestPdfs and FatalRetrySeconds reach every function."""

from __future__ import annotations

import pytest
from helpers import TEMPLATE, template_environment

from abrecon.settings import Settings
from abrecon_sandbox.aws.stack import TemplateError, build_stack, load_template

TEMPLATE_DATA = load_template(TEMPLATE)


@pytest.mark.parametrize(
    ("region", "host", "marketplace"),
    [
        ("NA", "https://na.business-api.amazon.com", "ATVPDKIKX0DER"),
        ("EU", "https://eu.business-api.amazon.com", "A1F83G8C2ARO7P"),
        ("JP", "https://jp.business-api.amazon.com", "A1VC38T7YXB528"),
    ],
)
def test_region_picks_host_and_marketplace(region: str, host: str, marketplace: str) -> None:
    env = template_environment(AmazonBusinessRegion=region)
    assert (env["AB_REGION"], env["AB_API_ENDPOINT"], env["AB_MARKETPLACE_ID"]) == (region, host, marketplace)
    assert Settings.model_validate(env).region == region


def test_defaults_are_north_america_with_pdfs() -> None:
    env = template_environment()
    assert env["AB_API_ENDPOINT"] == "https://na.business-api.amazon.com"
    assert env["AB_MARKETPLACE_ID"] == "ATVPDKIKX0DER"
    assert (env["REQUEST_PDFS"], env["FATAL_RETRY_SECONDS"]) == ("true", "300")
    settings = Settings.model_validate(env)
    assert settings.request_pdfs is True and settings.fatal_retry_seconds == 300


def test_endpoint_and_marketplace_can_be_overridden() -> None:
    env = template_environment(
        AmazonBusinessRegion="JP",
        ApiEndpoint="https://sandbox.na.business-api.amazon.com",
        MarketplaceId="A39IBJ37TRP1C6",  # Australia, served by the JP host
        RequestPdfs="false",
    )
    assert env["AB_API_ENDPOINT"] == "https://sandbox.na.business-api.amazon.com"
    assert env["AB_MARKETPLACE_ID"] == "A39IBJ37TRP1C6"
    assert Settings.model_validate(env).request_pdfs is False


def test_every_region_of_the_parameter_has_its_mapping() -> None:
    allowed = TEMPLATE_DATA["Parameters"]["AmazonBusinessRegion"]["AllowedValues"]
    assert set(allowed) == set(TEMPLATE_DATA["Mappings"]["RegionSettings"]) == {"NA", "EU", "JP"}
    assert set(Settings.model_fields["region"].annotation.__args__) == set(allowed)  # type: ignore[union-attr]


def test_sandbox_refuses_a_region_cloudformation_would_refuse() -> None:
    with pytest.raises(TemplateError, match="AmazonBusinessRegion"):
        build_stack(TEMPLATE, "abrecon", {"AmazonBusinessRegion": "FE"}, "http://127.0.0.1:1")
