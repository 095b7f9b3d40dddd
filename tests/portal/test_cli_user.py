"""``ccswitch user`` and the ``portal:`` config section, as an operator runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def config(tmp_path: Path, portal: Any = None) -> Path:
    data = yaml.safe_load((REPO / "deploy" / "ccswitch.yaml").read_text())
    data["recordings"]["directory"] = str(tmp_path / "recordings")
    data["dialplans"] = str(REPO / "dialplans")
    data.pop("cdr", None)
    data["portal"] = {} if portal is None else portal
    path = tmp_path / "ccswitch.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def ccswitch(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ccswitch.cli", *args], cwd=REPO, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_user_add_list_passwd_remove(tmp_path: Path) -> None:
    """A user is added, listed with role and vendor, re-passworded and removed."""
    cfg = str(config(tmp_path))
    added = ccswitch("user", "add", "vic", "--role", "vendor_reviewer", "--vendor", "acme",
                     "--password-stdin", "--config", cfg, stdin="a long password!\n")
    assert added.returncode == 0, added.stderr
    listed = ccswitch("user", "list", "--config", cfg)
    assert listed.stdout == "vic\tvendor_reviewer\tacme\n"
    changed = ccswitch("user", "passwd", "vic", "--password-stdin", "--config", cfg,
                       stdin="another long password\n")
    assert changed.returncode == 0, changed.stderr
    assert ccswitch("user", "remove", "vic", "--config", cfg).returncode == 0
    assert ccswitch("user", "list", "--config", cfg).stdout == ""


def test_user_add_with_a_bad_role_binding_fails_clearly(tmp_path: Path) -> None:
    """A supervisor with --vendor is refused with exit 1 and the reason."""
    result = ccswitch("user", "add", "sue", "--role", "supervisor", "--vendor", "acme",
                      "--password-stdin", "--config", str(config(tmp_path)),
                      stdin="a long password!\n")
    assert result.returncode == 1 and "only a vendor_reviewer" in result.stderr


def test_check_names_a_bad_portal_key(tmp_path: Path) -> None:
    """A bad portal setting fails ``check`` with the key and the reason."""
    result = ccswitch("check", "--config", str(config(tmp_path, {"lockout": -1, "tz": "Mars/X"})))
    assert result.returncode == 2
    assert "portal.lockout" in result.stdout and "portal.tz" in result.stdout


def test_check_refuses_peers_without_an_api_token(tmp_path: Path) -> None:
    """portal.peers needs http.api_token_file (peers are read through the operator API)."""
    result = ccswitch("check", "--config", str(config(tmp_path, {"peers": ["http://b:9060"]})))
    assert result.returncode == 2 and "portal.peers" in result.stdout
    assert "api_token_file" in result.stdout


def test_check_refuses_a_peer_that_is_not_a_base_url(tmp_path: Path) -> None:
    """A peer with a path or another scheme is named in the error."""
    result = ccswitch("check", "--config",
                      str(config(tmp_path, {"peers": ["ftp://b/x"]})))
    assert result.returncode == 2 and "ftp://b/x" in result.stdout
