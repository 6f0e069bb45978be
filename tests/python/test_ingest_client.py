#!/usr/bin/env python3
"""Black-box test of the kpr gRPC ingest API with a Python client.

The test knows the server only through its contract: proto/kpr/v1/ingest.proto,
proto/kpr/v1/codes.proto and SPEC sections 1-4. It

* generates Python stubs from the repository's protos with grpc_tools.protoc,
* starts the real server binary (env KPR_BIN, default target/debug/kpr) as
  `kpr serve --data DIR --addr 127.0.0.1:PORT --allow-synthetic-ids`,
* waits for grpc.health.v1 to answer SERVING,
* drives IngestService.Append / AppendStream and server reflection,
* stops the server with SIGTERM and requires exit code 0,
* finally checks that no raw national id sent reached the data directory or the
  server's output (SPEC 1, "pseudonymisation at the door").

Run with the stdlib runner only:  python tests/python/test_ingest_client.py
(scripts/python-client-test.sh sets up the virtualenv and does that.)
A missing binary is a failure, never a skip. Set KPR_TEST_KEEP_TMP=1 to keep the
temp dir (stubs, data dir, server output) after a passing run.
"""

from __future__ import annotations

import atexit
import datetime as dt
import importlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO_ROOT / "proto"
PROTO_FILES = ["kpr/v1/codes.proto", "kpr/v1/events.proto", "kpr/v1/ingest.proto"]

RPC_TIMEOUT = 15.0  # seconds per call
STARTUP_TIMEOUT = 60.0  # seconds until health answers SERVING
SHUTDOWN_TIMEOUT = 30.0  # seconds after SIGTERM

MUNICIPALITY = "0301"  # Oslo
SOURCE_SYSTEM = "Gerica"
SOURCE_VERSION = "1.0"


def kpr_bin() -> Path:
    """Path of the server binary: $KPR_BIN, else target/debug/kpr under the repo root."""
    raw = os.environ.get("KPR_BIN")
    if raw:
        p = Path(raw)
        return p if p.is_absolute() else (Path.cwd() / p).resolve()
    return REPO_ROOT / "target" / "debug" / "kpr"


def require_binary() -> Path:
    binary = kpr_bin()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise RuntimeError(
            f"kpr binary not found or not executable: {binary}\n"
            "Build it first (cargo build -p kpr) or point KPR_BIN at it. "
            "This test fails instead of skipping."
        )
    return binary


# ---------------------------------------------------------------------------
# Synthetic national ids (SPEC 1): DDMMYYIIIKK, month + 80, two mod-11 controls.
# ---------------------------------------------------------------------------

W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def mod11_control(digits: list[int], weights: tuple[int, ...]) -> int | None:
    """The control digit for `digits`, or None when the remainder gives 10 (no valid digit)."""
    remainder = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
    control = 0 if remainder == 0 else 11 - remainder
    return None if control == 10 else control


def synthetic_national_id(birth: dt.date, rng: random.Random) -> str:
    """A valid synthetic test number (month + 80) for someone born 1900-1999."""
    if not 1900 <= birth.year <= 1999:
        raise ValueError("this helper uses individual numbers 000-499 (births 1900-1999)")
    prefix = f"{birth.day:02d}{birth.month + 80:02d}{birth.year % 100:02d}"
    individuals = list(range(0, 500))
    rng.shuffle(individuals)
    for individual in individuals:
        digits = [int(c) for c in f"{prefix}{individual:03d}"]
        k1 = mod11_control(digits, W1)
        if k1 is None:
            continue
        k2 = mod11_control(digits + [k1], W2)
        if k2 is None:
            continue
        return "".join(str(d) for d in digits + [k1, k2])
    raise AssertionError(f"no individual number gives valid controls for {birth}")


def national_id_controls_hold(nid: str) -> bool:
    """Independent check of both control digits (classic rule only)."""
    if not re.fullmatch(r"\d{11}", nid):
        return False
    digits = [int(c) for c in nid]
    return mod11_control(digits[:9], W1) == digits[9] and mod11_control(digits[:10], W2) == digits[10]


def corrupt_last_digit(nid: str) -> str:
    return nid[:10] + str((int(nid[10]) + 1) % 10)


# ---------------------------------------------------------------------------
# Generated stubs and the server process (module fixtures).
# ---------------------------------------------------------------------------

pb = None  # kpr.v1.ingest_pb2
codes = None  # kpr.v1.codes_pb2
ingest_grpc = None  # kpr.v1.ingest_pb2_grpc
grpc = None
health_pb2 = None
health_pb2_grpc = None
rpc_status = None
error_details_pb2 = None
reflection_pb2 = None
descriptor_pb2 = None

SERVER: "ServerProcess | None" = None
RNG = random.Random(int.from_bytes(os.urandom(8), "big"))
SENT_NATIONAL_IDS: set[str] = set()  # every raw id put on the wire, valid or not


def generate_and_import_stubs(out_dir: Path) -> None:
    global pb, codes, ingest_grpc, grpc, health_pb2, health_pb2_grpc
    global rpc_status, error_details_pb2, reflection_pb2, descriptor_pb2
    import importlib.resources

    import grpc as grpc_mod
    from grpc_tools import protoc

    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *PROTO_FILES,
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed with exit code {rc}: {' '.join(args)}")
    sys.path.insert(0, str(out_dir))
    importlib.invalidate_caches()

    grpc = grpc_mod
    pb = importlib.import_module("kpr.v1.ingest_pb2")
    codes = importlib.import_module("kpr.v1.codes_pb2")
    ingest_grpc = importlib.import_module("kpr.v1.ingest_pb2_grpc")
    importlib.import_module("kpr.v1.events_pb2")  # must at least compile and load
    from google.protobuf import descriptor_pb2 as descriptor_mod
    from google.rpc import error_details_pb2 as error_details_mod
    from grpc_health.v1 import health_pb2 as health_mod
    from grpc_health.v1 import health_pb2_grpc as health_grpc_mod
    from grpc_reflection.v1alpha import reflection_pb2 as reflection_mod
    from grpc_status import rpc_status as rpc_status_mod

    health_pb2, health_pb2_grpc = health_mod, health_grpc_mod
    rpc_status, error_details_pb2 = rpc_status_mod, error_details_mod
    reflection_pb2, descriptor_pb2 = reflection_mod, descriptor_mod


# ---------------------------------------------------------------------------
# TLS and tokens made here, as a deployment's own CA and identity provider would:
# the server trusts this issuer's JWKS (--auth-jwks), not its own local issuer.
# ---------------------------------------------------------------------------

ISSUER = "https://helseid-sts.test.example"
AUDIENCE = "kpr"
ORG_OSLO = "958935420"  # Oslo kommune (refdata/kommune_organisasjonsnummer.csv)
ORG_BERGEN = "964338531"  # Bergen kommune


class Pki:
    """A CA, a server certificate for 127.0.0.1, an ES256 issuer key and its JWKS."""

    def __init__(self, workdir: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        import ipaddress

        now = dt.datetime.now(dt.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "python test CA")])
        ca = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
            .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_pem = ca.public_bytes(serialization.Encoding.PEM)
        self.cert = workdir / "server.pem"
        self.key = workdir / "server.key"
        self.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        os.chmod(self.key, 0o600)
        self.signing_key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "python-test-key-1"
        numbers = self.signing_key.public_key().public_numbers()
        jwk = {"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
               "x": b64url(numbers.x.to_bytes(32, "big")), "y": b64url(numbers.y.to_bytes(32, "big"))}
        self.jwks_text = json.dumps({"keys": [jwk]})
        self.jwks = workdir / "jwks.json"
        self.jwks.write_text(self.jwks_text)

    def token(self, org: str | None = ORG_OSLO, scope: str = "kpr:ingest", *, iss: str = ISSUER,
              aud: str = AUDIENCE, exp_in: int = 600, key=None, kid: str | None = None) -> str:
        import jwt

        now = int(time.time())
        claims = {"iss": iss, "aud": aud, "iat": now, "nbf": now - 5, "exp": now + exp_in,
                  "client_id": "python-ehr", "scope": scope, "jti": str(uuid.uuid4())}
        if org is not None:
            claims["helseid://claims/client/claims/orgnr_parent"] = org
        return jwt.encode(claims, key or self.signing_key, algorithm="ES256",
                          headers={"kid": kid or self.kid, "typ": "at+jwt"})


def b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict, claims: dict, secret: bytes | None) -> str:
    """A JWT built by hand: `alg: none` (no signature) or HS256 with `secret`."""
    import hashlib
    import hmac

    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


PKI: "Pki | None" = None


class _Bearer:
    """Adds the Oslo ingest token to every call that carries none (the EHR's client)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def _details(self, details):
        metadata = list(details.metadata or [])
        if not any(k == "authorization" for k, _ in metadata):
            metadata.append(("authorization", f"Bearer {self.token}"))
        return details._replace(metadata=metadata)


def bearer_interceptor(token: str):
    import collections

    class Details(collections.namedtuple("Details", ("method", "timeout", "metadata", "credentials",
                                                      "wait_for_ready", "compression")),
                  grpc.ClientCallDetails):
        pass

    class Interceptor(_Bearer, grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor,
                      grpc.UnaryStreamClientInterceptor, grpc.StreamUnaryClientInterceptor):
        def _go(self, continuation, details, request):
            d = Details(details.method, details.timeout, details.metadata, details.credentials,
                        getattr(details, "wait_for_ready", None), getattr(details, "compression", None))
            return continuation(self._details(d), request)

        intercept_unary_unary = _go
        intercept_stream_stream = _go
        intercept_unary_stream = _go
        intercept_stream_unary = _go

    return Interceptor(token)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`kpr serve` in a temp dir with TLS and an external token issuer, talked to over a
    TLS channel whose calls carry an Oslo ingest token (`raw_channel` carries none)."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.stdout_path = workdir / "server.stdout"
        self.stderr_path = workdir / "server.stderr"
        self.proc: subprocess.Popen | None = None
        self.channel = None
        self.addr = ""
        self.health_service = ""

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.stderr_path, self.stdout_path):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()
                parts.append(f"--- {path.name} (last {lines} lines) ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def start(self) -> None:
        # Only the command line configures the server under test; plain-text logs.
        env = {k: v for k, v in os.environ.items() if not k.startswith("KPR_")}
        env["NO_COLOR"] = "1"
        for attempt in range(3):
            self.addr = f"127.0.0.1:{free_port()}"
            cmd = [
                str(self.binary), "serve",
                "--data", str(self.data_dir),
                "--addr", self.addr,
                "--allow-synthetic-ids",
                "--tls-cert", str(PKI.cert), "--tls-key", str(PKI.key),
                "--auth-jwks", str(PKI.jwks), "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE,
                "--stats-addr", f"127.0.0.1:{free_port()}", "--admin-addr", f"127.0.0.1:{free_port()}",
            ]
            with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                    preexec_fn=_die_with_parent,
                )
            atexit.register(self.kill)  # no orphaned server if this process dies early
            try:
                self._wait_serving()
                return
            except _EarlyExit as e:
                # Another process may have taken the free port between probe and bind.
                if "listen" in e.log.lower() and attempt < 2:
                    continue
                raise RuntimeError(f"kpr serve exited early with code {e.code}:\n{e.log}") from None

    def _wait_serving(self) -> None:
        assert self.proc is not None
        credentials = grpc.ssl_channel_credentials(root_certificates=PKI.ca_pem)
        self.raw_channel = grpc.secure_channel(self.addr, credentials)
        self.channel = grpc.intercept_channel(self.raw_channel, bearer_interceptor(PKI.token()))
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last = "no answer yet"
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self.channel.close()
                raise _EarlyExit(code, self.log_tail())
            for name in ("", "kpr.v1.IngestService"):
                try:
                    resp = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=1.0)
                except grpc.RpcError as e:
                    last = f"health({name!r}): {e.code().name} {e.details()}"
                    continue
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    self.health_service = name
                    return
                last = f"health({name!r}): {health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)}"
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"kpr serve at {self.addr} not SERVING after {STARTUP_TIMEOUT}s ({last})\n{self.log_tail()}")

    def stop(self) -> int:
        """SIGTERM, wait, return the exit code (kills and raises on a hang)."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if getattr(self, "raw_channel", None) is not None:
            self.raw_channel.close()
            self.raw_channel = None
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"kpr serve did not exit within {SHUTDOWN_TIMEOUT}s of SIGTERM\n{self.log_tail()}")
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the test process dies (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 (best effort; atexit covers normal exits)
        pass


class _EarlyExit(Exception):
    def __init__(self, code: int, log: str) -> None:
        super().__init__(code)
        self.code = code
        self.log = log


WORKDIR: Path | None = None


def setUpModule() -> None:  # noqa: N802 (unittest name)
    global SERVER, WORKDIR, PKI
    binary = require_binary()
    WORKDIR = Path(tempfile.mkdtemp(prefix="kpr-python-client-"))
    stubs = WORKDIR / "stubs"
    stubs.mkdir()
    generate_and_import_stubs(stubs)
    PKI = Pki(WORKDIR)
    server = ServerProcess(binary, WORKDIR)
    try:
        server.start()
    except BaseException:
        server.kill()
        print(f"kpr serve did not come up; its output is kept in {WORKDIR}", file=sys.stderr)
        raise
    SERVER = server
    print(
        f"\nkpr serve up at {SERVER.addr} (health service {SERVER.health_service!r}), data {SERVER.data_dir}",
        file=sys.stderr,
    )


def tearDownModule() -> None:  # noqa: N802
    global SERVER
    if SERVER is None:
        return
    server, SERVER = SERVER, None
    code = server.stop()
    problems = []
    if code != 0:
        problems.append(f"kpr serve exited with code {code} after SIGTERM, expected 0\n{server.log_tail()}")
    leaks = scan_for_raw_ids(server)
    if leaks:
        problems.append("raw national ids found (SPEC 1 says they must never be stored or logged):\n" + "\n".join(leaks))
    if problems:
        print(f"keeping {WORKDIR} for inspection", file=sys.stderr)
        raise AssertionError("\n".join(problems))
    if WORKDIR is not None and not os.environ.get("KPR_TEST_KEEP_TMP"):
        shutil.rmtree(WORKDIR, ignore_errors=True)


def scan_for_raw_ids(server: ServerProcess) -> list[str]:
    """Every file of the data dir plus the server's stdout/stderr, searched for every id sent."""
    needles = {nid.encode() for nid in SENT_NATIONAL_IDS}
    files = [server.stdout_path, server.stderr_path]
    files += [p for p in server.data_dir.rglob("*") if p.is_file()]
    leaks = []
    for path in files:
        blob = path.read_bytes()
        for needle in needles:
            if needle in blob:
                leaks.append(f"{path}: contains a raw id ({needle.decode()[:6]}…)")
    return leaks


# ---------------------------------------------------------------------------
# Event builders.
# ---------------------------------------------------------------------------

def iso(d: dt.date) -> str:
    return d.isoformat()


TODAY = dt.date.today()


def days_ago(n: int) -> str:
    return iso(TODAY - dt.timedelta(days=n))


def new_person() -> str:
    birth = dt.date(1942, 5, 15) + dt.timedelta(days=RNG.randrange(0, 365 * 20))
    nid = synthetic_national_id(birth, RNG)
    SENT_NATIONAL_IDS.add(nid)
    return nid


def new_service_id() -> str:
    return f"S-{uuid.uuid4().hex[:12]}"


def make_event(national_id: str, service_id: str | None, **payload) -> "pb.Event":
    """One event for Oslo from Gerica 1.0; `payload` is one keyword: kind=message."""
    (kind, message), = payload.items()
    SENT_NATIONAL_IDS.add(national_id)
    event = pb.Event(
        event_id=str(uuid.uuid4()),
        municipality=MUNICIPALITY,
        source_system=SOURCE_SYSTEM,
        source_version=SOURCE_VERSION,
        person=pb.Person(national_id=national_id),
        payload=pb.Payload(**{kind: message}),
    )
    if service_id is not None:
        event.service_id = service_id
    event.recorded_at.GetCurrentTime()
    return event


def applied(nid: str, sid: str, code: str = "15", date: str | None = None) -> "pb.Event":
    return make_event(nid, sid, service_applied=pb.ServiceApplied(code=code, application_date=date or days_ago(90)))


def decided(nid: str, sid: str, hours: float = 5.5, code: str = "15",
            outcome: int | None = None) -> "pb.Event":
    return make_event(nid, sid, service_decided=pb.ServiceDecided(
        code=code,
        outcome=codes.DECISION_OUTCOME_GRANTED if outcome is None else outcome,
        decision_date=days_ago(80),
        valid_from=days_ago(70),
        hours_per_week=hours,
    ))


def started(nid: str, sid: str) -> "pb.Event":
    return make_event(nid, sid, service_started=pb.ServiceStarted(start_date=days_ago(70)))


def service_lifecycle(nid: str | None = None) -> list:
    nid = nid or new_person()
    sid = new_service_id()
    return [applied(nid, sid), decided(nid, sid), started(nid, sid)]


# ---------------------------------------------------------------------------
# Tests.
# ---------------------------------------------------------------------------

class IngestApiTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls) -> None:
        assert SERVER is not None and SERVER.channel is not None
        cls.stub = ingest_grpc.IngestServiceStub(SERVER.channel)

    # -- helpers -----------------------------------------------------------

    def append(self, events) -> "pb.AppendResponse":
        return self.stub.Append(pb.AppendRequest(events=list(events)), timeout=RPC_TIMEOUT)

    def append_refused(self, events, expected_code):
        """Append that must fail with `expected_code`; returns (error, google.rpc.Status)."""
        with self.assertRaises(grpc.RpcError) as cm:
            resp = self.append(events)
            self.fail(f"expected {expected_code.name}, got acks {resp}")  # pragma: no cover
        err = cm.exception
        self.assertEqual(err.code(), expected_code, f"status message: {err.details()!r}")
        status = rpc_status.from_call(err)
        self.assertIsNotNone(status, f"{err.code().name} without google.rpc.Status details: {err.details()!r}")
        return err, status

    @staticmethod
    def unpack(status, message_type):
        found = []
        for detail in status.details:
            if detail.Is(message_type.DESCRIPTOR):
                msg = message_type()
                detail.Unpack(msg)
                found.append(msg)
        return found

    def field_violations(self, status) -> list:
        bad = self.unpack(status, error_details_pb2.BadRequest)
        self.assertTrue(bad, f"no google.rpc.BadRequest in details: {list(d.type_url for d in status.details)}")
        return [v for b in bad for v in b.field_violations]

    def assert_field_violation(self, status, field: str):
        violations = self.field_violations(status)
        matching = [v for v in violations if v.field == field]
        self.assertTrue(
            matching,
            f"no violation on {field!r}; got {[(v.field, v.description) for v in violations]}",
        )
        for v in matching:
            self.assertTrue(v.description.strip(), f"empty description for {field}")
        return matching

    def assert_acked(self, resp, events, duplicate: bool):
        self.assertEqual(len(resp.acks), len(events), resp)
        for ack, ev in zip(resp.acks, events):
            self.assertEqual(ack.event_id, ev.event_id, "acks must be in request order")
            self.assertEqual(ack.duplicate, duplicate, ack)

    # -- 0. the id helper itself ---------------------------------------------

    def test_00_synthetic_id_helper(self):
        nid = synthetic_national_id(dt.date(1942, 5, 15), random.Random(1))
        self.assertEqual(nid[:6], "158542")
        self.assertTrue(0 <= int(nid[6:9]) <= 499)
        self.assertTrue(national_id_controls_hold(nid))
        self.assertFalse(national_id_controls_hold(corrupt_last_digit(nid)))
        # Weighted sums of a full valid number are 0 mod 11 under both weight sets.
        digits = [int(c) for c in nid]
        self.assertEqual(sum(d * w for d, w in zip(digits[:10], W1 + (1,))) % 11, 0)
        self.assertEqual(sum(d * w for d, w in zip(digits, W2 + (1,))) % 11, 0)

    # -- (a) ------------------------------------------------------------------

    def test_a_lifecycle_batch_is_acked_in_order(self):
        events = service_lifecycle()
        resp = self.append(events)
        self.assert_acked(resp, events, duplicate=False)
        partitions = {a.partition for a in resp.acks}
        self.assertEqual(len(partitions), 1, f"one person, one municipality, one partition: {resp}")
        offsets = [a.offset for a in resp.acks]
        self.assertTrue(all(x < y for x, y in zip(offsets, offsets[1:])), f"offsets not increasing: {offsets}")

    # -- (b) ------------------------------------------------------------------

    def test_b_resent_batch_gets_original_positions(self):
        events = service_lifecycle()
        first = self.append(events)
        self.assert_acked(first, events, duplicate=False)
        again = self.append(events)
        self.assert_acked(again, events, duplicate=True)
        self.assertEqual(
            [(a.partition, a.offset) for a in again.acks],
            [(a.partition, a.offset) for a in first.acks],
        )

    # -- (c) ------------------------------------------------------------------

    def test_c_same_event_id_different_content_is_refused(self):
        nid, sid = new_person(), new_service_id()
        original = applied(nid, sid, date=days_ago(30))
        self.assert_acked(self.append([original]), [original], duplicate=False)
        changed = pb.Event()
        changed.CopyFrom(original)
        changed.payload.service_applied.application_date = days_ago(31)
        err, status = self.append_refused([changed], grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(status.code, grpc.StatusCode.INVALID_ARGUMENT.value[0])
        self.assert_field_violation(status, "events[0].event_id")
        # The original is untouched: resending it is still a duplicate.
        self.assert_acked(self.append([original]), [original], duplicate=True)

    # -- (d) ------------------------------------------------------------------

    def test_d_bad_national_id_refuses_whole_batch(self):
        good_nid = new_person()
        bad_nid = corrupt_last_digit(new_person())
        SENT_NATIONAL_IDS.add(bad_nid)
        self.assertFalse(national_id_controls_hold(bad_nid))
        first = applied(good_nid, new_service_id())
        second = applied(bad_nid, new_service_id())
        err, status = self.append_refused([first, second], grpc.StatusCode.INVALID_ARGUMENT)
        matching = self.assert_field_violation(status, "events[1].person.national_id")
        # The raw id must appear nowhere in the error (SPEC 1).
        texts = [err.details() or "", status.message] + [
            f"{v.field} {v.description}" for v in self.field_violations(status)
        ]
        for text in texts:
            for nid in (bad_nid, good_nid):
                self.assertNotIn(nid, text, "raw national id echoed in an error")
            self.assertIsNone(re.search(r"\d{11}", text), f"11-digit number in error text: {text!r}")
        for v in matching:
            self.assertNotIn(bad_nid[:6], v.description, "birth date digits of the id echoed")
        # Only the bad event is blamed.
        self.assertFalse([v for v in self.field_violations(status) if v.field.startswith("events[0]")])
        # Atomicity: event 0 was not stored, so alone it is new.
        alone = self.append([first])
        self.assert_acked(alone, [first], duplicate=False)

    # -- (e) ------------------------------------------------------------------

    def test_e_hours_out_of_range(self):
        event = decided(new_person(), new_service_id(), hours=200.0)
        _, status = self.append_refused([event], grpc.StatusCode.INVALID_ARGUMENT)
        self.assert_field_violation(status, "events[0].payload.service_decided.hours_per_week")

    def test_e_many_violations_reach_grpcio_as_the_refusal(self):
        # grpcio refuses trailers above its default metadata limit; 60 violations
        # with long descriptions must still arrive as INVALID_ARGUMENT with details.
        events = [decided(new_person(), new_service_id(), hours=1e308) for _ in range(60)]
        for event in events:
            event.source_version = "v" * 129
        err, status = self.append_refused(events, grpc.StatusCode.INVALID_ARGUMENT)
        violations = self.field_violations(status)
        self.assertTrue(0 < len(violations) < 120, len(violations))
        self.assertIn("the details list the first", err.details())

    # -- (f) ------------------------------------------------------------------

    def test_f_unknown_service_code(self):
        event = applied(new_person(), new_service_id(), code="30")
        _, status = self.append_refused([event], grpc.StatusCode.INVALID_ARGUMENT)
        self.assert_field_violation(status, "events[0].payload.service_applied.code")

    def test_f_retired_service_code_names_successor(self):
        event = applied(new_person(), new_service_id(), code="12")
        _, status = self.append_refused([event], grpc.StatusCode.INVALID_ARGUMENT)
        matching = self.assert_field_violation(status, "events[0].payload.service_applied.code")
        self.assertTrue(
            any("29" in v.description for v in matching),
            f"retired code 12 should name 29 as successor: {[v.description for v in matching]}",
        )

    # -- (g) ------------------------------------------------------------------

    def test_g_start_without_decision_is_failed_precondition(self):
        event = started(new_person(), new_service_id())
        err, status = self.append_refused([event], grpc.StatusCode.FAILED_PRECONDITION)
        failures = self.unpack(status, error_details_pb2.PreconditionFailure)
        self.assertTrue(failures, f"no google.rpc.PreconditionFailure in details: {[d.type_url for d in status.details]}")
        violations = [v for f in failures for v in f.violations]
        matching = [v for v in violations if v.type == "START_NEEDS_GRANTED_DECISION"]
        self.assertTrue(matching, f"violations: {[(v.type, v.subject, v.description) for v in violations]}")
        self.assertTrue(all("events[0]" in v.subject for v in matching),
                        f"subject should name events[0]: {[v.subject for v in matching]}")
        # Nothing stored: the same request is refused again, not acked as a duplicate.
        self.append_refused([event], grpc.StatusCode.FAILED_PRECONDITION)

    # -- (h) ------------------------------------------------------------------

    def test_h_append_stream_answers_each_batch_in_order(self):
        batch0 = service_lifecycle()
        bad_nid = corrupt_last_digit(new_person())
        SENT_NATIONAL_IDS.add(bad_nid)
        batch1 = [applied(bad_nid, new_service_id())]
        batch2 = service_lifecycle()
        requests = [pb.AppendRequest(events=b) for b in (batch0, batch1, batch2)]
        responses = list(self.stub.AppendStream(iter(requests), timeout=RPC_TIMEOUT))
        self.assertEqual([r.batch_index for r in responses], [0, 1, 2], responses)
        self.assertEqual([r.WhichOneof("result") for r in responses], ["appended", "rejected", "appended"])
        self.assert_acked(responses[0].appended, batch0, duplicate=False)
        self.assert_acked(responses[2].appended, batch2, duplicate=False)
        rejection = responses[1].rejected
        self.assertEqual(rejection.code, 3, rejection)
        self.assertTrue(rejection.field_violations, rejection)
        fields = [(v.event_index, v.field) for v in rejection.field_violations]
        self.assertIn((0, "events[0].person.national_id"), fields)
        for text in [rejection.message] + [v.description for v in rejection.field_violations]:
            self.assertNotIn(bad_nid, text)
        # Both accepted batches are really stored: unary resend sees duplicates.
        self.assert_acked(self.append(batch0), batch0, duplicate=True)
        self.assert_acked(self.append(batch2), batch2, duplicate=True)

    # -- (i) ------------------------------------------------------------------

    def reflection_call(self, requests):
        # grpcio-reflection ships only the v1alpha messages; v1 is wire-identical
        # (same fields and numbers, only the package differs), so call the v1 method
        # path with them.
        method = SERVER.channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        return list(method(iter(requests), timeout=RPC_TIMEOUT))

    def test_i_reflection_v1_lists_services(self):
        (resp,) = self.reflection_call([reflection_pb2.ServerReflectionRequest(list_services="")])
        self.assertEqual(resp.WhichOneof("message_response"), "list_services_response", resp)
        names = {s.name for s in resp.list_services_response.service}
        self.assertIn("kpr.v1.IngestService", names)
        self.assertIn("grpc.health.v1.Health", names)

    def test_i_reflection_v1_describes_ingest_service(self):
        (resp,) = self.reflection_call(
            [reflection_pb2.ServerReflectionRequest(file_containing_symbol="kpr.v1.IngestService")]
        )
        self.assertEqual(resp.WhichOneof("message_response"), "file_descriptor_response", resp)
        files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                 for b in resp.file_descriptor_response.file_descriptor_proto]
        services = {(f.package, s.name): {m.name for m in s.method} for f in files for s in f.service}
        self.assertEqual(services.get(("kpr.v1", "IngestService")), {"Append", "AppendStream"})

    def test_i_reflection_v1alpha_lists_services_to_grpcio_reflection(self):
        # grpcio-reflection's own client (as grpcurl 1.8) speaks only v1alpha.
        from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
            ProtoReflectionDescriptorDatabase,
        )
        database = ProtoReflectionDescriptorDatabase(SERVER.channel)
        names = set(database.get_services())
        self.assertIn("kpr.v1.IngestService", names)
        self.assertIn("grpc.health.v1.Health", names)
        described = database.FindFileContainingSymbol("kpr.v1.IngestService")
        self.assertEqual(described.package, "kpr.v1")

    # -- (j) ------------------------------------------------------------------

    def test_j_impossible_calendar_date(self):
        event = applied(new_person(), new_service_id(), date="2023-02-30")
        _, status = self.append_refused([event], grpc.StatusCode.INVALID_ARGUMENT)
        self.assert_field_violation(status, "events[0].payload.service_applied.application_date")


class TrustTest(unittest.TestCase):
    """Who may write: TLS, tokens of the configured issuer, the municipality binding."""

    @classmethod
    def setUpClass(cls) -> None:
        assert SERVER is not None and SERVER.raw_channel is not None
        cls.stub = ingest_grpc.IngestServiceStub(SERVER.raw_channel)

    def refused(self, token: str | None, events, code):
        metadata = [] if token is None else [("authorization", f"Bearer {token}")]
        with self.assertRaises(grpc.RpcError) as caught:
            self.stub.Append(pb.AppendRequest(events=list(events)), metadata=metadata, timeout=RPC_TIMEOUT)
        self.assertEqual(caught.exception.code(), code, caught.exception.details())
        return caught.exception

    def health_event(self) -> "pb.Event":
        return make_event(new_person(), None, health_check=pb.HealthCheck(
            kind=codes.HEALTH_CHECK_KIND_PHYSICIAN, date=days_ago(1)))

    def log_bytes(self) -> dict:
        time.sleep(1.0)  # past sled's flush interval, so nothing is pending
        log = SERVER.data_dir / "log"
        return {p: p.read_bytes() for p in sorted(log.rglob("*")) if p.is_file()}

    def test_t_no_token_is_unauthenticated(self):
        error = self.refused(None, [self.health_event()], grpc.StatusCode.UNAUTHENTICATED)
        self.assertIn("no access token", error.details())

    def test_t_bad_tokens_are_unauthenticated(self):
        from cryptography.hazmat.primitives.asymmetric import ec

        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "client_id": "python-ehr",
                  "scope": "kpr:ingest", "helseid://claims/client/claims/orgnr_parent": ORG_OSLO}
        hs_header = {"alg": "HS256", "typ": "at+jwt", "kid": PKI.kid}
        bad = {
            "expired": PKI.token(exp_in=-3600),
            "wrong audience": PKI.token(aud="another-api"),
            "wrong issuer": PKI.token(iss="https://evil.example"),
            "alg none": unsigned_token({"alg": "none", "typ": "at+jwt", "kid": PKI.kid}, claims, None),
            "HMAC-signed": unsigned_token(hs_header, claims, b"secret"),
            "HMAC keyed with the public JWKS": unsigned_token(hs_header, claims, PKI.jwks_text.encode()),
            "foreign key, same kid": PKI.token(key=ec.generate_private_key(ec.SECP256R1())),
            "garbage": "not.a.jwt",
        }
        for name, token in bad.items():
            with self.subTest(token=name):
                self.refused(token, [self.health_event()], grpc.StatusCode.UNAUTHENTICATED)

    def test_t_another_municipality_is_denied_and_nothing_is_stored(self):
        events = [self.health_event(), self.health_event()]
        before = self.log_bytes()
        error = self.refused(PKI.token(org=ORG_BERGEN), events, grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("4601", error.details())
        self.assertIn("0301", error.details())
        # A statistics token cannot write either.
        self.refused(PKI.token(scope="kpr:statistics"), events, grpc.StatusCode.PERMISSION_DENIED)
        after = self.log_bytes()
        self.assertEqual(before.keys(), after.keys())
        for path in before:
            self.assertEqual(before[path], after[path], f"{path} changed")
        # The same events with Oslo's token are new: the refusals stored nothing.
        response = self.stub.Append(pb.AppendRequest(events=events), timeout=RPC_TIMEOUT,
                                    metadata=[("authorization", f"Bearer {PKI.token()}")])
        self.assertEqual([a.duplicate for a in response.acks], [False, False])

    def test_t_plaintext_gets_nothing_from_the_tls_listener(self):
        channel = grpc.insecure_channel(SERVER.addr)
        try:
            stub = ingest_grpc.IngestServiceStub(channel)
            with self.assertRaises(grpc.RpcError) as caught:
                stub.Append(pb.AppendRequest(events=[self.health_event()]), timeout=5.0,
                            metadata=[("authorization", f"Bearer {PKI.token()}")])
            self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)
        finally:
            channel.close()


def main() -> int:
    try:
        require_binary()
    except RuntimeError as e:
        print(f"FATAL: {e}", file=sys.stderr)
        return 2
    program = unittest.main(module=__name__, exit=False, verbosity=2)
    result = program.result
    ok = result.wasSuccessful() and result.testsRun > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
