"""A real UDP DNS server on 127.0.0.1 (never any other address) serving TXT records from
a dict, for tests that must exercise dnspython end to end.

    server = TxtDnsServer({"sel._domainkey.example.com": record})
    with server as (host, port):
        server.add_txt("other._domainkey.example.com", b"v=DKIM1; ...")
        ...

Names not in the dict get NXDOMAIN; a known name asked for another type gets an empty
NOERROR answer. Values longer than 255 bytes are split into several character-strings,
as real zones publish 2048-bit keys.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Mapping
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

LOOPBACK = "127.0.0.1"
MAX_CHARACTER_STRING = 255
PLAIN_UDP_LIMIT = 512


def character_strings(value: bytes | str) -> tuple[bytes, ...]:
    data = value.encode("ascii") if isinstance(value, str) else value
    return tuple(data[start : start + MAX_CHARACTER_STRING] for start in range(0, len(data), MAX_CHARACTER_STRING)) or (b"",)


def record_key(name: str) -> dns.name.Name:
    return dns.name.from_text(name).canonicalize()


class TxtDnsServer:
    def __init__(self, records: Mapping[str, bytes | str] | None = None) -> None:
        self._records: dict[dns.name.Name, list[tuple[bytes, ...]]] = {}
        self._lock = threading.Lock()
        self.queries: list[str] = []
        for name, value in (records or {}).items():
            self.add_txt(name, value)
        self._server: socketserver.UDPServer | None = None
        self._thread: threading.Thread | None = None

    def add_txt(self, name: str, value: bytes | str, *, replace: bool = True) -> None:
        """Publish one TXT record; replace=False adds another record at the same name."""
        self.add_txt_strings(name, *character_strings(value), replace=replace)

    def add_txt_strings(self, name: str, *strings: bytes, replace: bool = True) -> None:
        """Publish exactly these character-strings (each at most 255 bytes) as one record."""
        key = record_key(name)
        with self._lock:
            if replace or key not in self._records:
                self._records[key] = []
            self._records[key].append(strings)

    def __enter__(self) -> tuple[str, int]:
        self._server = socketserver.UDPServer((LOOPBACK, 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def response_wire(self, query_wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(query_wire)
        except dns.exception.DNSException:
            return None
        if len(query.question) != 1:
            return None
        question = query.question[0]
        with self._lock:
            self.queries.append(question.name.to_text())
            records = list(self._records.get(question.name.canonicalize(), []))
        response = dns.message.make_response(query)
        if not records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT and question.rdclass == dns.rdataclass.IN:
            rdatas = [dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings) for strings in records]
            response.answer.append(dns.rrset.from_rdata_list(question.name, 60, rdatas))
        limit = max(query.payload, PLAIN_UDP_LIMIT) if query.edns >= 0 else PLAIN_UDP_LIMIT
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()

    def _handler_class(self) -> type[socketserver.BaseRequestHandler]:
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                wire = server.response_wire(data)
                if wire is not None:
                    sock.sendto(wire, self.client_address)

        return Handler
