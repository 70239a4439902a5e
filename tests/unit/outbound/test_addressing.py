"""Our side of outbound addresses: envelope addresses as the relay gets them."""

from __future__ import annotations

import pytest

from mailintake.outbound.addressing import ascii_address


@pytest.mark.parametrize(("address", "envelope"), [("R@Example.ORG", "r@example.org"), ("r@bücher.example", "r@xn--bcher-kva.example")])
def test_envelope_addresses_are_lower_case_with_punycode_domains(address: str, envelope: str) -> None:
    assert ascii_address(address) == envelope
