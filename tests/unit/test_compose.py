"""docker-compose.yml: every service runs a real entry point with settings the app knows."""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.main import _load_extras, build_parser
from config.settings import known_variables

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
OURS = {
    name: svc
    for name, svc in SERVICES.items()
    if svc.get("build") == "." or svc.get("image") == "newsflash:latest"
}


def _cli_commands() -> set[str]:
    _load_extras()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return set(sub.choices)  # type: ignore[attr-defined]


def _commands_in(command: Any) -> list[list[str]]:
    """The program invocations a compose `command` runs (unwrapping sh -c)."""
    argv = command if isinstance(command, list) else shlex.split(command)
    if argv[:2] == ["sh", "-c"]:
        script = argv[2].replace("$$", "$")
        return [
            shlex.split(part.strip().removeprefix("exec "))
            for part in re.split(r"&&|;", script)
            if part.strip()
        ]
    return [argv]


def test_our_services_are_all_there() -> None:
    assert {"redis", "postgres", "web", "worker", "beat", "flower"} <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_command_names_a_real_entry_point(name: str) -> None:
    commands = _cli_commands()
    invocations = _commands_in(SERVICES[name]["command"])
    assert invocations
    for argv in invocations:
        if argv[0] == "newsflash":
            assert argv[1] in commands, f"{name}: `newsflash {argv[1]}` is not a command"
            parser = build_parser()
            parser.parse_args(
                [a for a in argv[1:] if "$" not in a] if argv[1] != "init" else ["init"]
            )
        elif argv[0] == "celery":
            module, _, attr = argv[argv.index("-A") + 1].partition(":")
            assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"
            source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
            assert re.search(rf"^{attr or 'app'} = ", source, re.M), (
                f"{name}: {module} has no {attr or 'app'}"
            )
        else:
            pytest.fail(f"{name}: runs {argv[0]!r}, not a project entry point")


@pytest.mark.parametrize("name", sorted(OURS))
def test_env_names_match_the_settings(name: str) -> None:
    known = known_variables()
    env = SERVICES[name].get("environment", {})
    for key in env:
        if key.startswith("NEWSFLASH_"):
            assert key in known, f"{name}: {key} is not a setting Newsflash reads"


def test_redis_keeps_tasks() -> None:
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command


def test_long_running_services_have_health_checks() -> None:
    for name, svc in SERVICES.items():
        if name == "init":
            continue
        assert "healthcheck" in svc, f"{name} has no health check"


def test_flower_is_recent_and_private() -> None:
    flower = SERVICES["flower"]
    assert "--basic-auth" in " ".join(flower["command"])
    for port in flower.get("ports", []):
        assert str(port).startswith("127.0.0.1:"), "Flower must not be published publicly"
    pyproject = (ROOT / "pyproject.toml").read_text()
    match = re.search(r"flower>=(\d+)\.(\d+)", pyproject)
    assert match and (int(match[1]), int(match[2])) >= (2, 2)
    assert '".[ops]"' in (ROOT / "Dockerfile").read_text()


# -- the optional `monitoring` profile --------------------------------------------------------
MONITORING = {"prometheus", "alertmanager", "grafana"}


def _binds(name: str) -> dict[str, Path]:
    """Container path -> repository path of a service's bind mounts (./...)."""
    found = {}
    for volume in SERVICES[name].get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("./"):
            found[target] = ROOT / source
    return found


def _in_container(name: str, path: str) -> Path:
    """The repository file a container path of `name` shows (through a file or folder mount)."""
    for target, source in sorted(_binds(name).items(), key=lambda kv: -len(kv[0])):
        if path == target:
            return source
        if path.startswith(target.rstrip("/") + "/"):
            return source / path[len(target.rstrip("/")) + 1 :]
    raise AssertionError(f"{name}: nothing is mounted at {path}")


def test_the_monitoring_profile_is_optional() -> None:
    profiled = {n for n, svc in SERVICES.items() if svc.get("profiles")}
    assert profiled == MONITORING
    for name in MONITORING:
        assert SERVICES[name]["profiles"] == ["monitoring"]
        assert ":latest" not in SERVICES[name]["image"], f"{name}: pin the image version"
    for name, svc in SERVICES.items():
        if name not in MONITORING:
            for dep in svc.get("depends_on", []):
                assert dep not in MONITORING, f"{name} must start without the monitoring profile"


@pytest.mark.parametrize("name", sorted(MONITORING))
def test_monitoring_mounts_files_that_are_in_the_repository(name: str) -> None:
    binds = _binds(name)
    assert binds
    for source in binds.values():
        assert source.exists(), f"{name}: mounts {source.relative_to(ROOT)}, which is missing"
    for volume in SERVICES[name].get("volumes", []):
        if str(volume).startswith("./"):
            assert str(volume).endswith(":ro"), f"{name}: mount {volume} read-only"


def test_nothing_is_published_beyond_the_hosts_loopback() -> None:
    for name, svc in SERVICES.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every address"


def _secret_path(name: str, secret: str) -> str:
    assert secret in SERVICES[name].get("secrets", []), f"{name} does not get the {secret} secret"
    assert COMPOSE["secrets"][secret]["file"].startswith("./secrets/")
    return f"/run/secrets/{secret}"


def test_prometheus_config_passes_promtool_and_loads_the_rules(tmp_path: Path) -> None:
    from tests.support.ops import RULES, promtool

    config_path = "/etc/prometheus/prometheus.yml"
    command = SERVICES["prometheus"]["command"]
    assert f"--config.file={config_path}" in command
    config_file = _in_container("prometheus", config_path)
    config = yaml.safe_load(config_file.read_text())

    # The rules file the config names (relative to the config's folder) is the repository's.
    (rule_file,) = config["rule_files"]
    assert _in_container("prometheus", f"/etc/prometheus/{rule_file}") == RULES

    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "newsflash"]
    assert job["metrics_path"] == "/metrics"
    auth = job["authorization"]
    assert auth["type"] == "Bearer"
    assert auth["credentials_file"] == _secret_path("prometheus", "prometheus_token")
    (target,) = job["static_configs"][0]["targets"]
    host, _, port = target.partition(":")
    assert host == "web" and f"--port {port}" in " ".join(SERVICES["web"]["command"])
    (am,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am.split(":")[0] in SERVICES and am.endswith(":9093")

    # promtool checks the config and the rules it loads; the secret is a file of our own here.
    token = tmp_path / "prometheus_token"
    token.write_text("token-from-newsflash-token-create\n")
    text = config_file.read_text().replace(auth["credentials_file"], str(token))
    (tmp_path / "prometheus.yml").write_text(text)
    shutil.copy(RULES, tmp_path / rule_file)
    done = subprocess.run(
        [promtool(), "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout and rule_file in done.stdout


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    env = SERVICES["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == _secret_path(
        "grafana", "grafana_admin_password"
    )
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    provisioning = _in_container("grafana", "/etc/grafana/provisioning")
    sources = [
        ds
        for f in sorted((provisioning / "datasources").glob("*.yml"))
        for ds in yaml.safe_load(f.read_text())["datasources"]
    ]
    (prometheus,) = sources
    assert prometheus["type"] == "prometheus" and prometheus["isDefault"] is True
    assert prometheus["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in SERVICES["prometheus"]["ports"]
    providers = [
        p
        for f in sorted((provisioning / "dashboards").glob("*.yml"))
        for p in yaml.safe_load(f.read_text())["providers"]
    ]
    (provider,) = providers
    folder = _in_container("grafana", provider["options"]["path"])
    dashboards = sorted(p.name for p in folder.glob("*.json"))
    assert dashboards == ["newsflash-grafana.json"]
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _in_container("grafana", home) == folder / "newsflash-grafana.json"


def test_alertmanager_routes_to_a_receiver_it_declares() -> None:
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in SERVICES["alertmanager"]["command"]
    config = yaml.safe_load(
        _in_container("alertmanager", "/etc/alertmanager/alertmanager.yml").read_text()
    )
    names = {r["name"] for r in config["receivers"]}
    assert config["route"]["receiver"] in names


def test_secrets_stay_out_of_git_and_the_image() -> None:
    for secret in COMPOSE["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    assert "secrets/" in (ROOT / ".gitignore").read_text().split()
    assert "secrets" in (ROOT / ".dockerignore").read_text().split()
    docs = (ROOT / "docs/monitoring.md").read_text()
    assert "newsflash token create --name prometheus --role ops" in docs
    for secret in COMPOSE["secrets"]:
        assert f"secrets/{secret}" in docs, f"docs/monitoring.md does not say how to make {secret}"


def test_workers_get_the_time_their_warm_shutdown_takes() -> None:
    """SIGTERM is a warm shutdown that finishes a worker's open batches (up to DRAIN_S);
    Docker's default stop_grace_period of 10 s would kill every deploy's workers mid-batch."""
    from workers.tasks import DRAIN_S

    workers = [
        name
        for name, svc in SERVICES.items()
        if any(cmd[:2] == ["newsflash", "worker"] for cmd in _commands_in(svc.get("command") or []))
    ]
    assert workers
    for name in workers:
        grace = re.fullmatch(r"(\d+)s", str(SERVICES[name].get("stop_grace_period", "10s")))
        assert grace, f"{name}: stop_grace_period in seconds, like 45s"
        assert int(grace.group(1)) >= DRAIN_S + 10, f"{name} is killed before its batches drain"


def test_beats_health_check_outlasts_the_schedule_files_write_interval() -> None:
    """Beat rewrites its schedule file only every PersistentScheduler.sync_every seconds (3
    minutes), under a name the dbm module picks (celerybeat-schedule, .db, .dat...): a check
    that wants it younger than that, or names one spelling, marks a healthy beat unhealthy."""
    from celery.beat import PersistentScheduler

    check = " ".join(SERVICES["beat"]["healthcheck"]["test"])
    found = re.search(r"-name '?celerybeat-schedule\*'? -mmin -(\d+)", check)
    assert found, f"the beat check should look for any celerybeat-schedule* file: {check}"
    assert int(found.group(1)) * 60 >= PersistentScheduler.sync_every + 60


# -- what ships to production: secrets, state, the variables ops must set ----------------------
_INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_]\w*)(?:(:?[-?+])([^}]*))?\}")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(?:^|_)KEY$|BASIC_AUTH|CREDENTIAL", re.I)


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []


def _interpolations(compose: dict[str, Any] = COMPOSE) -> list[tuple[str, str, str]]:
    """Every ${NAME}, ${NAME:-default}, ${NAME:?message} in the file: (name, operator, word)."""
    return [
        (m[1], m[2] or "", m[3] or "")
        for s in _strings(compose)
        for m in _INTERPOLATION.finditer(s)
    ]


def _secret_defaults(compose: dict[str, Any]) -> list[str]:
    found = []
    for name, svc in compose["services"].items():
        env = svc.get("environment") or {}
        items = env.items() if isinstance(env, dict) else (e.partition("=")[::2] for e in env)
        for key, value in items:
            if not _SECRET_NAME.search(key) or key.endswith("_FILE") or value in (None, ""):
                continue
            used = list(_INTERPOLATION.finditer(str(value)))
            if not used:
                found.append(f"{name}: {key} is set to a value in the file")
            for m in used:
                if m[2] in ("-", ":-") and m[3]:
                    found.append(f"{name}: {key} defaults to {m[3]!r} when .env lacks {m[1]}")
    for var, operator, word in _interpolations(compose):
        if _SECRET_NAME.search(var) and operator in ("-", ":-") and word:
            found.append(f"${{{var}}} has the default {word!r}")
    return sorted(set(found))


def test_no_secret_has_a_value_or_default_in_the_file() -> None:
    """A password, token or key in docker-compose.yml itself (or as a ${VAR:-default}) would
    run in production whenever .env forgets it: secrets are required (${VAR:?...}), optional
    and empty by default (${VAR:-}), or files."""
    assert _secret_defaults(COMPOSE) == []
    planted = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    planted["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] = "newsflash"
    planted["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] = (
        "${GRAFANA_PASSWORD:-admin}"
    )
    assert _secret_defaults(planted) == [
        "${GRAFANA_PASSWORD} has the default 'admin'",
        "grafana: GF_SECURITY_ADMIN_PASSWORD defaults to 'admin' when .env lacks GRAFANA_PASSWORD",
        "postgres: POSTGRES_PASSWORD is set to a value in the file",
    ]


def _named_volume_mounts(svc: dict[str, Any]) -> list[str]:
    """Container paths of a service's named volumes (not bind mounts: those are config)."""
    found = []
    for volume in svc.get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if source in COMPOSE.get("volumes", {}):
            found.append(rest.split(":")[0].rstrip("/"))
    return found


@pytest.mark.parametrize("name", sorted(OURS))
def test_keys_secrets_and_the_database_file_live_on_a_volume(name: str) -> None:
    """The VAPID key above all: one written inside a container is gone when it is recreated,
    and with it every reader's subscription (they were made for the old key)."""
    svc = SERVICES[name]
    env = svc.get("environment", {})
    paths = [v for k, v in env.items() if k.endswith("_FILE") or k == "NEWSFLASH_VAR_DIR"]
    url = str(env.get("NEWSFLASH_DATABASE_URL", ""))
    if url.startswith("sqlite:///"):
        paths.append(url.removeprefix("sqlite:///"))
    mounts = _named_volume_mounts(svc)
    for path in paths:
        assert any(path == m or path.startswith(m + "/") for m in mounts), (
            f"{name}: {path} is not on a named volume ({mounts})"
        )


def test_the_variables_ops_must_set_are_the_ones_the_readme_names() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Docker Compose", 1)[1].split("\n## ", 1)[0]
    required = {var for var, operator, _w in _interpolations() if operator in ("?", ":?")}
    assert required, "nothing is required from .env?"
    for var in sorted(required):
        assert f"`{var}" in section, f"README's Docker Compose section does not ask for {var}"
    known = known_variables()
    for var, _op, _w in _interpolations():
        if var.startswith("NEWSFLASH_"):
            assert var in known, f"${{{var}}} in .env is not a setting Newsflash reads"


def test_what_a_service_waits_for_can_become_healthy() -> None:
    for name, svc in SERVICES.items():
        depends = svc.get("depends_on", {})
        for dep, how in depends.items() if isinstance(depends, dict) else []:
            if how.get("condition") == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{name} waits for {dep}'s health check"
            if how.get("condition") == "service_completed_successfully":
                assert SERVICES[dep].get("restart") == "no", f"{dep} must run once"
