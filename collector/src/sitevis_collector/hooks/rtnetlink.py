"""Set an interface's XDP program with compare-and-swap semantics (rtnetlink, raw).

pyroute2 0.7 encodes IFLA_XDP_FLAGS as a big-endian u16 the kernel rejects, so it can
only set XDP without flags: "check what is attached, then set" — a window in which a
program someone else attaches meanwhile would be replaced or removed. The kernel
closes that window itself given flags: UPDATE_IF_NOEXIST (attach only if the hook is
empty, else EBUSY) and REPLACE with an expected program fd (swap only if that program
is still the one attached, else EEXIST). This module sends that RTM_SETLINK.
"""

from __future__ import annotations

import os
import socket
import struct

from sitevis_collector.hooks.netns import call_in_netns

RTM_SETLINK = 19
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLA_F_NESTED = 0x8000
IFLA_XDP = 43
IFLA_XDP_FD = 1
IFLA_XDP_FLAGS = 3
IFLA_XDP_EXPECTED_FD = 8
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_REPLACE = 1 << 4


def _nla(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + bytes(-size % 4)


def setlink_xdp_message(ifindex: int, fd: int, flags: int, expected_fd: int | None,
                        seq: int = 1) -> bytes:
    """The RTM_SETLINK request: ifinfomsg + IFLA_XDP {FD, FLAGS[, EXPECTED_FD]}."""
    inner = _nla(IFLA_XDP_FD, struct.pack("=i", fd)) + _nla(IFLA_XDP_FLAGS,
                                                          struct.pack("=I", flags))
    if expected_fd is not None:
        inner += _nla(IFLA_XDP_EXPECTED_FD, struct.pack("=i", expected_fd))
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, ifindex, 0, 0)
    body += _nla(IFLA_XDP | NLA_F_NESTED, inner)
    return struct.pack("=IHHII", 16 + len(body), RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK,
                       seq, 0) + body


def route_socket(netns: str | None = None) -> socket.socket:
    """A NETLINK_ROUTE socket of the named network namespace (None: ours)."""
    return call_in_netns(netns, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW,
                                                      socket.NETLINK_ROUTE))


class XdpSetter:
    """RTM_SETLINK for XDP on one netlink socket; every call waits for the kernel's ack."""

    def __init__(self, netns: str | None = None) -> None:
        self._sock = route_socket(netns)
        self._seq = 0

    def set(self, ifindex: int, fd: int, flags: int, expected_fd: int | None = None) -> None:
        """Raise OSError(errno) when the kernel refuses (EBUSY / EEXIST: someone else's
        program is there)."""
        self._seq += 1
        self._sock.send(setlink_xdp_message(ifindex, fd, flags, expected_fd, self._seq))
        while True:
            data = self._sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                size, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
                if kind == NLMSG_ERROR and seq == self._seq:
                    code = struct.unpack_from("=i", data, offset + 16)[0]
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return
                offset += max(16, (size + 3) & ~3)

    def close(self) -> None:
        self._sock.close()

