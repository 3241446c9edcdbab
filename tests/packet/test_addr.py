"""tailgate.packet.addr: the one IPv4 parser, IPv6, MAC, and their forms as module arguments."""

import ipaddress

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailgate.core.errors import ArgError
from tailgate.packet.addr import format_mac, ipv4_arg, mac_arg, parse_ipv4, parse_ipv6


@given(st.integers(0, 2**32 - 1))
def test_parse_ipv4_reads_every_dotted_quad(v):
    assert parse_ipv4(str(ipaddress.IPv4Address(v))) == v


@pytest.mark.parametrize(
    "text, why",
    [
        ("10.0.0", "3 dot-separated part"),
        ("10.0.0.0.1", "5 dot-separated part"),
        ("10.0.0.256", "'256' is not a decimal octet"),
        ("10.0.x.1", "'x' is not a decimal octet"),
        ("10..0.1", "'' is not a decimal octet"),
        ("10.0.0.1 ", "'1 ' is not a decimal octet"),
        ("10.0.0.0001", "'0001' is not a decimal octet"),
        ("", "1 dot-separated part"),
    ],
)
def test_parse_ipv4_errors_name_the_text_and_the_part(text, why):
    with pytest.raises(ValueError, match=f"bad IPv4 address {text!r}") as e:
        parse_ipv4(text)
    assert why in str(e.value)


def test_parse_ipv6():
    assert parse_ipv6("2001:db8::1") == (0x20010DB8 << 96) | 1
    with pytest.raises(ValueError, match="bad IPv6 address '2001:zz8::1'"):
        parse_ipv6("2001:zz8::1")


def test_ipv4_arg_takes_text_ints_and_address_objects():
    assert ipv4_arg("M(m)", "ip", " 192.0.2.7 ") == 0xC0000207
    assert ipv4_arg("M(m)", "ip", 0xC0000207) == 0xC0000207
    assert ipv4_arg("M(m)", "ip", np.uint32(7)) == 7
    assert ipv4_arg("M(m)", "ip", ipaddress.IPv4Address("192.0.2.7")) == 0xC0000207


@pytest.mark.parametrize(
    "value, message",
    [
        ("192.0.2.300", r"M\(m\): argument 'ip': bad IPv4 address '192.0.2.300': '300' is not a decimal octet"),
        (2**32, r"M\(m\): argument 'ip' must be an IPv4 address like '10.0.0.1', got 4294967296"),
        (-1, r"must be an IPv4 address like '10.0.0.1', got -1"),
        (True, r"got True"),
        (1.5, r"got 1.5"),
    ],
)
def test_ipv4_arg_errors_name_the_module_the_argument_and_the_value(value, message):
    with pytest.raises(ArgError, match=message):
        ipv4_arg("M(m)", "ip", value)


def test_mac_arg_and_format_mac():
    assert mac_arg("M(m)", "dst", "02:00:00:00:00:09") == 0x020000000009
    assert mac_arg("M(m)", "dst", "2-0-0-0-0-9") == 0x020000000009
    assert mac_arg("M(m)", "dst", 9) == 9
    assert format_mac(0x020000000009) == "02:00:00:00:00:09"
    for bad in ("02:00:00:00:00", "02:00:00:00:00:zz", 1 << 48, None):
        with pytest.raises(ArgError, match=r"M\(m\): argument 'dst' must be a MAC address"):
            mac_arg("M(m)", "dst", bad)
