"""S1 (b): nginx as a reverse proxy with keep-alive to the upstream (a well-made hop)."""

from __future__ import annotations

from pathlib import Path

from bench.procs import Proc, wait_port

__all__ = ["start_nginx"]

_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    upstream backend {{
        server 127.0.0.1:{upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def start_nginx(workdir: Path, port: int, upstream: int) -> Proc:
    """nginx (one worker, like the relay's one process) on ``port`` in front of ``upstream``."""
    root = workdir / "nginx"
    root.mkdir(exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(_CONF.format(dir=root, port=port, upstream=upstream))
    proc = Proc("nginx", ["nginx", "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
                logdir=workdir, ready=None)
    wait_port(port)
    return proc
