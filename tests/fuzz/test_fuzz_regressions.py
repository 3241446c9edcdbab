"""What the fuzzing found, kept as tests."""

import pytest

from tailgate.core.errors import TailgateError
from tailgate.packet.pcap import PcapError, PcapReader
from tailgate.packet.pcapinfo import pcap_info


def test_a_refused_capture_is_a_tailgate_error_naming_file_and_offset(tmp_path):
    """A capture is refused with a TailgateError (one line for the user, no traceback), not a
    bare Exception subclass that only the pcap commands knew to catch."""
    path = tmp_path / "bad.pcapng"
    # a section header block whose trailing length differs from its leading one
    path.write_bytes(bytes.fromhex("0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff20000000"))
    assert issubclass(PcapError, TailgateError)
    with pytest.raises(TailgateError, match=rf"^{path}: byte 0: "):
        PcapReader(path)
    with pytest.raises(TailgateError, match=rf"^{path}: byte 0: "):
        pcap_info(str(path))
