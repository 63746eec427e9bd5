"""The image's three commands (web, worker, beat) and compose's health checks, run as the image runs them.

`stack` (conftest.py) has already run the Dockerfile's collectstatic step and `entrypoint.sh migrate`
on a fresh database, then started `entrypoint.sh web|worker|beat` with the image's environment
(DEBUG=false). The health checks run here are the ones docker-compose.yml declares, argv for argv.
"""

import json
import re
import socket

import pytest

from config.celery import QUEUES
from tests.deploy.conftest import Stack, free_port, get, healthcheck_argv, wait_until

BEAT_SECONDS = 90  # the outbox sweep is due 30 s after beat starts


def test_web_is_gunicorn_with_debug_off_and_ready(stack: Stack):
    status, body = get(f"{stack.url}/health/ready")
    missing, page = get(f"{stack.url}/no-such-page/")

    assert status == 200
    assert json.loads(body)["checks"] == {"database": "ok", "cache": "ok", "broker": "ok"}
    assert missing == 404
    assert b"URLconf" not in page  # DEBUG's technical 404 page lists the URLconf; production's does not
    web_log = stack.processes["web"].log()
    assert "Starting gunicorn" in web_log
    assert web_log.count("Booting worker with pid") == 2  # config/gunicorn.conf.py: WEB_CONCURRENCY 2 by default


def test_compose_web_health_check_passes_and_fails_with_no_web(stack: Stack):
    check = healthcheck_argv("web")

    healthy = stack.run(*check)
    nobody = stack.run(*check, PORT=str(free_port()))

    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert '"status": "ok"' in healthy.stdout
    assert nobody.returncode != 0
    assert "web not ready" in nobody.stderr


@pytest.mark.timeout(120)
def test_compose_worker_health_check_gets_a_pong_and_fails_with_no_worker(stack: Stack):
    check = healthcheck_argv("worker")
    elsewhere = stack.env["REDIS_URL"].rsplit("/", 1)[0] + "/10"  # a broker database no worker consumes

    healthy = stack.run(*check)
    nobody = stack.run(*check, REDIS_URL=elsewhere)

    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert re.search(rf"celery@{re.escape(socket.gethostname())}: OK\s+pong", healthy.stdout), healthy.stdout
    assert nobody.returncode != 0
    assert "No nodes replied" in nobody.stdout + nobody.stderr


@pytest.mark.timeout(120)
def test_worker_consumes_every_queue_of_the_app(stack: Stack):
    result = stack.run("celery", "-A", "config", "inspect", "active_queues", "--json", "--timeout", "5")

    assert result.returncode == 0, result.stdout + result.stderr
    replies = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(replies) == 1
    (queues,) = replies.values()
    assert {queue["name"] for queue in queues} == set(QUEUES)


@pytest.mark.timeout(180)
def test_beat_sends_due_tasks_that_the_worker_runs(stack: Stack):
    beat, worker = stack.processes["beat"], stack.processes["worker"]

    wait_until(
        lambda: "Sending due task outbox-relay-sweep" in beat.log(),
        seconds=BEAT_SECONDS,
        what="beat sending the outbox sweep",
        log=beat.log,
    )
    wait_until(
        lambda: any("events.tasks.relay_outbox[" in line and "succeeded" in line for line in worker.log().splitlines()),
        seconds=30,
        what="the worker running the outbox sweep beat sent",
        log=worker.log,
    )
    healthy = stack.run(*healthcheck_argv("beat"))
    nothing = stack.run(*healthcheck_argv("beat"), BEAT_SCHEDULE_FILE=str(stack.schedule_file) + "-none")

    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert nothing.returncode != 0
    assert "no schedule file" in nothing.stderr
    for process in stack.processes.values():
        assert process.alive(), process.name
