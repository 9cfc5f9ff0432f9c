"""The `newsflash` command as an operator meets it: set-up, one-line failures, tokens."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.listing import read_table
from tests.support.live_stack import served_app
from tests.support.services import free_port


def run(
    args: list[str], env: dict[str, str], timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return run_cli(args, env, timeout_s)


ALERT_COLUMNS = ["ID", "STATUS", "CREATED", "AUDIENCE", "DELIVERED", "TITLE"]
TOKEN_COLUMNS = ["ID", "STARTS WITH", "ROLE", "STATE", "CREATED", "NAME"]


@pytest.fixture
def var_env(tmp_path: Path) -> dict[str, str]:
    return {
        "NEWSFLASH_VAR_DIR": str(tmp_path / "var"),
        "NEWSFLASH_DATABASE_URL": f"sqlite:///{tmp_path}/var/newsflash.db",
    }


def test_init_creates_private_keys_once(var_env: dict[str, str], tmp_path: Path) -> None:
    first = run(["init"], var_env)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout and "vapid_private.pem" in first.stdout
    var = tmp_path / "var"
    for name in ("vapid_private.pem", "secret_key", "cms_webhook_secret", "vapid_subject"):
        mode = stat.S_IMODE((var / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}"
    key = (var / "vapid_private.pem").read_text()
    second = run(["init"], var_env)
    assert second.returncode == 0
    assert "created" not in second.stdout and second.stdout.count("kept") == 4
    assert (var / "vapid_private.pem").read_text() == key
    assert "PRIVATE KEY" not in first.stdout + second.stdout


def _one_line_failure(result: subprocess.CompletedProcess[str], names: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("newsflash: ") and names in lines[0]
    assert "Traceback" not in result.stderr


def test_a_wrong_database_url_stops_start_up_with_one_line(var_env: dict[str, str]) -> None:
    run(["init"], var_env)
    result = run(["web"], {**var_env, "NEWSFLASH_DATABASE_URL": "mysql://db/newsflash"})
    _one_line_failure(result, "NEWSFLASH_DATABASE_URL")


def test_an_unreachable_database_fails_migrations_with_one_line(var_env: dict[str, str]) -> None:
    # A port on loopback where nothing listens: refused at once, never a remote address.
    url = "postgresql+psycopg://postgres@127.0.0.1:9/newsflash"
    result = run(["db", "upgrade"], {**var_env, "NEWSFLASH_DATABASE_URL": url})
    _one_line_failure(result, "NEWSFLASH_DATABASE_URL")


def test_an_unreadable_or_invalid_vapid_key_stops_start_up_with_one_line(
    var_env: dict[str, str], tmp_path: Path
) -> None:
    missing = run(
        ["web"], {**var_env, "NEWSFLASH_VAPID_PRIVATE_KEY_FILE": str(tmp_path / "nope.pem")}
    )
    _one_line_failure(missing, "NEWSFLASH_VAPID_PRIVATE_KEY_FILE")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    bad = run(["worker"], {**var_env, "NEWSFLASH_VAPID_PRIVATE_KEY_FILE": str(garbage)})
    _one_line_failure(bad, "NEWSFLASH_VAPID_PRIVATE_KEY_FILE")
    assert "not a key" not in bad.stderr


def test_token_create_prints_the_token_alone_on_the_last_line(var_env: dict[str, str]) -> None:
    assert run(["db", "upgrade"], var_env).returncode == 0
    assert run(["token", "list"], var_env).stdout == "no tokens\n"
    assert run(["feeds", "list"], var_env).stdout == "no feeds\n"
    result = run(["token", "create", "--name", "cms", "--role", "editor"], var_env)
    assert result.returncode == 0, result.stderr
    token = result.stdout.rstrip("\n").splitlines()[-1]
    assert token.startswith("nf_") and " " not in token and len(token) > 30
    listed = run(["token", "list"], var_env)
    rows = read_table(listed.stdout.splitlines(), TOKEN_COLUMNS, ("ID",))
    assert [(r["ROLE"], r["STATE"], r["NAME"]) for r in rows] == [("editor", "active", "cms")]
    assert token.startswith(rows[0]["STARTS WITH"].rstrip("…")) and token not in listed.stdout
    machine = run(["token", "list", "--json"], var_env)
    assert [t["name"] for t in json.loads(machine.stdout)["tokens"]] == ["cms"]
    assert token not in machine.stdout
    assert run(["token", "revoke", "1"], var_env).returncode == 0
    rows = read_table(run(["token", "list"], var_env).stdout.splitlines(), TOKEN_COLUMNS, ("ID",))
    assert [r["STATE"] for r in rows] == ["revoked"]


def test_every_command_has_help() -> None:
    top = run(["--help"], {})
    assert top.returncode == 0
    for command in (
        "init",
        "db",
        "user",
        "token",
        "send",
        "status",
        "alerts",
        "push-standin",
        "demo-subscribers",
        "bench",
        "settings",
        "feeds",
    ):
        assert command in top.stdout, command
        assert run([command, "--help"], {}).returncode == 0, command


def test_settings_prints_the_effective_values_with_secrets_masked(
    var_env: dict[str, str],
) -> None:
    env = {
        **var_env,
        "NEWSFLASH_DATABASE_URL": "postgresql://newsflash:db-pass-123@127.0.0.1:9/nf",
        "NEWSFLASH_SECRET_KEY": "app-secret-0123456789abcdef",
        "NEWSFLASH_BATCH_SIZE": "250",
    }
    result = run(["settings"], env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "NEWSFLASH_BATCH_SIZE=250" in lines
    assert "NEWSFLASH_DATABASE_URL=postgresql+psycopg://newsflash:****@127.0.0.1:9/nf" in lines
    assert "NEWSFLASH_SECRET_KEY=****" in lines
    assert "NEWSFLASH_DEFAULT_TTL=3600  # default" in lines
    assert "db-pass-123" not in result.stdout and "app-secret" not in result.stdout


def test_a_malformed_rate_limit_stops_every_command(var_env: dict[str, str]) -> None:
    """It used to switch the limit off without a word."""
    env = {**var_env, "NEWSFLASH_RATE_LIMIT_LOGIN": "ten per minute"}
    for argv in (["settings"], ["db", "upgrade"], ["token", "list"], ["beat"]):
        _one_line_failure(run(argv, env), "NEWSFLASH_RATE_LIMIT_LOGIN: expected limits like")


def test_alerts_list_shows_the_newest_first_in_the_newsroom_time_zone(
    database_url: str, tmp_path: Path
) -> None:
    import json
    import time
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from config.settings import Topic
    from core.adapters import migrate
    from core.adapters.sql import make_engine
    from core.adapters.stores_sql import SqlStores
    from core.model import AlertDraft, AlertStatus, Urgency

    engine = make_engine(database_url)
    migrate.upgrade(engine)
    store = SqlStores.build(engine, (Topic("breaking", "Breaking", True),))
    now = time.time()
    made = []
    for age_s, title, status in [
        (7200, "Floods close the Mombasa road", AlertStatus.SENT),
        (3600, "Called off before it went", AlertStatus.CANCELLED),
        (60, "A very long headline about the budget vote that runs on and on", None),
    ]:
        draft = AlertDraft(
            title=title,
            body="B",
            url="https://news.example.com/a",
            topics=("breaking",),
            urgency=Urgency.HIGH,
            ttl_s=600,
        )
        alert, _ = store.alerts.create_alert(
            draft, f"k{age_s}", AlertStatus.QUEUED, 12, now - age_s
        )
        if status is not None:
            store.alerts.set_status(alert.id, status, now)
        made.append(alert)
    engine.dispose()
    env = {
        "NEWSFLASH_VAR_DIR": str(tmp_path / "var"),
        "NEWSFLASH_DATABASE_URL": database_url,
        "NEWSFLASH_NEWSROOM_TIMEZONE": "Africa/Nairobi",
    }

    listed = run(["alerts", "list"], env)
    assert listed.returncode == 0, listed.stderr
    rows = read_table(listed.stdout.splitlines(), ALERT_COLUMNS, ("ID", "AUDIENCE", "DELIVERED"))
    assert [int(row["ID"]) for row in rows] == [a.id for a in reversed(made)]
    newest = rows[0]
    created = datetime.fromtimestamp(made[2].created_at, ZoneInfo("Africa/Nairobi"))
    assert newest["CREATED"] == created.strftime("%Y-%m-%d %H:%M EAT")
    assert (newest["STATUS"], newest["AUDIENCE"], newest["DELIVERED"]) == ("queued", "12", "0")
    assert newest["TITLE"] == "A very long headline about the budget vote that…"
    assert (rows[2]["STATUS"], rows[2]["TITLE"]) == ("sent", "Floods close the Mombasa road")

    only = run(["alerts", "list", "--status", "cancelled", "--limit", "5"], env)
    assert only.returncode == 0, only.stderr
    rows = read_table(only.stdout.splitlines(), ALERT_COLUMNS, ("ID", "AUDIENCE", "DELIVERED"))
    assert [(row["ID"], row["STATUS"]) for row in rows] == [(str(made[1].id), "cancelled")]
    none = run(["alerts", "list", "--status", "failed"], env)
    assert none.stdout == "no alerts with status failed\n"
    machine = run(["alerts", "list", "--limit", "2", "--json"], env)
    assert machine.returncode == 0, machine.stderr
    alerts = json.loads(machine.stdout)["alerts"]
    assert [(a["id"], a["status"]) for a in alerts] == [
        (str(made[2].id), "queued"),
        (str(made[1].id), "cancelled"),
    ]
    assert alerts[0]["counts"]["audience"] == 12 and alerts[0]["created_at"].endswith("Z")

    bad = run(["alerts", "list", "--status", "done"], env)
    _one_line_failure(bad, "--status")
    assert "scheduled, queued, sending, sent, cancelled, failed" in bad.stderr
    _one_line_failure(run(["alerts", "list", "--limit", "0"], env), "--limit")


def test_health_prints_the_weeks_and_the_warnings(var_env: dict[str, str]) -> None:
    import time
    from zoneinfo import ZoneInfo

    from config.settings import Topic
    from core.adapters import migrate
    from core.adapters.sql import make_engine
    from core.adapters.stores_sql import SqlStores
    from tests.support.audience import seed_falling_engagement

    env = {**var_env, "NEWSFLASH_NEWSROOM_TIMEZONE": "Europe/Berlin"}
    Path(var_env["NEWSFLASH_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
    engine = make_engine(var_env["NEWSFLASH_DATABASE_URL"])
    migrate.upgrade(engine)
    store = SqlStores.build(engine, [Topic("breaking", "Breaking", True)])
    seed_falling_engagement(store, time.time(), ZoneInfo("Europe/Berlin"))
    engine.dispose()
    shown = run(["health"], env)
    assert shown.returncode == 1, shown.stderr  # a warning holds
    assert "Audience health (Europe/Berlin): 2 warning(s)" in shown.stdout
    assert "Readers got" in shown.stdout and "came back 404/410" in shown.stdout
    weeks = [line for line in shown.stdout.splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)]
    assert len(weeks) == 8
    # Last week's renewals, after gained, unsub, gone and purged: 3 moved, 2 restored.
    assert "moved restored" in shown.stdout and weeks[1].split()[5:7] == ["3", "2"]
    refused = run(["health", "--weeks", "99"], env)
    assert (
        refused.returncode == 2
        and "argument --weeks: a whole number from 2 to 26" in refused.stderr
    )


def test_demo_subscribers_stores_the_standins_subscriptions_and_refuses_bad_input(
    var_env: dict[str, str],
) -> None:
    from sqlalchemy import text

    from core.adapters.sql import make_engine
    from standin.server import PushStandin

    assert run(["init"], var_env).returncode == 0
    assert run(["db", "upgrade"], var_env).returncode == 0
    with PushStandin(host="127.0.0.1") as standin:
        url = standin.origin
        made = run(["demo-subscribers", "3", "--topic", "sport", "--standin", url], var_env)
        assert made.returncode == 0, made.stderr
        assert f"registered 3 demo subscriptions at {url} (topics: sport)" in made.stdout

        for args, names in (
            (["0"], "argument N: a whole number from 1 to 1000000"),
            (["-5"], "argument N: a whole number from 1 to 1000000"),
            (["2", "--standin", "file:///etc/passwd"], "argument --standin: the stand-in's URL"),
            (["2", "--standin", "127.0.0.1:8001"], "argument --standin: the stand-in's URL"),
        ):
            refused = run(["demo-subscribers", *args], var_env)
            assert refused.returncode == 2 and names in refused.stderr, refused.stderr
            assert "Traceback" not in refused.stderr
        # The operator's topic is checked before the stand-in is asked for anything.
        _one_line_failure(
            run(["demo-subscribers", "2", "--topic", "weather", "--standin", url], var_env),
            "--topic: unknown topic 'weather'; known: breaking, business, politics, sport",
        )
    engine = make_engine(var_env["NEWSFLASH_DATABASE_URL"])
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM subscriptions")).scalar_one()
    engine.dispose()
    assert stored == 3


def test_user_create_without_a_password_to_read_fails_in_one_line(
    var_env: dict[str, str],
) -> None:
    assert run(["init"], var_env).returncode == 0
    assert run(["db", "upgrade"], var_env).returncode == 0
    # The address is checked before the password is asked for.
    _one_line_failure(
        run(["user", "create", "--email", "not-an-address", "--role", "editor"], var_env),
        "email: not an email address",
    )
    # No terminal and nothing on standard input (a script, a cron job): no traceback.
    for argv in (
        ["user", "create", "--email", "ed@example.com", "--role", "editor"],
        ["user", "password", "ed@example.com"],
    ):
        closed = run(argv, var_env)
        assert closed.returncode == 2, closed.stderr
        assert "Traceback" not in closed.stderr
        assert closed.stderr.strip().endswith(
            "newsflash: password: nothing to read; type it at a terminal or pipe it with"
            " --password-stdin"
        )


# Every command that reads the database, against one nobody answers (a loopback port where
# nothing listens: refused at once) and against one never migrated.
DATABASE_COMMANDS = [
    ["alerts", "list"],
    ["alerts", "watch", "1"],
    ["token", "create", "--name", "prometheus", "--role", "ops"],
    ["token", "list"],
    ["token", "revoke", "1"],
    ["health"],
    ["user", "disable", "ed@example.com"],
    ["user", "role", "ed@example.com", "--role", "ops"],
    ["feeds", "list"],
    ["feeds", "remove", "1"],
]


@pytest.mark.parametrize("argv", DATABASE_COMMANDS, ids=" ".join)
def test_an_unreachable_database_fails_each_command_in_one_line(
    var_env: dict[str, str], argv: list[str]
) -> None:
    assert run(["init"], var_env).returncode == 0
    url = "postgresql+psycopg://newsflash:s3cret-pw@127.0.0.1:9/newsflash"
    result = run(argv, {**var_env, "NEWSFLASH_DATABASE_URL": url})
    _one_line_failure(result, "NEWSFLASH_DATABASE_URL")
    assert "s3cret-pw" not in result.stdout + result.stderr


@pytest.mark.parametrize("argv", DATABASE_COMMANDS[:4], ids=" ".join)
def test_a_database_never_migrated_says_to_run_db_upgrade(
    var_env: dict[str, str], argv: list[str]
) -> None:
    assert run(["init"], var_env).returncode == 0
    _one_line_failure(run(argv, var_env), "newsflash db upgrade")


def test_status_reports_an_unreachable_database_and_exits_1(
    var_env: dict[str, str], redis_url: str
) -> None:
    """The terminal's /ops works while the database is down: that is when it is needed."""
    assert run(["init"], var_env).returncode == 0
    url = "postgresql+psycopg://newsflash:s3cret-pw@127.0.0.1:9/newsflash"
    env = {**var_env, "NEWSFLASH_DATABASE_URL": url, "NEWSFLASH_REDIS_URL": redis_url}
    result = run(["status"], env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "UNREACHABLE: database" in result.stdout.splitlines()[0]
    assert "Queues" in result.stdout  # the broker's part is still shown
    assert "s3cret-pw" not in result.stdout + result.stderr


def test_status_is_not_all_clear_while_no_alarm_round_runs(
    var_env: dict[str, str], clean_redis: str
) -> None:
    """Like /ops: with beat down nothing evaluates the alarms, so an empty alarm list means
    nothing; `status` (used in scripts by its exit code) must not say all clear."""
    import time

    import redis as redis_lib

    from core.adapters.telemetry import RedisTelemetry

    env = {**var_env, "NEWSFLASH_REDIS_URL": clean_redis, "NEWSFLASH_INSPECT_TIMEOUT_S": "0.2"}
    assert run(["db", "upgrade"], env).returncode == 0
    never = run(["status"], env)
    assert never.returncode == 1, never.stdout + never.stderr
    first = never.stdout.splitlines()[0]
    assert "ALARMS NOT EVALUATED" in first and "all clear" not in first
    assert "no alarm round has run yet; is beat running?" in never.stdout

    telemetry = RedisTelemetry(redis_lib.Redis.from_url(clean_redis))
    telemetry.mark_evaluated(time.time() - 600)
    stale = run(["status"], env)
    assert stale.returncode == 1
    assert "the last alarm round ran 10 min" in stale.stdout

    telemetry.mark_evaluated(time.time())
    fresh = run(["status"], env)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert fresh.stdout.splitlines()[0].endswith("all clear")


def test_status_counts_todays_new_lost_and_renewed_subscriptions(
    var_env: dict[str, str], clean_redis: str
) -> None:
    """Today's line words renewals as /ops and the audience health do: the same readers on a
    new endpoint, those restored after a 404/410 named."""
    import time
    import uuid

    from config.settings import Topic
    from core.adapters import migrate
    from core.adapters.sql import make_engine
    from core.adapters.stores_sql import SqlStores
    from core.model import LossReason, SubscriptionInput
    from core.tombstones import endpoint_digest

    def reader() -> SubscriptionInput:
        endpoint = f"https://fcm.googleapis.com/fcm/send/{uuid.uuid4().hex}"
        return SubscriptionInput(endpoint, "k", "a", ("breaking",))

    env = {**var_env, "NEWSFLASH_REDIS_URL": clean_redis, "NEWSFLASH_INSPECT_TIMEOUT_S": "0.2"}
    Path(var_env["NEWSFLASH_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
    engine = make_engine(var_env["NEWSFLASH_DATABASE_URL"])
    try:
        migrate.upgrade(engine)
        subs = SqlStores.build(engine, [Topic("breaking", "Breaking", True)]).subscriptions
        now = time.time()
        made = [subs.upsert(reader(), now)[0] for _ in range(5)]
        subs.delete_ids([made[0].id], now=now)  # turned alerts off
        subs.replace(made[1].id, reader(), now)  # renewed: moved
        subs.replace(made[2].id, reader(), now)
        for gone in made[3:]:  # 410s whose browsers come back: restored
            subs.delete_ids([gone.id], LossReason.GONE, now)
            stone = subs.find_tombstone(endpoint_digest(gone.endpoint))
            assert stone is not None
            subs.restore(stone, reader(), now)
    finally:
        engine.dispose()
    shown = run(["status"], env)
    today = [line for line in shown.stdout.splitlines() if line.startswith("  today (")]
    assert len(today) == 1, shown.stdout + shown.stderr
    assert today[0].endswith("): +5 new, -1 lost, 4 renewed (2 after 410)"), today[0]


def test_send_refused_as_a_repeat_says_which_option_sends_it_anyway(
    tmp_path: Path, clean_redis: str, vapid_pem: str
) -> None:
    # Running the README's quick start twice within the duplicate window: the second send is
    # refused as a repeat. The way out must be one this command has.
    with served_app(
        tmp_path,
        f"sqlite:///{tmp_path}/nf.db",
        clean_redis,
        vapid_pem,
        free_port(),
        DUPLICATE_WINDOW_S="21600",
    ) as live:
        env = {**live.env, "NEWSFLASH_API_URL": str(live.base_url)}
        alert = ["send", "--title", "Storm warning", "--body", "Heavy rain expected tonight."]
        alert += ["--url", "http://127.0.0.1:8000/"]
        first = run(alert, env)
        assert first.returncode == 0, first.stderr
        again = run(alert, env)
        _one_line_failure(again, "--duplicate-ok")
        assert "“Storm warning”" in again.stderr and "send with duplicate_ok" not in again.stderr
        anyway = run([*alert, "--duplicate-ok"], env)
        assert anyway.returncode == 0, anyway.stderr
        assert re.match(r"alert \d+ queued", anyway.stdout), anyway.stdout
