"""The widget and the manage page's scripts are served each with the service-worker client
(static/worker.client.js) at its head, in one function: one file per page, no global, the
version the worker expects written once; cached for five minutes and revalidated by ETag."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.reader_api import Api, build_api, dispose_api

STATIC = Path(__file__).resolve().parents[2] / "service" / "static"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, vapid_pem: str, redis_url: str) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("page-scripts")
    built = build_api(tmp / "var", f"sqlite:///{tmp}/newsflash.db", vapid_pem)
    try:
        yield built
    finally:
        dispose_api(built)


@pytest.mark.parametrize("path", ["/newsflash.js", "/manage.js"])
def test_each_page_script_carries_the_worker_client_once(api: Api, path: str) -> None:
    answer = api.client.get(path)
    assert answer.status_code == 200
    assert answer.mimetype == "text/javascript"
    text = answer.get_data(as_text=True)
    client = (STATIC / "worker.client.js").read_text(encoding="utf-8")
    page = (STATIC / path.lstrip("/")).read_text(encoding="utf-8")
    assert text == "(function () {\n" + client + "\n" + page + "})();\n"
    assert text.count("var nfWorker = ") == 1
    assert "public" in answer.headers["Cache-Control"]
    assert "max-age=300" in answer.headers["Cache-Control"]
    etag = answer.headers["ETag"]
    again = api.client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""


def test_the_two_scripts_have_their_own_etags(api: Api) -> None:
    tags = {api.client.get(p).headers["ETag"] for p in ("/newsflash.js", "/manage.js")}
    assert len(tags) == 2


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("path", ["/newsflash.js", "/manage.js"])
def test_the_served_script_parses_as_one_function(api: Api, path: str, tmp_path: Path) -> None:
    """Parsed by Node as a classic script, all of it inside one function (so `nfWorker` is no
    global on the publisher's page): a syntax error in the join would break every page."""
    served = tmp_path / "served.js"
    served.write_bytes(api.client.get(path).get_data())
    subprocess.run(["node", "--check", str(served)], check=True, capture_output=True)
    text = served.read_text()
    assert text.startswith("(function () {\n") and text.endswith("})();\n")
