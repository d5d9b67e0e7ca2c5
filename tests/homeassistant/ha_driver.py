#!/usr/bin/env python3
"""Run a real, offline Home Assistant 2024.3.3 for Vigil's end-to-end tests.

Usage (with the venv's python, see README.md):

    ha_driver.py --config-dir DIR --broker-host H --broker-port P \
        --ca-file CA.pem --username U --password-file F [--port HTTP_PORT]

Writes DIR/configuration.yaml (and .storage/onboarding with the core_config
step done), starts `python -m homeassistant -c DIR --skip-pip`, onboards it
through the REST API, adds the MQTT integration
through the REST config flow (TLS with the given CA, verified; user and
password; discovery on, prefix `homeassistant`), checks that Home Assistant
really talks to the broker, then prints ONE JSON line on stdout:

    {"url": "http://127.0.0.1:PORT", "token": "<long-lived access token>"}

and keeps Home Assistant running until stdin closes or SIGTERM/SIGINT, then
stops it (SIGTERM, SIGKILL after 10 s). Everything else goes to stderr.

Also: `--print-requirements` prints the pip requirements of every integration
Home Assistant loads with this configuration (used by ./setup), and
`--check-requirements` exits non-zero when one of them is not installed.
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

# Integrations named in configuration.yaml (no `default_config:`).
# http/api/auth/onboarding/config/websocket_api: REST + websocket API,
# onboarding and the config-entry flow API; mqtt + the entity domains the
# Vigil bridge publishes.
INTEGRATIONS = [
    "http",
    "api",
    "auth",
    "onboarding",
    "config",
    "websocket_api",
    "mqtt",
    "alarm_control_panel",
    "binary_sensor",
    "camera",
    "button",
    "sensor",
]

# The onboarding core_config step would start config flows for these
# (google_translate, met, radio_browser need libraries we do not install:
# HTTP 500, and met/radio_browser would go online). The driver marks that step
# done in .storage/onboarding before HA starts, so it never runs; should one of
# these entries appear anyway, the driver deletes it.
ONBOARDING_SIDE_DOMAINS = ("google_translate", "met", "radio_browser", "shopping_list")

HA_USER = "vigil"
HA_NAME = "Vigil Test"
CLIENT_NAME = "vigil-e2e"


def log(msg: str) -> None:
    print(f"ha_driver: {msg}", file=sys.stderr, flush=True)


class DriverError(Exception):
    pass


# ---------------------------------------------------------------- requirements


def required_packages() -> list[str]:
    """Pip requirements of all integrations HA sets up with our config.

    Mirrors homeassistant.requirements: dependencies + after_dependencies +
    the discovery integrations, starting from our YAML keys and HA's
    bootstrap DEFAULT_INTEGRATIONS/CORE_INTEGRATIONS.
    """
    import homeassistant
    from homeassistant import bootstrap, requirements

    comp = Path(homeassistant.__file__).parent / "components"
    start = set(INTEGRATIONS) | set(bootstrap.DEFAULT_INTEGRATIONS) | set(
        bootstrap.CORE_INTEGRATIONS
    )
    seen: set[str] = set()
    todo = sorted(start)
    reqs: set[str] = set()
    while todo:
        dom = todo.pop()
        if dom in seen:
            continue
        seen.add(dom)
        manifest = comp / dom / "manifest.json"
        if not manifest.exists():
            continue
        m = json.loads(manifest.read_text())
        reqs.update(m.get("requirements", []))
        todo += m.get("dependencies", []) + m.get("after_dependencies", [])
        for check, keys in requirements.DISCOVERY_INTEGRATIONS.items():
            if any(k in m for k in keys):
                todo.append(check)
    return sorted(reqs, key=str.lower)


def check_requirements() -> int:
    from homeassistant.util.package import is_installed

    missing = [r for r in required_packages() if not is_installed(r)]
    if missing:
        print("missing: " + " ".join(missing), file=sys.stderr)
        return 1
    print(f"all {len(required_packages())} integration requirements installed")
    return 0


# ---------------------------------------------------------------- config


def write_config(config_dir: Path, port: int) -> None:
    lines = [
        "# Written by Vigil's tests/homeassistant/ha_driver.py; no default_config.",
        "homeassistant:",
        f"  name: {HA_NAME}",
        # 0/0 makes the onboarding's `met` flow abort (no weather fetching).
        "  latitude: 0",
        "  longitude: 0",
        "  elevation: 0",
        "  unit_system: metric",
        "  time_zone: UTC",
        "  country: DE",
        "  currency: EUR",
        "http:",
        "  server_host: 127.0.0.1",
        f"  server_port: {port}",
        "  ip_ban_enabled: false",
        "logger:",
        "  default: warning",
        "  logs:",
        "    homeassistant.components.mqtt: info",
    ]
    for dom in INTEGRATIONS:
        if dom not in ("http",):
            lines.append(f"{dom}:")
    (config_dir / "configuration.yaml").write_text("\n".join(lines) + "\n")
    # Onboarding's core_config step: already done (location etc. are in the
    # YAML above), so HA starts none of its side integrations.
    storage = config_dir / ".storage"
    storage.mkdir(exist_ok=True)
    (storage / "onboarding").write_text(
        json.dumps(
            {"version": 4, "minor_version": 1, "key": "onboarding",
             "data": {"done": ["core_config"]}}
        )
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pdeathsig() -> None:
    # Kill Home Assistant if this driver dies without cleaning up.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# ---------------------------------------------------------------- HTTP helpers


class HA:
    def __init__(self, session, url: str) -> None:
        self.s = session
        self.url = url
        self.token: str | None = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def request(self, method: str, path: str, expect=(200,), **kw):
        async with self.s.request(
            method, self.url + path, headers=self._headers(), **kw
        ) as r:
            text = await r.text()
            if r.status not in expect:
                raise DriverError(f"{method} {path} -> HTTP {r.status}: {text[:500]}")
            try:
                return r.status, json.loads(text) if text else None
            except ValueError:
                return r.status, text

    async def post(self, path: str, body=None, **kw):
        return (await self.request("POST", path, json=body, **kw))[1]

    async def get(self, path: str, **kw):
        return (await self.request("GET", path, **kw))[1]


async def wait_http(ha: HA, proc: subprocess.Popen, deadline: float) -> None:
    import aiohttp

    while True:
        if proc.poll() is not None:
            raise DriverError(f"hass exited early with code {proc.returncode}")
        try:
            async with ha.s.get(
                ha.url + "/api/onboarding", timeout=aiohttp.ClientTimeout(total=5)
            ) as r:
                if r.status == 200:
                    return
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise DriverError("timed out waiting for Home Assistant's HTTP server")
        await asyncio.sleep(0.25)


async def wait_running(ha: HA, proc: subprocess.Popen, deadline: float) -> None:
    while True:
        if proc.poll() is not None:
            raise DriverError(f"hass exited early with code {proc.returncode}")
        cfg = await ha.get("/api/config")
        if cfg.get("state") == "RUNNING":
            return
        if time.monotonic() > deadline:
            raise DriverError(f"Home Assistant state is {cfg.get('state')!r}, not RUNNING")
        await asyncio.sleep(0.25)


# ---------------------------------------------------------------- onboarding


async def onboard(ha: HA, ha_password: str) -> None:
    client_id = ha.url + "/"
    steps = {s["step"]: s["done"] for s in await ha.get("/api/onboarding")}
    if steps.get("user"):
        raise DriverError("this config dir is already onboarded; use an empty --config-dir")
    res = await ha.post(
        "/api/onboarding/users",
        {
            "client_id": client_id,
            "name": HA_NAME,
            "username": HA_USER,
            "password": ha_password,
            "language": "en",
        },
    )
    async with ha.s.post(
        ha.url + "/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": res["auth_code"],
            "client_id": client_id,
        },
    ) as r:
        tok = await r.json()
        if r.status != 200:
            raise DriverError(f"/auth/token -> {r.status}: {tok}")
    ha.token = tok["access_token"]

    # core_config was marked done by write_config (see ONBOARDING_SIDE_DOMAINS).
    await ha.post("/api/onboarding/analytics", {})
    await ha.post(
        "/api/onboarding/integration",
        {"client_id": client_id, "redirect_uri": client_id + "?auth_callback=1"},
    )
    steps = await ha.get("/api/onboarding")
    if not all(s["done"] for s in steps):
        raise DriverError(f"onboarding not complete: {steps}")

    for entry in await ha.get("/api/config/config_entries/entry"):
        if entry["domain"] in ONBOARDING_SIDE_DOMAINS:
            await ha.request(
                "DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}"
            )
            log(f"removed onboarding's {entry['domain']} config entry")

    # Long-lived token (10 years) instead of the 30-minute access token.
    async with ha.s.ws_connect(ha.url + "/api/websocket") as ws:
        msg = await ws.receive_json()
        assert msg["type"] == "auth_required", msg
        await ws.send_json({"type": "auth", "access_token": ha.token})
        msg = await ws.receive_json()
        if msg["type"] != "auth_ok":
            raise DriverError(f"websocket auth failed: {msg}")
        await ws.send_json(
            {
                "id": 1,
                "type": "auth/long_lived_access_token",
                "client_name": CLIENT_NAME,
                "lifespan": 3650,
            }
        )
        msg = await ws.receive_json()
        if not msg.get("success"):
            raise DriverError(f"long-lived token failed: {msg}")
        ha.token = msg["result"]


# ---------------------------------------------------------------- MQTT


async def configure_mqtt(ha: HA, args, password: str) -> dict:
    import aiohttp

    ca_pem = Path(args.ca_file).read_bytes()
    form = aiohttp.FormData()
    form.add_field("file", ca_pem, filename="ca.crt", content_type="application/x-x509-ca-cert")
    file_id = (await ha.post("/api/file_upload", data=form))["file_id"]

    base = {
        "broker": args.broker_host,
        "port": args.broker_port,
        "username": args.username,
        "password": password,
    }
    flow = await ha.post(
        "/api/config/config_entries/flow",
        {"handler": "mqtt", "show_advanced_options": True},
    )
    fid = flow["flow_id"]
    path = f"/api/config/config_entries/flow/{fid}"

    def fields(f) -> list[str]:
        return [x["name"] for x in f.get("data_schema", [])]

    # 1) ask for the advanced broker options
    flow = await ha.post(path, {**base, "advanced_options": True})
    if "set_ca_cert" not in fields(flow):
        raise DriverError(f"mqtt flow shows no certificate options: {flow}")
    # 2) choose a custom CA: the form then asks for the certificate file
    flow = await ha.post(path, {**base, "set_ca_cert": "custom", "tls_insecure": False})
    if flow.get("type") != "form" or "certificate" not in fields(flow):
        raise DriverError(f"mqtt flow did not ask for a CA certificate: {flow}")
    # 3) the uploaded CA (file_upload id); HA checks it and connects (TLS,
    #    hostname verified since tls_insecure is false)
    flow = await ha.post(
        path,
        {**base, "set_ca_cert": "custom", "certificate": file_id, "tls_insecure": False},
    )
    if flow.get("type") != "create_entry":
        raise DriverError(
            f"mqtt flow did not create an entry (errors={flow.get('errors')}): {flow}"
        )
    entry = flow["result"]
    log(f"mqtt config entry {entry['entry_id']} created (state {entry.get('state')})")
    return entry


def _mqtt_roundtrip_sync(args, password: str, topic: str, publish) -> bool:
    """Subscribe with paho (TLS, same CA) and wait for HA's publish."""
    import paho.mqtt.client as mqtt

    got = threading.Event()
    subscribed = threading.Event()
    c = mqtt.Client(client_id=f"vigil-ha-driver-{secrets.token_hex(4)}")
    c.username_pw_set(args.username, password)
    c.tls_set(ca_certs=args.ca_file, cert_reqs=ssl.CERT_REQUIRED)
    c.on_connect = lambda cl, u, f, rc, *a: cl.subscribe(topic, 1)
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_message = lambda cl, u, m: got.set()
    c.connect(args.broker_host, args.broker_port, 30)
    c.loop_start()
    try:
        if not subscribed.wait(15):
            raise DriverError("driver's own MQTT client could not subscribe")
        for _ in range(40):
            publish()
            if got.wait(0.5):
                return True
        return False
    finally:
        c.disconnect()
        c.loop_stop()


async def check_mqtt_connected(ha: HA, args, password: str) -> None:
    # Home Assistant's own birth topic: the one topic its broker user may
    # write whatever the ACL (docs/mqtt.md gives it homeassistant/status).
    topic = "homeassistant/status"
    loop = asyncio.get_running_loop()

    def publish() -> None:
        fut = asyncio.run_coroutine_threadsafe(
            ha.post("/api/services/mqtt/publish", {"topic": topic, "payload": "online"}),
            loop,
        )
        try:
            fut.result(10)
        except Exception as exc:  # noqa: BLE001 - retried
            log(f"mqtt.publish not yet possible: {exc}")

    ok = await loop.run_in_executor(
        None, _mqtt_roundtrip_sync, args, password, topic, publish
    )
    if not ok:
        raise DriverError("Home Assistant did not publish to the broker within 20 s")


# ---------------------------------------------------------------- main


def stop_hass(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    log(f"stopping Home Assistant (pid {proc.pid})")
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        log("Home Assistant did not stop within 10 s; killing it")
        proc.kill()
        proc.wait()
    log(f"Home Assistant exited with code {proc.returncode}")


async def run(args) -> int:
    import aiohttp

    config_dir = Path(args.config_dir).resolve()
    config_dir.mkdir(parents=True, exist_ok=True)
    if (config_dir / ".storage").exists():
        raise DriverError(f"{config_dir} holds an earlier Home Assistant; use an empty dir")
    password = Path(args.password_file).read_text().strip("\r\n")
    if not Path(args.ca_file).is_file():
        raise DriverError(f"no CA file {args.ca_file}")
    port = args.port or free_port()
    write_config(config_dir, port)
    url = f"http://127.0.0.1:{port}"

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    console_log = config_dir / "hass-console.log"
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "homeassistant", "-c", str(config_dir), "--skip-pip"]
    log(f"starting {' '.join(cmd)} (console output: {console_log})")
    with open(console_log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_pdeathsig,
            env={k: v for k, v in os.environ.items() if k != "SUPERVISOR"},
        )

    async def bring_up() -> str:
        deadline = time.monotonic() + args.timeout
        async with aiohttp.ClientSession() as s:
            ha = HA(s, url)
            await wait_http(ha, proc, deadline)
            log(f"HTTP up after {time.monotonic() - t0:.1f} s")
            ha_password = secrets.token_urlsafe(18)
            await onboard(ha, ha_password)
            await wait_running(ha, proc, deadline)
            await configure_mqtt(ha, args, password)
            await check_mqtt_connected(ha, args, password)
            return ha.token

    task = asyncio.ensure_future(bring_up())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            task.cancel()
            log("stopped before Home Assistant was ready")
            return 1
        try:
            token = task.result()
        except Exception as exc:  # noqa: BLE001
            log(f"ERROR: {exc}")
            try:
                tail = console_log.read_text(errors="replace").splitlines()[-40:]
                log("last lines of " + str(console_log) + ":\n" + "\n".join(tail))
            except OSError:
                pass
            return 1
        log(f"ready {time.monotonic() - t0:.1f} s after start (HA pid {proc.pid}, "
            f"owner user {HA_USER!r}, logs in {config_dir})")
        sys.stdout.write(json.dumps({"url": url, "token": token}) + "\n")
        sys.stdout.flush()

        if not args.ignore_stdin:
            def watch_stdin() -> None:
                try:
                    while sys.stdin.buffer.read1(65536):
                        pass
                except (OSError, ValueError):
                    pass
                loop.call_soon_threadsafe(stop.set)

            threading.Thread(target=watch_stdin, daemon=True).start()

        while not stop.is_set():
            if proc.poll() is not None:
                log(f"ERROR: Home Assistant exited on its own with code {proc.returncode}")
                return 1
            try:
                await asyncio.wait_for(stop.wait(), 1)
            except asyncio.TimeoutError:
                pass
        return 0
    finally:
        stopper.cancel()
        await loop.run_in_executor(None, stop_hass, proc)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config-dir")
    p.add_argument("--broker-host")
    p.add_argument("--broker-port", type=int)
    p.add_argument("--ca-file")
    p.add_argument("--username")
    p.add_argument("--password-file")
    p.add_argument("--port", type=int, default=0, help="HTTP port (default: a free one)")
    p.add_argument("--timeout", type=float, default=180, help="seconds to get ready")
    p.add_argument("--ignore-stdin", action="store_true",
                   help="stop only on SIGTERM/SIGINT, not when stdin closes")
    p.add_argument("--print-requirements", action="store_true")
    p.add_argument("--check-requirements", action="store_true")
    args = p.parse_args()
    if args.print_requirements:
        print("\n".join(required_packages()))
        return 0
    if args.check_requirements:
        return check_requirements()
    need = ["config_dir", "broker_host", "broker_port", "ca_file", "username", "password_file"]
    missing = [f"--{n.replace('_', '-')}" for n in need if getattr(args, n) in (None, "")]
    if missing:
        p.error("missing " + ", ".join(missing))
    try:
        return asyncio.run(run(args))
    except DriverError as exc:
        log(f"ERROR: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
