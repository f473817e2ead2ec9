"""docker-compose.yml, Dockerfile and the Makefile: they parse and every command they run exists here."""

from __future__ import annotations

import ast
import configparser
import os
import re

import yaml

from mailferry.settings import SETTINGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVICES = {"postgres", "redis", "rspamd", "tls", "migrate", "web", "smtp", "worker"}
IMAGES = {"postgres", "redis", "rspamd"}  # upstream images; every other service is Mailferry


def _compose() -> dict:
    with open(os.path.join(ROOT, "docker-compose.yml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def _requirement_names() -> set[str]:
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as f:
        return {re.split(r"[=<>\[ ]", line.strip(), maxsplit=1)[0].lower() for line in f if line.strip() and not line.startswith("#")}


def _module_exists(dotted: str) -> bool:
    path = os.path.join(ROOT, *dotted.split("."))
    return os.path.isfile(path + ".py") or os.path.isfile(os.path.join(path, "__main__.py"))


def _defines(path: str, name: str) -> bool:
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    return any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets)
               for node in tree.body)


def assert_command_exists(command: list[str]) -> None:
    """The program is installed by requirements.txt (or is python) and its target is a file of this project."""
    program, args = command[0], command[1:]
    if program == "python":
        if args[0] == "-m":
            assert _module_exists(args[1]), f"python -m {args[1]}: no such module in the project"
        else:
            assert os.path.isfile(os.path.join(ROOT, args[0])), f"python {args[0]}: no such file"
    elif program == "gunicorn":
        assert "gunicorn" in _requirement_names()
        module, _, attr = args[0].partition(":")
        assert _defines(f"{module}.py", attr), f"gunicorn {args[0]}: {module}.py defines no {attr}"
    elif program == "alembic":
        assert "alembic" in _requirement_names()
        ini = configparser.ConfigParser()
        ini.read(os.path.join(ROOT, "alembic.ini"))
        location = ini["alembic"]["script_location"].replace("%(here)s", ROOT)
        assert os.path.isfile(os.path.join(ROOT, location, "env.py"))
        assert os.listdir(os.path.join(ROOT, location, "versions"))
    else:
        raise AssertionError(f"unexpected program {program!r} in {command}")


def test_compose_has_every_service_and_they_build_from_the_dockerfile():
    compose = _compose()
    assert set(compose["services"]) == SERVICES
    assert os.path.isfile(os.path.join(ROOT, "Dockerfile"))
    for name in SERVICES - IMAGES:
        service = compose["services"][name]
        assert service["build"] == "." and service["image"] == "mailferry:latest", name


def test_every_service_command_exists_in_the_project():
    for name in SERVICES - IMAGES:
        assert_command_exists(_compose()["services"][name]["command"])


def test_dockerfile_default_command_exists():
    with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
        cmd = re.search(r"^CMD (\[.*\])$", f.read(), re.M).group(1)
    assert_command_exists(ast.literal_eval(cmd))


def test_redis_keeps_an_append_only_file():
    command = _compose()["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"


def test_ordering_migrate_runs_once_before_the_app():
    services = _compose()["services"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "smtp", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_smtp_publishes_port_25_to_the_port_it_listens_on():
    services = _compose()["services"]
    assert "25:2525" in services["smtp"]["ports"]
    with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
        assert "SMTP_LISTEN=0.0.0.0:2525" in f.read()


def test_worker_scales():
    worker = _compose()["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker


def test_environment_names_are_real_settings():
    known = {s.name for s in SETTINGS}
    for name in SERVICES - IMAGES:
        for variable in _compose()["services"][name].get("environment", {}):
            assert variable in known, f"{name}: {variable} is not a Mailferry setting"


def test_makefile_targets_in_readme_exist():
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
        targets = set(re.findall(r"^([a-z-]+):", f.read(), re.M))
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for target in re.findall(r"`make ([a-z-]+)`", readme):
        assert target in targets, f"README mentions make {target}, the Makefile has no such target"


def test_worker_gets_less_cpu_weight_than_the_smtp_server():
    services = _compose()["services"]
    assert services["worker"]["cpu_shares"] < services["smtp"].get("cpu_shares", 1024)


def test_smtp_scans_with_the_bundled_rspamd_once_it_is_healthy():
    services = _compose()["services"]
    rspamd = services["rspamd"]
    assert rspamd["image"].startswith("rspamd/rspamd:") and rspamd["healthcheck"]["test"]
    assert services["smtp"]["depends_on"]["rspamd"]["condition"] == "service_healthy"
    for name in ("smtp", "worker", "web"):
        assert services[name]["environment"]["RSPAMD_URL"] == "http://rspamd:11333"
    assert services["smtp"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_every_mailferry_service_requires_a_secret_key_from_the_operator():
    """Compose stops with this message when SECRET_KEY is unset or empty (`${VAR:?message}`): no default key."""
    for name in SERVICES - IMAGES:
        value = _compose()["services"][name]["environment"]["SECRET_KEY"]
        required = re.fullmatch(r"\$\{SECRET_KEY:\?([^}]+)\}", value)
        assert required, f"{name}: SECRET_KEY must be ${{SECRET_KEY:?...}}, got {value!r}"
        assert "secrets.token_urlsafe(48)" in required.group(1)


def test_the_image_does_not_bake_in_a_secret_or_development_mode():
    with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
        dockerfile = f.read()
    assert "SECRET_KEY" not in dockerfile and "MAILFERRY_ENV" not in dockerfile
    with open(os.path.join(ROOT, ".dockerignore"), encoding="utf-8") as f:
        assert ".env" in f.read().split()  # `COPY . .` would put the operator's key into an image layer


def test_every_mailferry_service_has_a_healthcheck_of_its_own():
    services = _compose()["services"]
    checks = {name: services[name]["healthcheck"]["test"] for name in ("web", "smtp", "worker")}
    assert checks["smtp"] == ["CMD", "python", "-m", "smtp", "--check"]
    assert checks["worker"] == ["CMD", "python", "worker.py", "--check"]
    for name in ("smtp", "worker"):
        assert_command_exists(checks[name][1:])
    program, flag, code = checks["web"][1:]
    assert (program, flag) == ("python", "-c") and "http://127.0.0.1:8000/healthz" in code
    compile(code, "healthcheck", "exec")
    assert "0.0.0.0:8000" in " ".join(services["web"]["command"])


def test_smtp_offers_starttls_with_the_certificate_the_tls_service_leaves_in_the_volume():
    compose = _compose()
    services = compose["services"]
    tls, smtp = services["tls"], services["smtp"]
    assert tls["command"][:3] == ["python", "-m", "smtp.certs"] and tls["restart"] == "no"
    cert, key = tls["command"][3:5]
    assert smtp["environment"]["SMTP_TLS_CERT"] == cert and smtp["environment"]["SMTP_TLS_KEY"] == key
    assert smtp["depends_on"]["tls"]["condition"] == "service_completed_successfully"
    mount = "${TLS_SOURCE:-tls}:/srv/mailferry/tls"
    assert mount in tls["volumes"] and f"{mount}:ro" in smtp["volumes"] and "tls" in compose["volumes"]
    assert all(path.startswith("/srv/mailferry/tls/") for path in (cert, key))
    # the merge of the shared environment is kept: the smtp service still gets the database, Redis and the key
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "RSPAMD_URL"} <= set(smtp["environment"])
    with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
        assert re.search(r"mkdir -p var tls && chown -R mailferry var tls", f.read())  # the volume is ours to write


def test_several_workers_run_by_default():
    assert _compose()["services"]["worker"]["deploy"]["replicas"] >= 2


def test_the_self_signed_certificate_command_writes_a_pair_and_keeps_an_existing_one(tmp_path):
    import subprocess
    import sys

    cert, key = str(tmp_path / "tls" / "cert.pem"), str(tmp_path / "tls" / "key.pem")
    first = subprocess.run([sys.executable, "-m", "smtp.certs", cert, key, "mx.example.test"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and first.stdout.startswith("wrote"), first.stderr
    again = subprocess.run([sys.executable, "-m", "smtp.certs", cert, key, "mx.example.test"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stdout.startswith("kept existing")


def test_the_deploy_guide_names_only_real_settings_and_compose_variables():
    with open(os.path.join(ROOT, "deploy", "README.md"), encoding="utf-8") as f:
        guide = f.read()
    known = {s.name for s in SETTINGS}
    named = set(re.findall(r"`([A-Z][A-Z0-9_]{3,})`", guide)) | set(re.findall(r"^\s*([A-Z][A-Z0-9_]+)=", guide, re.M))
    with open(os.path.join(ROOT, "docker-compose.yml"), encoding="utf-8") as f:
        compose_variables = set(re.findall(r"\$\{([A-Z_]+)", f.read()))
    unknown = named - known - compose_variables
    assert not unknown, unknown
    for topic in ("PTR", "Outbound port 25", "TRUSTED_PROXIES", "SESSION_COOKIE_SECURE", "pg_dump",
                  "alembic upgrade head", "--scale worker", "X-Forwarded-For"):
        assert topic in guide, topic
