"""The decoder processes behind ``LocalSpeechToText``: each one kept alive by its own task.

One task per process (``Worker.run``) owns it from spawn to reap, so no other code can find
it half stopped (issue 17, defect 3: ``stop`` used to clear the process while its reader was
still running, and a request submitted in that window hit an ``assert``). Requests never
touch a process directly: they wait in the ``FairQueue`` and a worker's task takes them one
piece at a time.

* One piece in flight per process: the task writes it, awaits ``drain()`` (back-pressure
  from the pipe lands on this task, never on the per-frame path that queued the request),
  and reads the reply. The parent never buffers more than one piece per process.
* Wedged = no reply ``wedged_after_s`` after a piece went out. Only then is the process
  killed and only that piece fails (``ProviderTimeout``: a request that wedges a decoder is
  not retried). A process that exits fails its piece as retryable; queued requests wait
  for the replacement, which the same task spawns.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
from collections.abc import Callable

from slotline.providers.errors import ProviderError, ProviderTimeout
from slotline.providers.stt import _sphinx_wire as wire
from slotline.providers.stt._sphinx_queue import PROVIDER, FairQueue, Job, fail

logger = logging.getLogger(__name__)

_REAP_TIMEOUT_S = 5.0  # a decode in progress finishes well within this after stdin closes
_RESPAWN_BACKOFF_S = (0.5, 10.0)  # first wait after a failed spawn, and the most it grows to


class WorkerState(enum.Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"


class Worker:
    """One decoder process and the task that feeds it."""

    def __init__(
        self,
        index: int,
        argv: list[str],
        *,
        startup_timeout_s: float,
        wedged_after_s: float,
        max_piece_bytes: int,
        request_ids: itertools.count[int],
    ) -> None:
        self.name = f"stt-local-worker-{index}"
        self._argv = argv
        self._startup_timeout_s = startup_timeout_s
        self._wedged_after_s = wedged_after_s
        self._max_piece_bytes = max_piece_bytes
        self._request_ids = request_ids
        self._process: asyncio.subprocess.Process | None = None
        self.state = WorkerState.STOPPED

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def spawn(self) -> None:
        """Start the process and wait for its models to load; ``ProviderError`` if it cannot."""
        self.state = WorkerState.STARTING
        process = await asyncio.create_subprocess_exec(
            *self._argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        self._process = process
        try:
            async with asyncio.timeout(self._startup_timeout_s):
                ready = await _read_message(process)
            if not isinstance(ready, wire.WorkerReady):
                raise wire.WireError(f"sent {type(ready).__name__} first")
        except (TimeoutError, asyncio.IncompleteReadError, wire.WireError) as exc:
            await self.reap(kill=True)
            raise ProviderError(
                PROVIDER,
                f"{self.name} failed to start: {type(exc).__name__}: {exc}",
                retryable=True,
            ) from exc
        except BaseException:
            await asyncio.shield(self.reap(kill=True))
            raise
        self.state = WorkerState.READY
        logger.info("%s ready pid=%d init_ms=%.0f", self.name, process.pid, ready.init_ms)

    async def run(
        self, queue: FairQueue, work: asyncio.Event, spawn_failed: Callable[[ProviderError], None]
    ) -> None:
        """Serve ``queue`` until cancelled, replacing the process whenever it dies or wedges."""
        backoff_s = _RESPAWN_BACKOFF_S[0]
        try:
            while True:
                process = self._process
                if process is None:
                    try:
                        await self.spawn()
                    except ProviderError as exc:
                        logger.error("%s", exc)
                        spawn_failed(exc)
                        await asyncio.sleep(backoff_s)
                        backoff_s = min(backoff_s * 2, _RESPAWN_BACKOFF_S[1])
                        continue
                    backoff_s = _RESPAWN_BACKOFF_S[0]
                    continue
                await self._serve(process, queue, work)
                await self.reap(kill=True)
        finally:
            await asyncio.shield(self.reap(kill=False))

    async def reap(self, *, kill: bool) -> None:
        """End the process: at once with ``kill``, else by closing its stdin (it exits after
        the decode in progress) and killing it if it has not exited within a few seconds."""
        process, self._process = self._process, None
        self.state = WorkerState.STOPPED
        if process is None:
            return
        if kill and process.returncode is None:
            process.kill()
        if process.stdin is not None:
            process.stdin.close()
        try:
            async with asyncio.timeout(_REAP_TIMEOUT_S):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _serve(
        self, process: asyncio.subprocess.Process, queue: FairQueue, work: asyncio.Event
    ) -> None:
        """Send pieces until the process has to be replaced (it exited or wedged)."""
        loop = asyncio.get_running_loop()
        while True:
            if process.returncode is not None:
                logger.error("%s exited while idle: returncode=%s", self.name, process.returncode)
                return  # nothing was taken from the queue: it waits for the replacement
            job = queue.pop(loop.time())
            if job is None:
                work.clear()
                await work.wait()
                continue
            try:
                replaced = await self._decode_piece(process, job)
            finally:
                queue.finish(job)
                if queue.has_work:
                    work.set()  # another worker may be idle
            if replaced:
                return

    async def _decode_piece(self, process: asyncio.subprocess.Process, job: Job) -> bool:
        """Send ``job``'s next piece and record the reply; True if the process must go."""
        end = job.next_piece_end(self._max_piece_bytes)
        request = wire.DecodeRequest(
            next(self._request_ids), job.pcm16[job.offset_bytes : end], job.phrases, job.grammar,
            job.consent,
        )
        try:
            async with asyncio.timeout(self._wedged_after_s):
                reply = await _exchange(process, request)
        except TimeoutError:
            logger.error(
                "%s wedged: no reply in %.0f s (call %s); killing it",
                self.name,
                self._wedged_after_s,
                job.call_key,
            )
            _fail_job(
                job,
                ProviderTimeout(PROVIDER, f"decoder gave no answer in {self._wedged_after_s:g} s"),
            )
            return True
        except (ConnectionError, asyncio.IncompleteReadError, wire.WireError) as exc:
            logger.error("%s lost: %s (call %s)", self.name, type(exc).__name__, job.call_key)
            _fail_job(job, ProviderError(PROVIDER, "decoder process exited", retryable=True))
            return True
        except BaseException:
            _fail_job(job, ProviderError(PROVIDER, "decoder stopped", retryable=True))
            raise
        if isinstance(reply, wire.DecodeFailed):
            _fail_job(job, ProviderError(PROVIDER, reply.message))
        elif not job.future.done():
            job.add_piece(reply, end)
            if job.finished:
                job.future.set_result(job.result(request.request_id))
        return False


def _fail_job(job: Job, error: ProviderError) -> None:
    if not job.future.done():
        fail(job.future, error)


async def _exchange(
    process: asyncio.subprocess.Process, request: wire.DecodeRequest
) -> wire.DecodeResult | wire.DecodeFailed:
    stdin = process.stdin
    if stdin is None:
        raise ConnectionResetError("no stdin")
    stdin.write(wire.encode(request))
    await stdin.drain()
    reply = await _read_message(process)
    if not isinstance(reply, wire.DecodeResult | wire.DecodeFailed):
        raise wire.WireError(f"expected a reply, got {type(reply).__name__}")
    if reply.request_id != request.request_id:
        raise wire.WireError(f"reply to {reply.request_id}, expected {request.request_id}")
    return reply


async def _read_message(process: asyncio.subprocess.Process) -> wire.Message:
    stdout = process.stdout
    if stdout is None:
        raise wire.WireError("no stdout")
    json_length, payload_length = wire.parse_header(await stdout.readexactly(wire.HEADER.size))
    body = await stdout.readexactly(json_length)
    payload = await stdout.readexactly(payload_length) if payload_length else b""
    return wire.decode(body, payload)
