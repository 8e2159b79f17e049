"""TCP proxies for the interop suite, run on an asyncio loop in a background thread.

- FaultProxy: sits in front of a real Glance (REGION1) and injects faults into the responses of
  chosen images, by image id: a connection dropped after N body bytes, a stall, a flipped byte, a
  short body, 5xx answers, a garbled image JSON. Requests for other images pass untouched.
- RoundRobinProxy: a load balancer in front of several sidecar instances; connection i goes to
  backend i mod n, and every routed request line is recorded.

Both rely on the servers behind them answering one request per connection (uwsgi is run with
`Connection: close`; the sidecar honours a client's `Connection: close`), so the first request line of
a connection identifies what the whole connection carries.
"""
import asyncio
import logging
import re
import threading
import time

LOG = logging.getLogger("interop.netproxy")
FILE_PATH = re.compile(r"^/v2/images/([0-9a-fA-F-]{36})/file$")
IMAGE_PATH = re.compile(r"^/v2/images/([0-9a-fA-F-]{36})$")
RANGE = re.compile(rb"\r\nrange:\s*bytes=(\d+)-", re.IGNORECASE)
HEAD_LIMIT = 64 * 1024


class Fault:
    """What to do to an image's responses. `times` bounds how many connections get the fault
    (None: every one), so a transient fault clears after a few attempts.

    kind:
      drop     close both sides after `at` bytes of the image (absolute offset)
      stall    stop forwarding for `seconds` once `at` bytes went through, then carry on
      flip     invert the byte at absolute offset `at`
      short    end the body at `at` bytes but keep the connection open for `seconds`, then close
      status   answer `status` (e.g. 503) without asking the Glance behind
      badjson  answer 200 with a body that is not JSON to GET /v2/images/{id}
    """

    def __init__(self, kind, at=0, times=None, seconds=0.0, status=503):
        assert kind in ("drop", "stall", "flip", "short", "status", "badjson"), kind
        self.kind, self.at, self.times, self.seconds, self.status = kind, at, times, seconds, status
        self.applied = 0

    def take(self):
        if self.times is not None and self.applied >= self.times:
            return False
        self.applied += 1
        return True

    def __repr__(self):
        return "Fault(%s at=%s times=%s applied=%s)" % (self.kind, self.at, self.times, self.applied)


class _LoopThread:
    """An asyncio loop of its own in a daemon thread, with servers started on it."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = None

    def start_server(self, handler):
        async def start():
            return await asyncio.start_server(handler, "127.0.0.1", 0)

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        return self.server.sockets[0].getsockname()[1]

    def close(self):
        async def stop():
            self.server.close()
            await self.server.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


async def _read_head(reader):
    """The request or response head (up to the blank line), bounded."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ConnectionError("head over the limit")


async def _pump(reader, writer):
    try:
        while True:
            data = await reader.read(256 * 1024)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except (ConnectionError, OSError):
            pass


def _close(*writers):
    for w in writers:
        try:
            w.close()
        except (ConnectionError, OSError):
            pass


class FaultProxy:
    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.faults = {}  # image id -> Fault
        self.requests = []  # (method, path, range start or None)
        self._lt = _LoopThread()
        self.port = self._lt.start_server(self._handle)
        self.url = "http://127.0.0.1:%d" % self.port

    def set(self, image_id, fault):
        self.faults[image_id] = fault
        return fault

    def clear(self, image_id):
        self.faults.pop(image_id, None)

    def close(self):
        self._lt.close()

    def file_requests(self, image_id):
        return [r for r in self.requests if r[1] == "/v2/images/%s/file" % image_id]

    async def _handle(self, creader, cwriter):
        uwriter = None
        try:
            head = await _read_head(creader)
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            method, path = (parts[0], parts[1].split("?", 1)[0]) if len(parts) >= 2 else ("", "")
            m = RANGE.search(head)
            start = int(m.group(1)) if m else 0
            self.requests.append((method, path, start if m else None))
            fm = FILE_PATH.match(path)
            im = IMAGE_PATH.match(path)
            image_id = (fm or im).group(1) if (fm or im) else None
            fault = self.faults.get(image_id) if image_id else None
            if fault and fault.kind == "badjson" and not (im and method == "GET"):
                fault = None
            if fault and fault.kind != "badjson" and not (fm and method == "GET"):
                fault = None
            if fault and not fault.take():
                fault = None
            if fault:
                LOG.info("fault %s on %s %s (range start %s)", fault, method, path, start)
            if fault and fault.kind == "status":
                body = b'{"message": "injected fault"}'
                cwriter.write(b"HTTP/1.1 %d Injected\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                              % (fault.status, len(body), body))
                await cwriter.drain()
                return
            if fault and fault.kind == "badjson":
                body = b'{"id": "not quite json'
                cwriter.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
                await cwriter.drain()
                return
            ureader, uwriter = await asyncio.open_connection("127.0.0.1", self.upstream_port,
                                                             limit=HEAD_LIMIT)
            uwriter.write(head)
            up = asyncio.ensure_future(_pump(creader, uwriter))
            try:
                if fault is None:
                    await _pump(ureader, cwriter)
                else:
                    await self._faulty_response(ureader, cwriter, fault, start)
            finally:
                up.cancel()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            _close(cwriter, *( [uwriter] if uwriter else []))

    async def _faulty_response(self, ureader, cwriter, fault, start):
        head = await _read_head(ureader)
        cwriter.write(head)
        offset = start  # absolute image offset of the next body byte
        stalled = False
        while True:
            data = await ureader.read(64 * 1024)
            if not data:
                break
            end = offset + len(data)
            if fault.kind == "flip" and offset <= fault.at < end:
                i = fault.at - offset
                data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
            if fault.kind in ("drop", "short") and end >= fault.at:
                cwriter.write(data[:max(0, fault.at - offset)])
                await cwriter.drain()
                if fault.kind == "short":
                    await asyncio.sleep(fault.seconds)
                return  # both sides are closed by the caller
            if fault.kind == "stall" and not stalled and end >= fault.at:
                cut = max(0, fault.at - offset)
                cwriter.write(data[:cut])
                await cwriter.drain()
                await asyncio.sleep(fault.seconds)
                stalled = True
                data = data[cut:]
            cwriter.write(data)
            await cwriter.drain()
            offset = end


class RoundRobinProxy:
    def __init__(self, backend_ports):
        self.backends = list(backend_ports)
        self.routed = []  # (backend index, request line)
        self._next = 0
        self._lt = _LoopThread()
        self.port = self._lt.start_server(self._handle)
        self.url = "http://127.0.0.1:%d" % self.port

    def close(self):
        self._lt.close()

    def routed_to(self, method, path_part):
        return [i for i, line in self.routed if line.startswith(method + " ") and path_part in line]

    async def _handle(self, creader, cwriter):
        uwriter = None
        i = self._next % len(self.backends)
        self._next += 1
        try:
            head = await _read_head(creader)
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            self.routed.append((i, line))
            LOG.info("round robin: %s -> backend %d", line, i)
            ureader, uwriter = await asyncio.open_connection("127.0.0.1", self.backends[i],
                                                             limit=HEAD_LIMIT)
            uwriter.write(head)
            up = asyncio.ensure_future(_pump(creader, uwriter))
            try:
                await _pump(ureader, cwriter)
            finally:
                up.cancel()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            _close(cwriter, *([uwriter] if uwriter else []))


def wait_until(predicate, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)
