"""Addresses as text: IPv4 and IPv6 addresses, MAC addresses, and their forms as module arguments.

Manual
------
Parsers (``ValueError`` naming the bad text):

- :func:`parse_ipv4` — ``"10.1.2.3"`` -> ``0x0A010203``: exactly four decimal octets 0-255 of one
  to three digits each, nothing else (no blanks, no hex, no shortened forms). Route files, ACL
  rules, ExactMatch keys and every IPv4 module argument go through it.
- :func:`parse_ipv6` — ``"2001:db8::1"`` -> a 128-bit int, any form ``inet_pton`` takes.

Module arguments (``ArgError`` naming the module, the argument and the bad value):

- :func:`ipv4_arg` — an IPv4 address argument: a string as :func:`parse_ipv4` reads it (blanks
  around it are dropped), an int 0 .. 2^32-1, or an ``ipaddress.IPv4Address``.
- :func:`mac_arg` — a MAC address argument: six hex octets separated by ``:`` or ``-``
  (``"02:00:00:00:00:01"``), or an int of 48 bits; :func:`format_mac` writes one back.

Example::

    parse_ipv4("192.0.2.7")                       # 0xC0000207
    parse_ipv4("10.0.0.256")                      # ValueError: bad IPv4 address '10.0.0.256': ...
    ipv4_arg("SetIPv4(s)", "value", "192.0.2.7")  # 0xC0000207
    mac_arg("MACRewrite(m)", "dst", "02-00-00-00-00-09")
"""

from __future__ import annotations

import ipaddress
import socket

import numpy as np

from tailgate.core.errors import ArgError

__all__ = ["parse_ipv4", "parse_ipv6", "ipv4_arg", "mac_arg", "format_mac"]


def parse_ipv4(text: str) -> int:
    """``"10.1.2.3"`` -> ``0x0A010203``; ValueError naming the text and what is wrong with it."""
    parts = text.split(".")
    if len(parts) != 4:
        raise ValueError(f"bad IPv4 address {text!r}: {len(parts)} dot-separated part(s), expected 4 (like 10.0.0.1)")
    v = 0
    for p in parts:
        if not (1 <= len(p) <= 3 and p.isdigit() and p.isascii()) or int(p) > 255:
            raise ValueError(f"bad IPv4 address {text!r}: {p!r} is not a decimal octet 0..255")
        v = (v << 8) | int(p)
    return v


def parse_ipv6(text: str) -> int:
    """``"2001:db8::1"`` -> 128-bit int (any form ``inet_pton`` takes); ValueError otherwise."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except (OSError, ValueError, TypeError):
        raise ValueError(f"bad IPv6 address {text!r}") from None


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def ipv4_arg(owner: str, arg: str, value) -> int:
    """Module argument ``arg`` of ``owner`` as a 32-bit IPv4 address (see the module manual)."""
    if isinstance(value, str):
        try:
            return parse_ipv4(value.strip())
        except ValueError as e:
            raise ArgError(f"{owner}: argument {arg!r}: {e}") from None
    if isinstance(value, ipaddress.IPv4Address):
        return int(value)
    if _is_int(value) and 0 <= int(value) <= 0xFFFFFFFF:
        return int(value)
    raise ArgError(f"{owner}: argument {arg!r} must be an IPv4 address like '10.0.0.1', got {value!r}")


def mac_arg(owner: str, arg: str, value) -> int:
    """Module argument ``arg`` of ``owner`` as a 48-bit MAC address (see the module manual)."""
    if _is_int(value):
        if 0 <= int(value) < (1 << 48):
            return int(value)
    elif isinstance(value, str):
        parts = value.strip().replace("-", ":").split(":")
        if len(parts) == 6 and all(1 <= len(p) <= 2 for p in parts):
            try:
                octets = [int(p, 16) for p in parts]
            except ValueError:
                octets = None
            if octets is not None:
                v = 0
                for o in octets:
                    v = (v << 8) | o
                return v
    raise ArgError(f"{owner}: argument {arg!r} must be a MAC address like '02:00:00:00:00:01', got {value!r}")


def format_mac(v: int) -> str:
    """48-bit int -> ``"02:00:00:00:00:01"``."""
    return ":".join(f"{(int(v) >> (8 * (5 - i))) & 0xFF:02x}" for i in range(6))
