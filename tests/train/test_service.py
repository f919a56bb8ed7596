"""The coordination service in a child process (xtjax.parallel.service): it serves, shuts down when asked,
outlives a dead process 0, and a port in use is one line. (The pod-level proof: tests/train/test_multihost.py
test_a_killed_peer_is_one_line[0], where process 0 is SIGKILL'd and the survivor prints its one line.)"""

import socket
import time

import pytest

from xtjax.errors import ConfigError
from xtjax.parallel import service


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _client(port: int):
  from jax._src.lib import _jax

  client = _jax.get_distributed_runtime_client(f"localhost:{port}", 0, init_timeout=20, heartbeat_timeout=30)
  client.connect()
  return client


def test_serves_and_shuts_down_when_asked():
  port = _free_port()
  child = service.ChildService([f"[::]:{port}", 1], {"heartbeat_timeout": 30, "shutdown_timeout": 10})
  client = _client(port)
  client.key_value_set("k", "v")
  assert client.key_value_try_get("k") == "v"
  client.shutdown()
  child.shutdown()
  assert child.proc.returncode == 0


def test_outlives_its_parent_for_the_grace_period(monkeypatch):
  monkeypatch.setattr(service, "grace_s", lambda: 3.0)
  port = _free_port()
  child = service.ChildService([f"[::]:{port}", 1], {"heartbeat_timeout": 30, "shutdown_timeout": 10})
  child.proc.stdin.close()  # what process 0's death looks like to the child: its input ends without "shutdown"
  time.sleep(1.0)
  assert child.proc.poll() is None  # still serving the survivors
  child.proc.wait(timeout=20)


def test_a_port_in_use_is_one_line():
  with socket.socket(socket.AF_INET6) as s:
    s.bind(("::", 0))
    s.listen()
    port = s.getsockname()[1]
    with pytest.raises(ConfigError, match=rf"^the JAX coordination service at \[::\]:{port} did not start: \S"):
      service.ChildService([f"[::]:{port}", 1], {"heartbeat_timeout": 30})
