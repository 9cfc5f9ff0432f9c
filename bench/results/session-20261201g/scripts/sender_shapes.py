"""The sender alone (no Celery, no PostgreSQL) against push-service stand-ins of different
shapes, interleaved: what four services instead of one, and answer time, cost per request.

usage: sender_shapes.py N ROUNDS
Shapes: one (one sink, answers at once), four (four sinks on 127.0.0.2-5 at the realistic
shares, at once), one-100ms (one sink, every answer after 100 ms), four-lat (four sinks at the
realistic hosts' mean answer times: 60, 120, 200, 150 ms, no jitter), realistic (the realistic
sink: jitter, tail, 410, 503, the 429 hold). Prints medians of the sender's and the sinks' CPU
per request.
"""
import json, os, socket, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT))
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.sink import REALISTIC, realistic_host
from core.adapters.hosts import MemoryHostHealth
from core.adapters.webpush import Http11PushSender, SenderConfig, VapidSigner
from core.base64url import b64url_encode
from core.ports import PushMessage

N, ROUNDS = int(sys.argv[1]), int(sys.argv[2])
key = ec.generate_private_key(ec.SECP256R1())
pem = key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
ukey = ec.generate_private_key(ec.SECP256R1())
p256dh = b64url_encode(
    ukey.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
)
auth = b64url_encode(os.urandom(16))
payload = json.dumps({"title": "Breaking: something happened in Nairobi today", "body": "x" * 180,
                      "url": "https://example.co.ke/story/123456?utm_source=push"}).encode()
LAT = {"fcm": 60, "mozilla": 120, "apple": 200, "windows": 150}


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    return port


def start(args):
    p = subprocess.Popen([sys.executable, "-m", "bench.sink", *args], cwd=str(ROOT),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    p.stdout.readline()
    return p


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().split(")")[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def one_run(shape):
    port = free_port()
    sinks = []
    if shape in ("one", "one-100ms"):
        extra = ["--latency-ms", "100"] if shape == "one-100ms" else []
        sinks.append(start(["--port", str(port), "--expect", str(N), *extra]))
        ep = lambda i: f"http://127.0.0.1:{port}/push/{i}"
    elif shape in ("four", "four-lat"):
        for p in REALISTIC:
            extra = ["--latency-ms", str(LAT[p.name])] if shape == "four-lat" else []
            sinks.append(start(["--host", p.address, "--port", str(port), "--expect", str(N), *extra]))
        ep = lambda i: f"http://{realistic_host(i).address}:{port}/push/{i}"
    else:
        off = shape.partition("-no-")[2].replace("+", ",")
        env = dict(os.environ, NF_X_SINK_OFF=off)
        p = subprocess.Popen([sys.executable, "-m", "bench.sink", "--port", str(port), "--profile",
                              "realistic", "--expect", str(N)], cwd=str(ROOT), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        p.stdout.readline()
        sinks.append(p)
        ep = lambda i: f"http://{realistic_host(i).address}:{port}/push/{i}"
    msgs = [PushMessage(i, ep(i), p256dh, auth, payload, 3600, "high", "breaking") for i in range(N)]
    sender = Http11PushSender(VapidSigner(pem, "mailto:ops@example.com"),
                              SenderConfig(allow_loopback=True, event_loop="uvloop"),
                              hosts=MemoryHostHealth())
    count = [0]
    def on_result(r):
        count[0] += 1
    c0, s0 = time.process_time(), sum(cpu(s.pid) for s in sinks)
    for k in range(0, N, 1000):
        sender.wait_for_room()
        sender.submit(msgs[k:k + 1000], on_result, lambda: False)
    sender.drain()
    c, s = time.process_time() - c0, sum(cpu(s.pid) for s in sinks) - s0
    sender.close()
    for p in sinks:
        p.terminate(); p.wait()
    return c / count[0] * 1e6, s / count[0] * 1e6


shapes = sys.argv[3].split() if len(sys.argv) > 3 else [
    "one", "four", "one-100ms", "four-lat", "realistic"]
got = {k: [] for k in shapes}
for r in range(ROUNDS):
    for shape in shapes:
        got[shape].append(one_run(shape))
        print(shape, [round(x, 1) for x in got[shape][-1]], flush=True)
print("median sender / sink CPU per request (us):")
for shape in shapes:
    print(f"  {shape:10s} sender {statistics.median(v[0] for v in got[shape]):6.1f}"
          f"  sink {statistics.median(v[1] for v in got[shape]):6.1f}")
