"""A private rspamd on loopback: a copy of the packaged /etc/rspamd with our local.d overrides, and the
command that runs it in the foreground. Used by `make run` (scripts/dev_run.py) and the test fixture.

    write_config(confdir, scan_port=11333, controller_port=11334, nameservers="127.0.0.1:5353")
    subprocess.Popen(rspamd_command(binary, confdir, rundir))
"""

from __future__ import annotations

import os
import shutil
import socket
import time

SYSTEM_CONFDIR = "/etc/rspamd"
USER = "_rspamd"

# Workers and modules that would reach the internet, need Redis or are of no use to a scanner on loopback.
_DISABLED = ("worker-proxy.inc", "worker-fuzzy.inc", "fuzzy_check.conf", "rbl.conf", "url_redirector.conf",
             "rspamd_update.conf", "asn.conf", "emails.conf")
# Without these the authentication modules skip "local" mail (127.0.0.1 always is, whatever local_addrs says)
# and mail with a `User` header.
_CHECK_LOCAL = ("spf.conf", "dkim.conf", "dmarc.conf", "arc.conf")


def _nameserver_list(nameservers: str) -> str:
    servers = [s.strip() for s in nameservers.split(",") if s.strip()]
    return ", ".join(f'"{s}"' for s in servers)


def local_overrides(*, scan_port: int, controller_port: int, nameservers: str = "",
                    hs_cache_dir: str = "") -> dict[str, str]:
    """local.d file name -> content. Empty `nameservers` keeps the system resolver (/etc/resolv.conf);
    `hs_cache_dir` keeps compiled Hyperscan databases across runs (a first start compiles them: ~13 s)."""
    dns = f"dns {{\n  nameserver = [{_nameserver_list(nameservers)}];\n  timeout = 2s;\n  retransmits = 2;\n}}\n" \
        if nameservers.strip() else ""
    files = {
        "worker-normal.inc": f'bind_socket = "127.0.0.1:{scan_port}";\n',
        "worker-controller.inc": f'bind_socket = "127.0.0.1:{controller_port}";\n',
        # local_addrs = []: private networks (10/8, 172.16/12, a Docker bridge) are not trusted as local senders.
        "options.inc": dns + "local_addrs = [];\n" + (f'hs_cache_dir = "{hs_cache_dir}";\n' if hs_cache_dir else ""),
        # logging to stderr of the foreground process would interleave with ours; a file under rundir instead.
        "logging.inc": 'type = "file";\nfilename = "$LOGDIR/rspamd.log";\nlevel = "warning";\n',
    }
    files.update({name: "enabled = false;\n" for name in _DISABLED})
    files.update({name: "check_local = true;\ncheck_authed = true;\n" for name in _CHECK_LOCAL})
    return files


def write_config(confdir: str, *, scan_port: int, controller_port: int, nameservers: str = "",
                 hs_cache_dir: str = "") -> None:
    """Copy the packaged configuration to `confdir` (replacing an older copy) and write our overrides."""
    if not os.path.isfile(os.path.join(SYSTEM_CONFDIR, "rspamd.conf")):
        raise FileNotFoundError(f"{SYSTEM_CONFDIR}/rspamd.conf not found (apt-get install rspamd)")
    shutil.rmtree(confdir, ignore_errors=True)
    shutil.copytree(SYSTEM_CONFDIR, confdir, symlinks=True)
    local = os.path.join(confdir, "local.d")
    os.makedirs(local, exist_ok=True)
    for name, content in local_overrides(scan_port=scan_port, controller_port=controller_port,
                                         nameservers=nameservers, hs_cache_dir=hs_cache_dir).items():
        with open(os.path.join(local, name), "w", encoding="utf-8") as f:
            f.write(content)


def prepare_dir(path: str) -> None:
    """A directory rspamd writes (pid file, databases, log, Hyperscan cache): as root it runs as _rspamd."""
    os.makedirs(path, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(path, USER, USER)


def rspamd_command(binary: str, confdir: str, rundir: str) -> list[str]:
    """rspamd in the foreground on the private configuration; as root it runs as _rspamd."""
    user = ["-u", USER, "-g", USER] if os.geteuid() == 0 else []
    return [binary, "-f", *user, "-c", os.path.join(confdir, "rspamd.conf"),
            f"--var=CONFDIR={confdir}", f"--var=LOCAL_CONFDIR={confdir}",
            f"--var=RUNDIR={rundir}", f"--var=DBDIR={rundir}", f"--var=LOGDIR={rundir}"]


def pings(host: str, port: int, timeout: float = 1.0) -> bool:
    """GET /ping answers `pong`: the worker is up and serving (a listening socket alone is not enough)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
        return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0] and b"pong" in reply
    except OSError:
        return False


def wait_until_pings(host: str, port: int, timeout: float, alive=lambda: True) -> bool:
    """True once /ping answers; False after `timeout` or as soon as `alive()` says the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        if pings(host, port):
            return True
        time.sleep(0.1)
    return False
