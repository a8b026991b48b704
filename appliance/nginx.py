"""nginx in front of the app server (the node image): its config, rendered from ours.

`site()` is the server block — what `appliance nginx-config` prints, for a distribution's
sites-enabled — and `main()` a whole nginx.conf around it, for the http component to run
nginx under the appliance's own supervision. nginx serves [http].root under /assets/
(sendfile, Range requests, no symlinks, no listing) and proxies everything else to the
app server.
"""

from pathlib import Path

from appliance.config import Config


def _quote(path: str) -> str:
    if any(c in path for c in '";{}\\\n'):
        raise ValueError(f"path {path!r} cannot be written into an nginx config")
    return f'"{path}"'


def site(cfg: Config) -> str:
    app = cfg.appserver
    upstream = f"[{app.listen}]" if app.listen.version == 6 else str(app.listen)
    listen = f"[{cfg.http.listen}]" if cfg.http.listen.version == 6 else str(cfg.http.listen)
    root = cfg.http.root.rstrip("/") + "/"
    return f"""# Rendered by `appliance nginx-config`; edit the appliance config, not this file.
server {{
    listen {listen}:{cfg.http.port};
    server_name _;

    location /assets/ {{
        alias {_quote(root)};
        disable_symlinks on;
        autoindex off;
        sendfile on;
        tcp_nopush on;
    }}

    location / {{
        proxy_pass http://{upstream}:{app.port};
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;  # with its port: boot scripts point back at it
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        client_max_body_size 1m;
        proxy_read_timeout 60s;
    }}
}}
"""


def main(cfg: Config, workdir: Path) -> str:
    """A whole nginx.conf, in the foreground, keeping its files under `workdir`."""
    w = str(workdir)
    temps = "\n".join(f"    {kind}_temp_path {_quote(w + '/' + kind)};"
                      for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    indented = "\n".join("    " + line if line else "" for line in site(cfg).splitlines())
    return f"""# Rendered by the appliance's http component.
daemon off;
user {cfg.http.nginx_user};
worker_processes 1;
pid {_quote(w + "/nginx.pid")};
error_log {_quote(w + "/error.log")} warn;

events {{
    worker_connections 1024;
}}

http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    server_tokens off;
{temps}

{indented}
}}
"""
