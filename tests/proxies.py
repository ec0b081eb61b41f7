"""A small HTTP proxy on 127.0.0.1 (CONNECT tunnels and absolute-URI requests) that records what it
was asked for, and can refuse or demand credentials; and an HTTPS receiver to tunnel to."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.receivers import Receiver


@dataclass
class Asked:
    method: str
    target: str  # host:port for CONNECT, the absolute URI otherwise
    proxy_authorization: str | None


class ConnectProxy:
    def __init__(self, *, refuse: int | None = None, credentials: tuple[str, str] | None = None,
                 upstream: dict[str, tuple[str, int]] | None = None) -> None:
        self.refuse = refuse  # answer every request with this status
        self.credentials = credentials  # required as Proxy-Authorization: Basic
        self.upstream = upstream or {}  # "host:port" asked for -> where to really connect
        self.asked: list[Asked] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    @property
    def targets(self) -> list[str]:
        return [a.target for a in self.asked]

    async def start(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        first, *lines = head.decode("latin-1").split("\r\n")
        method, target, version = first.split(" ", 2)
        headers = [(name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in lines if line)]
        auth = next((v for k, v in headers if k.lower() == "proxy-authorization"), None)
        self.asked.append(Asked(method, target, auth))
        if self.credentials is not None:
            expected = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
            if auth != expected:
                await _answer(writer, 407, "Proxy Authentication Required", 'Proxy-Authenticate: Basic realm="t"\r\n')
                return
        if self.refuse is not None:
            await _answer(writer, self.refuse, "Forbidden by policy")
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            where = self.upstream.get(target, (host.strip("[]"), int(port)))
            up_reader, up_writer = await asyncio.open_connection(*where)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:  # absolute-form: forward this one request, closing after it
            parts = urlsplit(target)
            where = self.upstream.get(parts.netloc, (parts.hostname or "", parts.port or 80))
            up_reader, up_writer = await asyncio.open_connection(*where)
            kept = [(k, v) for k, v in headers if k.lower() not in ("proxy-authorization", "proxy-connection",
                                                                     "connection")]
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            up_writer.write((f"{method} {path or '/'} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in kept)
                             + "Connection: close\r\n\r\n").encode("latin-1"))
        self._writers.add(up_writer)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._writers.discard(up_writer)
            up_writer.close()


async def _answer(writer: asyncio.StreamWriter, status: int, reason: str, extra: str = "") -> None:
    writer.write(f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        if writer.can_write_eof() and not writer.is_closing():
            try:
                writer.write_eof()
            except OSError:
                pass


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class TlsReceiver(Receiver):
    """The scripted receiver of tests.receivers, over HTTPS with a self-signed certificate."""

    def __init__(self, cert: tuple[Path, Path]) -> None:
        super().__init__()
        self.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ssl_context.load_cert_chain(*cert)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"
