"""Hand-built Ethernet frames for the parser tests (every byte chosen here, no library)."""

from __future__ import annotations

import ipaddress
import struct

DST_MAC = bytes.fromhex("020000000002")  # not the receiver's MAC: it drops them after TC
SRC_MAC = bytes.fromhex("020000000001")

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG, TCP_ECE, TCP_CWR = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80)


def eth(ethertype: int, payload: bytes, tags: tuple[tuple[int, int], ...] = ()) -> bytes:
    """Ethernet header, then in-band tags as (tpid, vid) outermost first."""
    head = DST_MAC + SRC_MAC
    for tpid, vid in tags:
        head += struct.pack("!HH", tpid, vid)
    return head + struct.pack("!H", ethertype) + payload


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(src: str, dst: str, proto: int, payload: bytes, *, options: bytes = b"",
         frag_offset: int = 0, more_fragments: bool = False, ttl: int = 64) -> bytes:
    assert len(options) % 4 == 0
    ihl = 5 + len(options) // 4
    flags = (0x2000 if more_fragments else 0) | (frag_offset // 8)
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(payload), 0x1234,
                         flags, ttl, proto, 0, ipaddress.IPv4Address(src).packed,
                         ipaddress.IPv4Address(dst).packed) + options
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + payload


def ipv6(src: str, dst: str, nexthdr: int, payload: bytes, hop_limit: int = 64) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nexthdr, hop_limit,
                       ipaddress.IPv6Address(src).packed,
                       ipaddress.IPv6Address(dst).packed) + payload


def ext_header(nexthdr: int, body_len: int = 6) -> bytes:
    """Hop-by-hop / routing / destination options header of (body_len + 2) bytes."""
    assert (body_len + 2) % 8 == 0
    return struct.pack("!BB", nexthdr, (body_len + 2) // 8 - 1) + b"\x01" + bytes(body_len - 1)


def frag_header(nexthdr: int, offset: int, more: bool) -> bytes:
    return struct.pack("!BBHI", nexthdr, 0, (offset // 8) << 3 | int(more), 0xABCD)


def udp(sport: int, dport: int, payload: bytes = b"sitevis") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport: int, dport: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0) + payload


def icmp_echo(kind: int = 8) -> bytes:
    return struct.pack("!BBHHH", kind, 0, 0, 1, 1) + b"ping"


def arp_request(sender: str, target: str) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, SRC_MAC,
                       ipaddress.IPv4Address(sender).packed, bytes(6),
                       ipaddress.IPv4Address(target).packed)
