"""Control sockets: JSON lines over UNIX stream sockets, between the runner and daemons.

Protocol (documented in docs/protocol.md): the client writes one JSON object per line,
``{"cmd": "<name>", ...}``; the daemon answers each with one line, ``{"ok": true, ...}`` or
``{"ok": false, "error": "<message>"}``. The server learns the caller's uid and pid from
SO_PEERCRED, so a daemon can apply policy per caller.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from odmm.errors import OdmmError
from odmm.eventloop import Loop

MAX_LINE = 1 << 20


def _sockaddr(path: str) -> str:
    """``@name`` is an abstract socket, scoped to the caller's network namespace."""
    return "\0" + path[1:] if path.startswith("@") else path


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int


class Deferred:
    """Returned by a handler whose answer comes later (e.g. after a network exchange)."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[dict], None]] = []
        self.result: dict | None = None

    def resolve(self, reply: dict) -> None:
        if self.result is not None:
            return
        self.result = reply
        for cb in self._callbacks:
            cb(reply)

    def then(self, cb: Callable[[dict], None]) -> None:
        if self.result is not None:
            cb(self.result)
        else:
            self._callbacks.append(cb)


Handler = Callable[[dict, Peer], "dict | Deferred"]


class ControlServer:
    """Serves ``handler(request, peer) -> reply`` on a UNIX socket inside a Loop."""

    def __init__(self, loop: Loop, path: str | Path, handler: Handler, mode: int = 0o666) -> None:
        self.loop = loop
        self.path = str(path)
        self.handler = handler
        self.abstract = self.path.startswith("@")
        if not self.abstract:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(_sockaddr(self.path))
        if not self.abstract:
            os.chmod(self.path, mode)
        self.sock.listen(64)
        self.sock.setblocking(False)
        loop.add_reader(self.sock, self._accept)
        self._buffers: dict[socket.socket, bytearray] = {}

    def _accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        self._buffers[conn] = bytearray()
        self.loop.add_reader(conn, lambda c=conn: self._read(c))

    def _close(self, conn: socket.socket) -> None:
        self.loop.remove_reader(conn)
        self._buffers.pop(conn, None)
        conn.close()

    def _read(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        buf = self._buffers[conn]
        buf += data
        if len(buf) > MAX_LINE:
            self._reply(conn, {"ok": False, "error": "request line too long"})
            self._close(conn)
            return
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            reply = self._dispatch(line, conn)
            if isinstance(reply, Deferred):
                reply.then(lambda r, c=conn: self._finish(c, r))
            else:
                self._reply(conn, reply)

    def _finish(self, conn: socket.socket, reply: dict) -> None:
        reply.setdefault("ok", True)
        if conn in self._buffers:
            self._reply(conn, reply)

    def _dispatch(self, line: bytes, conn: socket.socket) -> dict | Deferred:
        try:
            req = json.loads(line)
            if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
                return {"ok": False, "error": "a request is a JSON object with a string 'cmd'"}
        except ValueError as exc:
            return {"ok": False, "error": f"not JSON: {exc}"}
        pid, uid, gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        try:
            reply = self.handler(req, Peer(pid, uid, gid))
        except Exception as exc:  # the daemon keeps running; the caller learns why
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if not isinstance(reply, Deferred):
            reply.setdefault("ok", True)
        return reply

    @staticmethod
    def _reply(conn: socket.socket, reply: dict) -> None:
        data = (json.dumps(reply, default=str) + "\n").encode()
        try:
            conn.setblocking(True)
            conn.sendall(data)
            conn.setblocking(False)
        except OSError:
            pass

    def close(self) -> None:
        for conn in list(self._buffers):
            self._close(conn)
        self.loop.remove_reader(self.sock)
        self.sock.close()
        if not self.abstract:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


class ControlError(OdmmError):
    """The daemon is unreachable or answered with an error (``reply`` holds its answer)."""

    def __init__(self, message: str, reply: dict | None = None) -> None:
        super().__init__(message)
        self.reply = reply or {}


class ControlClient:
    """Blocking client; one connection, request/response in order."""

    def __init__(self, path: str | Path, timeout: float = 5.0, name: str | None = None) -> None:
        self.path = str(path)
        self.timeout = timeout
        self.name = name or Path(self.path).stem
        self.sock: socket.socket | None = None
        self._buf = b""

    def _connect(self) -> socket.socket:
        if self.sock is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            try:
                s.connect(_sockaddr(self.path))
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                s.close()
                raise ControlError(f"{self.name} is not running (no control socket at {self.path}: {exc.strerror})") from None
            self.sock = s
        return self.sock

    def call(self, cmd: str, **args) -> dict:
        sock = self._connect()
        try:
            sock.sendall((json.dumps({"cmd": cmd, **args}) + "\n").encode())
            while b"\n" not in self._buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ControlError(f"{self.name} closed the control connection (did it die?)")
                self._buf += chunk
        except TimeoutError:
            self.close()
            raise ControlError(f"{self.name} did not answer {cmd!r} within {self.timeout:g} s") from None
        except OSError as exc:
            self.close()
            raise ControlError(f"{self.name}: control connection failed: {exc}") from None
        line, _, self._buf = self._buf.partition(b"\n")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise ControlError(f"{self.name}: {cmd}: {reply.get('error', 'failed')}", reply)
        return reply

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self._buf = b""
