"""What a held reader costs a batch before its retry: building its message and letting the
sender answer it `blocked` (the path before 7bc308a) against setting it aside (core/targets.py).

usage: held_first_pass.py [N] [ROUNDS]
Run it at 7bc308a: it imports core.targets.set_aside_held, which e7afd63 reverted.
Both paths in one process, alternating, N readers on a held push host per round; CPU time of
the whole process (the sender's loop thread included) per held reader, medians of ROUNDS. The
answer callback is a counter in both: recording the retry costs the same either way.
"""
import os, statistics, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.adapters.hosts import MemoryHostHealth
from core.adapters.webpush import Http11PushSender, SenderConfig, VapidSigner
from core.base64url import b64url_encode
from core.batch import _messages
from core.model import Alert, AlertKind, AlertStatus, Target, Urgency
from core.receipts import Receipts
from core.targets import set_aside_held

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 7
key = ec.generate_private_key(ec.SECP256R1())
pem = key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
reader = ec.generate_private_key(ec.SECP256R1()).public_key()
p256dh = b64url_encode(
    reader.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
)
auth = b64url_encode(os.urandom(16))
# A held host at an address nothing listens on: a push that got past the hold would fail.
targets = [
    Target(i, f"http://127.0.0.3:9/push/{i}", p256dh, auth, 1, 0, "en") for i in range(N)
]
alert = Alert(
    1, "Breaking: something happened in Nairobi today", "x" * 180,
    "https://example.co.ke/story/123456", ("breaking",), Urgency.HIGH, 3600, "s-1",
    AlertStatus.SENDING, AlertKind.NORMAL, time.time(),
)
receipts = Receipts(os.urandom(32))
hosts = MemoryHostHealth()
hosts.hold("127.0.0.3", time.time() + 3600, "HTTP 429")
sender = Http11PushSender(
    VapidSigner(pem, "mailto:ops@example.com"),
    SenderConfig(allow_loopback=True, event_loop="uvloop"),
    hosts=hosts,
)
answers = [0]


def on_result(result):
    assert result.error == "blocked", result
    answers[0] += 1


def before():
    messages = _messages(alert, targets, receipts, int(time.time()))
    sender.send_all(messages, on_result, lambda: False)


def after():
    keep, held = set_aside_held(targets, hosts, time.time())
    assert not keep
    for result in held:
        on_result(result)


before()  # warm up: the sender's loop and its slots
times = {"before": [], "after": []}
for _ in range(ROUNDS):
    for name, run in (("before", before), ("after", after)):
        t = time.process_time()
        run()
        times[name].append((time.process_time() - t) / N * 1e6)
sender.close()
for name, values in times.items():
    print(f"{name}: median {statistics.median(values):.2f} us per held reader "
          f"(rounds: {', '.join(f'{v:.2f}' for v in values)})")
print(f"answers: {answers[0]} (expected {N * (2 * ROUNDS + 1)})")
