"""The built-in network functions. Every class here is available by name in pipeline scripts.

Each class's docstring is its manual: what it does, its gates, its drop reasons and an example
that drives it on crafted frames (:func:`tailgate.dataplane.drive.drive`,
:func:`tailgate.packet.craft.frame`) and shows what came out. ``tailgate modules NAME`` prints
the manual followed by the argument table generated from the class's ``args``, where every
:class:`~tailgate.core.args.Arg` carries a unit (``"-"`` when it has none) and a one-line help.
tests/nf/test_manuals.py runs every example, as Snabb's ``selftest()`` does, and fails on a
class without one or on an argument without unit or help.
"""

from tailgate.dataplane.module import Module
from tailgate.nf.acl import ACL
from tailgate.nf.basic import (
    Bypass,
    Drop,
    Merge,
    PcapSink,
    PcapSource,
    Queue,
    SetMetadata,
    Sink,
    Source,
    Timestamp,
)
from tailgate.nf.classify import ExactMatch, HashSplit
from tailgate.nf.fbuffer import FractionalBuffer
from tailgate.nf.ip import (
    CheckIPHeader,
    DecTTL,
    IPChecksum,
    MACRewrite,
    SetIPv4,
    UpdateTTL,
)
from tailgate.nf.lookup import IPv4Lookup, IPv6Lookup
from tailgate.nf.measure import Measure
from tailgate.nf.nat import NAPT, StaticNAT
from tailgate.nf.shaping import RateLimiter
from tailgate.nf.split import RandomSplit, WeightedRandomSplit
from tailgate.nf.tunnel import (
    GTPUDecap,
    GTPUEncap,
    VLANPop,
    VLANPush,
    VLANSplit,
    VXLANDecap,
    VXLANEncap,
)

__all__ = [
    "ACL",
    "Bypass",
    "CheckIPHeader",
    "DecTTL",
    "ExactMatch",
    "FractionalBuffer",
    "GTPUDecap",
    "GTPUEncap",
    "HashSplit",
    "IPChecksum",
    "IPv4Lookup",
    "IPv6Lookup",
    "MACRewrite",
    "NAPT",
    "SetIPv4",
    "StaticNAT",
    "UpdateTTL",
    "VLANPop",
    "VLANPush",
    "VLANSplit",
    "VXLANDecap",
    "VXLANEncap",
    "Drop",
    "Measure",
    "Merge",
    "PcapSink",
    "PcapSource",
    "Queue",
    "RandomSplit",
    "RateLimiter",
    "SetMetadata",
    "Sink",
    "Source",
    "Timestamp",
    "WeightedRandomSplit",
]


def registry() -> dict[str, type]:
    """Every network function class by name."""

    return {n: c for n, c in globals().items() if isinstance(c, type) and issubclass(c, Module) and c is not Module}
