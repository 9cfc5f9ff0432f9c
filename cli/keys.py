"""`newsflash init`: the VAPID key pair, app secret, webhook secret and a local subject under
var/, each made once and never overwritten."""

from __future__ import annotations

import argparse
import os
from typing import Any

from cli.command import write_secret
from config.settings import Settings


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    """Create, if absent, the VAPID key pair, app secret, webhook secret and a local subject."""
    import base64
    import secrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from core.base64url import b64url_encode

    var = settings.var_dir
    var.mkdir(parents=True, exist_ok=True)
    os.chmod(var, 0o700)
    created: list[str] = []
    kept: list[str] = []

    key_path = settings.vapid_private_key_file or var / "vapid_private.pem"
    if key_path.exists():
        kept.append(str(key_path))
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        write_secret(key_path, pem)
        raw = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        (var / "vapid_public.txt").write_text(b64url_encode(raw) + "\n")
        created.append(f"{key_path} (VAPID private key, mode 0600)")
    for path, make in (
        (settings.secret_key_file or var / "secret_key", lambda: secrets.token_hex(32)),
        (
            settings.cms_webhook_secret_file or var / "cms_webhook_secret",
            lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        ),
        (var / "vapid_subject", lambda: args.subject),
    ):
        if path.exists():
            kept.append(str(path))
        else:
            write_secret(path, make() + "\n")
            created.append(str(path))
    for line in created:
        print(f"created {line}")
    for line in kept:
        print(f"kept    {line} (already there)")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("init", help="create VAPID keys and secrets under var/ (idempotent)")
    p.add_argument(
        "--subject", default="mailto:newsflash@localhost", help="VAPID subject for local use"
    )
    p.set_defaults(func=cmd_init, needs_keys=False)
