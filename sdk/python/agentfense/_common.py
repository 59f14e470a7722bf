"""Configuration and request building shared by the sync and async clients, so both send exactly the
same requests and raise exactly the same exceptions."""
from __future__ import annotations

import codecs
import os
import stat
import tarfile
from datetime import datetime, timedelta
from typing import Any, BinaryIO, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from . import _convert as cv
from ._proto import codebase_pb2, sandbox_pb2
from .exceptions import InvalidConfigurationError
from .types import (AccessDecision, Decision, DeltaQuota, ExecResult, OutputChunk, OutputType,
                    PermissionLike, ResourceLimits,
                    RuntimeType, SyncMode)

DEFAULT_ENDPOINT = "localhost:9000"
CHUNK = 64 * 1024  # the wire contract's upload chunk size
ARCHIVE_CHUNK = 1024 * 1024  # UploadArchive messages: many small files share one
MAX_MESSAGE = 256 * 1024 * 1024  # gRPC's 4 MiB default is too small for big exec outputs
DEFAULT_TIMEOUT = 30.0  # client deadline of every call that is not a command
EXEC_GRACE = 15.0  # a command's own timeout is enforced by the server; this covers transport

Content = Union[bytes, bytearray, memoryview, str]
OutputCallback = Callable[[str], Any]


def resolve_endpoint(endpoint: Optional[str]) -> str:
    ep = endpoint or os.environ.get("AGENTFENSE_ENDPOINT") or DEFAULT_ENDPOINT
    if not isinstance(ep, str) or not ep.strip() or any(c.isspace() for c in ep):
        raise InvalidConfigurationError(f"invalid endpoint {ep!r}; expected host:port")
    for scheme in ("grpc://", "http://", "dns:///"):
        if ep.startswith(scheme) and scheme != "dns:///":
            ep = ep[len(scheme):]
    return ep


def resolve_token(token: Optional[str]) -> Optional[str]:
    return token if token is not None else (os.environ.get("AGENTFENSE_TOKEN") or None)


def channel_options(extra: Optional[Sequence[Tuple[str, Any]]] = None) -> List[Tuple[str, Any]]:
    opts: List[Tuple[str, Any]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
    ]
    return opts + list(extra or [])


def metadata(token: Optional[str], extra: Optional[Dict[str, str]] = None) -> Optional[List[Tuple[str, str]]]:
    md: List[Tuple[str, str]] = []
    if token:
        md.append(("authorization", f"Bearer {token}"))
    for k, v in (extra or {}).items():
        md.append((k, v))
    return md or None


def need_id(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidConfigurationError(f"{name} must be a non-empty string, got {value!r}")
    return value


def exec_deadline(timeout: "float | timedelta | None") -> Optional[float]:
    if isinstance(timeout, timedelta):
        timeout = timeout.total_seconds()
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
        return float(timeout) + EXEC_GRACE
    return None  # invalid values are refused by the request builder


def create_sandbox_request(codebase_id: str, permissions: Optional[Iterable[PermissionLike]],
                           labels: Optional[Mapping[str, str]], expires_in: Optional[float],
                           runtime: "RuntimeType | str | None", image: Optional[str],
                           resources: Optional[ResourceLimits], sync_mode: "SyncMode | str | None",
                           network: bool, delta_quota: Optional[DeltaQuota],
                           env: Optional[Mapping[str, str]],
                           allow_net: Optional[Iterable[str]] = None,
                           ask_timeout: "float | timedelta | None" = None) -> "sandbox_pb2.CreateSandboxRequest":
    rules = egress_rules(allow_net)
    # `network` alone: every public destination; `allow_net`: only those (implies network); both:
    # every public destination plus those (docs/NETWORK.md). The server validates each rule.
    req = sandbox_pb2.CreateSandboxRequest(
        codebase_id=need_id("codebase_id", codebase_id), permissions=cv.rules_to_pb(permissions or []),
        labels=cv.str_map("labels", labels), runtime=cv.runtime_to_pb(runtime), image=image or "",
        sync_mode=cv.sync_to_pb(sync_mode), network=bool(network) or bool(rules),
        env=cv.str_map("env", env),
        egress=sandbox_pb2.EgressPolicy(allow=rules, any_public=bool(network) and bool(rules)))
    d = cv.duration(expires_in, "expires_in")
    if d is not None:
        req.expires_in.CopyFrom(d)
    r = cv.resources_to_pb(resources)
    if r is not None:
        req.resources.CopyFrom(r)
    q = cv.quota_to_pb(delta_quota)
    if q is not None:
        req.delta_quota.CopyFrom(q)
    a = cv.duration(ask_timeout, "ask_timeout")
    if a is not None:
        req.ask_timeout.CopyFrom(a)
    return req


def egress_rules(allow_net: Optional[Iterable[str]]) -> List[str]:
    """The rule strings of an `allow_net` argument ("github.com", "*.pypi.org:443", ...)."""
    if allow_net is None:
        return []
    if isinstance(allow_net, str):
        raise InvalidConfigurationError(
            f"allow_net must be a list of rules, not one string: use [{allow_net!r}]")
    rules = list(allow_net)
    for r in rules:
        if not isinstance(r, str) or not r:
            raise InvalidConfigurationError(f"allow_net entries must be non-empty strings, got {r!r}")
    return rules


def update_egress_request(sandbox_id: str, allow_net: Optional[Iterable[str]],
                          any_public: bool) -> "sandbox_pb2.UpdateEgressRequest":
    return sandbox_pb2.UpdateEgressRequest(
        sandbox_id=need_id("sandbox_id", sandbox_id),
        egress=sandbox_pb2.EgressPolicy(allow=egress_rules(allow_net), any_public=bool(any_public)))


def exec_request(sandbox_id: str, command: str, stdin: Optional[str], env: Optional[Mapping[str, str]],
                 workdir: Optional[str], timeout: Optional[float]) -> "sandbox_pb2.ExecRequest":
    if not isinstance(command, str) or not command.strip():
        raise InvalidConfigurationError(f"command must be a non-empty string, got {command!r}")
    req = sandbox_pb2.ExecRequest(sandbox_id=need_id("sandbox_id", sandbox_id), command=command,
                                  stdin=stdin or "", env=cv.str_map("env", env), workdir=workdir or "")
    d = cv.duration(timeout)
    if d is not None:
        req.timeout.CopyFrom(d)
    return req


def session_exec_request(session_id: str, command: str,
                         timeout: Optional[float]) -> "sandbox_pb2.SessionExecRequest":
    if not isinstance(command, str) or not command.strip():
        raise InvalidConfigurationError(f"command must be a non-empty string, got {command!r}")
    req = sandbox_pb2.SessionExecRequest(session_id=need_id("session_id", session_id), command=command)
    d = cv.duration(timeout)
    if d is not None:
        req.timeout.CopyFrom(d)
    return req


def audit_request(sandbox_id: Optional[str], kind: Optional[str], path_prefix: Optional[str],
                  since: Optional[datetime], until: Optional[datetime], page_size: int,
                  page_token: Optional[str]) -> "sandbox_pb2.GetAuditLogRequest":
    req = sandbox_pb2.GetAuditLogRequest(sandbox_id=sandbox_id or "", kind=kind or "",
                                         path_prefix=path_prefix or "", page_size=page_size,
                                         page_token=page_token or "")
    if since is not None:
        req.since.CopyFrom(cv.to_ts(since))
    if until is not None:
        req.until.CopyFrom(cv.to_ts(until))
    return req


def as_bytes(content: Content) -> bytes:
    if isinstance(content, str):
        return content.encode("utf-8")
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    raise InvalidConfigurationError(f"file content must be bytes or str, got {type(content).__name__}")


def upload_chunks(codebase_id: str, file_path: str, data: Optional[bytes] = None,
                  fobj: Optional[BinaryIO] = None, size: Optional[int] = None,
                  mode: Optional[int] = None) -> Iterator["codebase_pb2.UploadChunk"]:
    """One file's stream: metadata, then 64 KiB chunks of `data` or read from the open `fobj`
    (opened by the caller, so a missing local file fails before any call starts). `mode` travels in
    the metadata's `mode` extension field (servers without it ignore the unknown field)."""
    total = len(data) if data is not None else int(size or 0)
    yield codebase_pb2.UploadChunk(metadata=codebase_pb2.UploadChunk.Metadata(
        codebase_id=codebase_id, file_path=file_path, total_size=total,
        mode=(mode & 0o7777) if mode is not None else 0))
    if data is not None:
        for i in range(0, len(data), CHUNK):
            yield codebase_pb2.UploadChunk(data=data[i:i + CHUNK])
        return
    assert fobj is not None
    try:
        while True:
            block = fobj.read(CHUNK)
            if not block:
                return
            yield codebase_pb2.UploadChunk(data=block)
    finally:
        fobj.close()


class ArchiveStream:
    """The UploadArchive messages of a local file list: metadata, then the tar stream (POSIX
    ustar, pax records where a name needs them, built with tarfile.TarInfo) in ~1 MiB messages.
    Files are opened before their header is written (O_NOFOLLOW: a file swapped for a link since the
    walk is not followed) and read in pieces, never whole.

    A file that cannot be opened is left out and reported through `on_skip`. A local failure after a
    header was sent (a file that shrank) cannot be repaired in the stream: the stream then ends
    without the end-of-archive marker, so the server refuses the archive and stores nothing, and
    `error` says why. `stop()` ends the stream the same way (Ctrl-C)."""

    def __init__(self, codebase_id: str, files: Iterable[Any], on_file: Callable[[Any], Any],
                 on_skip: Callable[[Any, str], Any], stop: Any = None) -> None:
        self._codebase_id = codebase_id
        self._files = files
        self._on_file = on_file
        self._on_skip = on_skip
        self._stop = stop
        self.error: Optional[BaseException] = None

    def __iter__(self) -> Iterator["codebase_pb2.ArchiveChunk"]:
        yield codebase_pb2.ArchiveChunk(metadata=codebase_pb2.ArchiveChunk.Metadata(
            codebase_id=self._codebase_id))
        buf = bytearray()
        try:
            for f in self._files:
                if self._stop is not None and self._stop.is_set():
                    return
                try:
                    fd = os.open(f.abs_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
                except OSError as e:
                    self._on_skip(f, f"vanished or unreadable during upload: {e.strerror or e}")
                    continue
                try:
                    st = os.fstat(fd)
                    if not stat.S_ISREG(st.st_mode):
                        self._on_skip(f, "no longer a regular file; not uploaded")
                        continue
                    info = tarfile.TarInfo(f.rel)
                    info.size, info.mode, info.mtime = st.st_size, st.st_mode & 0o777, 0
                    buf += info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
                    left = st.st_size
                    while left:
                        block = os.read(fd, min(ARCHIVE_CHUNK, left))
                        if not block:
                            raise OSError(f"{f.rel} shrank while it was being uploaded "
                                          f"({st.st_size - left} of {st.st_size} bytes)")
                        buf += block
                        left -= len(block)
                        if len(buf) >= ARCHIVE_CHUNK:
                            yield codebase_pb2.ArchiveChunk(data=bytes(buf))
                            buf = bytearray()
                    buf += bytes((tarfile.BLOCKSIZE - st.st_size % tarfile.BLOCKSIZE) % tarfile.BLOCKSIZE)
                    f.size = st.st_size
                    self._on_file(f)
                finally:
                    os.close(fd)
        except Exception as e:  # noqa: BLE001 - reported by the caller once the call has failed
            self.error = e
            if buf:
                yield codebase_pb2.ArchiveChunk(data=bytes(buf))
            return
        buf += bytes(2 * tarfile.BLOCKSIZE)  # end of archive
        yield codebase_pb2.ArchiveChunk(data=bytes(buf))


class OutputCollector:
    """Turns ExecOutput messages into typed chunks, feeds callbacks with text decoded incrementally
    (a multi-byte character split across chunks is not mangled) and keeps the totals."""

    def __init__(self, command: str, on_stdout: Optional[OutputCallback],
                 on_stderr: Optional[OutputCallback]) -> None:
        self.command = command
        self.on_stdout = on_stdout
        self.on_stderr = on_stderr
        self.exit_code: Optional[int] = None
        self._out: List[bytes] = []
        self._err: List[bytes] = []
        self._dec = {OutputType.STDOUT: codecs.getincrementaldecoder("utf-8")("replace"),
                     OutputType.STDERR: codecs.getincrementaldecoder("utf-8")("replace")}

    def feed(self, msg: "sandbox_pb2.ExecOutput") -> Optional[OutputChunk]:
        if msg.HasField("exit_code"):
            self.exit_code = msg.exit_code
        if not msg.data:
            return None
        kind = cv.OUTPUT_FROM_PB.get(msg.type, OutputType.STDOUT)
        (self._out if kind == OutputType.STDOUT else self._err).append(msg.data)
        cb = self.on_stdout if kind == OutputType.STDOUT else self.on_stderr
        if cb is not None:
            text = self._dec[kind].decode(msg.data)
            if text:
                cb(text)
        return OutputChunk(kind, bytes(msg.data))

    @property
    def stdout_bytes(self) -> bytes:
        return b"".join(self._out)

    @property
    def stderr_bytes(self) -> bytes:
        return b"".join(self._err)

    def result(self) -> ExecResult:
        return ExecResult(stdout=self.stdout_bytes.decode("utf-8", "replace"),
                          stderr=self.stderr_bytes.decode("utf-8", "replace"),
                          exit_code=self.exit_code if self.exit_code is not None else -1,
                          command=self.command)


# ---- lenient ExecResult decoding ----
# ExecResult.stdout/stderr are proto `string`s, and a command's output is arbitrary bytes: a server
# that passes invalid UTF-8 through makes the generated parser reject the whole response (and the
# result of a command that already ran would be lost). We decode Exec/SessionExec responses with a
# twin message built at run time whose text fields are `bytes`, and replace invalid sequences.
def _lenient_exec_result_class() -> Any:
    from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2
    from google.protobuf import message_factory

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(duration_pb2.DESCRIPTOR.serialized_pb)
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="agentfense/lenient_exec.proto", package="agentfense.lenient",
                                             syntax="proto3", dependency=["google/protobuf/duration.proto"])
    m = fdp.message_type.add(name="ExecResultBytes")
    m.field.add(name="stdout", number=1, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    m.field.add(name="stderr", number=2, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    m.field.add(name="exit_code", number=3, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    m.field.add(name="duration", number=4, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                type_name=".google.protobuf.Duration")
    pool.Add(fdp)
    desc = pool.FindMessageTypeByName("agentfense.lenient.ExecResultBytes")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


_LenientExecResult: Any = None


def exec_result_from_bytes(data: bytes) -> "sandbox_pb2.ExecResult":
    # Always the twin: trying the strict parser first would make libprotobuf log an error per call.
    global _LenientExecResult
    if _LenientExecResult is None:
        _LenientExecResult = _lenient_exec_result_class()
    b = _LenientExecResult.FromString(data)
    out = sandbox_pb2.ExecResult(stdout=b.stdout.decode("utf-8", "replace"),
                                 stderr=b.stderr.decode("utf-8", "replace"), exit_code=b.exit_code)
    if b.HasField("duration"):
        out.duration.seconds, out.duration.nanos = b.duration.seconds, b.duration.nanos
    return out


EXEC_METHOD = "/sandbox.v1.SandboxService/Exec"
SESSION_EXEC_METHOD = "/sandbox.v1.SandboxService/SessionExec"


# ---- checkpoints and approvals ----
def checkpoint_request(kind: Any, sandbox_id: str, name: str) -> Any:
    if not isinstance(name, str) or not name:
        raise InvalidConfigurationError(f"checkpoint name must be a non-empty string, got {name!r}")
    return kind(sandbox_id=need_id("sandbox_id", sandbox_id), name=name)


def to_decision(value: Any) -> AccessDecision:
    """Normalizes what an on_access_request callback returned: an AccessDecision, a Decision (or its
    string value), True (allow) / False or None (deny)."""
    if isinstance(value, AccessDecision):
        return value
    if value is True:
        return AccessDecision(Decision.ALLOW)
    if value is None or value is False:
        return AccessDecision(Decision.DENY)
    try:
        return AccessDecision(Decision(value))
    except ValueError:
        raise InvalidConfigurationError(
            f"on_access_request returned {value!r}: expected an AccessDecision, a Decision, "
            "True or False") from None


def answer_request(sandbox_id: str, approval_id: str, decision: "AccessDecision | Decision | str | bool",
                   remember: Optional[str] = None, priority: Optional[int] = None,
                   answered_by: Optional[str] = None) -> "sandbox_pb2.AnswerApprovalRequest":
    d = to_decision(decision)
    req = sandbox_pb2.AnswerApprovalRequest(
        sandbox_id=need_id("sandbox_id", sandbox_id), approval_id=need_id("approval_id", approval_id),
        decision=cv.DECISION_TO_PB[d.decision], remember=remember if remember is not None else d.remember,
        answered_by=answered_by or "")
    prio = priority if priority is not None else d.priority
    if prio is not None:
        req.priority = int(prio)
    return req

