"""The reports server `conversionflow ui` starts: read-only, one folder, loopback only."""

import http.client
import socket
import threading

import pytest

from conversionflow_dagster.cli import main
from conversionflow_dagster.report_server import REPORTS_URL_ENV, ReportServer, report_url


@pytest.fixture
def served(tmp_path):
    """A reports folder with one report, a secret beside it, and the server for the folder."""
    reports = tmp_path / "reports"
    (reports / "sample" / "2023-05").mkdir(parents=True)
    (reports / "sample" / "2023-05" / "attribution_report.html").write_text("<h1>budget</h1>")
    (tmp_path / "secret.txt").write_text("not for the browser")
    (reports / "sample" / "escape").symlink_to(tmp_path)
    server = ReportServer(reports, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def request(server: ReportServer, method: str, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    connection.request(method, path)
    response = connection.getresponse()
    status, body = response.status, response.read()
    connection.close()
    return status, body


def test_serves_a_report_on_loopback_only(served):
    assert served.server_address[0] == "127.0.0.1"
    assert served.url == f"http://127.0.0.1:{served.server_address[1]}/"
    status, body = request(served, "GET", "/sample/2023-05/attribution_report.html")
    assert (status, body) == (200, b"<h1>budget</h1>")
    assert request(served, "HEAD", "/sample/2023-05/attribution_report.html")[0] == 200
    status, listing = request(served, "GET", "/sample/")  # browse a project's months
    assert status == 200 and b"2023-05" in listing


ESCAPES = ["/../secret.txt", "/sample/../../secret.txt", "/%2e%2e/secret.txt"]


@pytest.mark.parametrize("path", [*ESCAPES, "/sample/escape/secret.txt"])  # the last: a link
def test_nothing_outside_the_folder_is_served(served, path):
    status, body = request(served, "GET", path)
    assert status == 404 and b"not for the browser" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_refuses_anything_but_reading(served, method):
    assert request(served, method, "/sample/2023-05/attribution_report.html")[0] == 501
    assert request(served, "GET", "/sample/2023-05/attribution_report.html")[0] == 200


def test_report_links_are_http_when_the_served_url_is_known(tmp_path, monkeypatch):
    report = tmp_path / "reports" / "sample" / "2023-05" / "attribution report.html"
    monkeypatch.delenv(REPORTS_URL_ENV, raising=False)
    assert report_url(report, tmp_path / "reports") == report.as_uri()
    monkeypatch.setenv(REPORTS_URL_ENV, "https://mmm.example.com/reports/")
    assert (
        report_url(report, tmp_path / "reports")
        == "https://mmm.example.com/reports/sample/2023-05/attribution%20report.html"
    )
    # a run that wrote its report elsewhere (--output) keeps the file's own path
    assert report_url(report, tmp_path / "elsewhere") == report.as_uri()


def test_ui_refuses_a_reports_port_in_use_before_starting_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--port", str(port - 1)]) == 2
    error = capsys.readouterr().err
    assert f"--reports-port {port}: Address already in use" in error
