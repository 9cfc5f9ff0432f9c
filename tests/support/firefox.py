"""Launch and drive a real headless firefox-esr, wired to a local web push server.

`launch_firefox(push_server_ws_url)` starts `firefox-esr --headless --marionette
--remote-allow-system-access --profile DIR` on a throw-away profile, connects the
Marionette client and yields a `Firefox` handle; on exit it kills Firefox's whole process
group, whatever happened. Every wait has a timeout, so a broken browser fails a test
instead of hanging it.

Finding and clicking a notification: with `alerts.useSystemBackend=false` Firefox shows
each web notification as its own XUL window (chrome://global/content/alerts/alert.xhtml,
window type "alert:alert"). In chrome context the harness enumerates those windows
(`Services.wm.getEnumerator("alert:alert")`) and reads `#alertTitleLabel` (title),
`#alertTextLabel` (body) and `#alertSourceLabel` (origin). The tag is not shown in that
window, so `Firefox.page_notifications()` reads it through the page's own
`ServiceWorkerRegistration.getNotifications()`. A click is a mousedown/mouseup pair sent
through the alert window's presshell at its title (chrome-only `Window.synthesizeMouseEvent`,
what Mozilla's EventUtils uses; `windowUtils.sendMouseEvent` on older ESRs): Gecko makes a
click of it, alert.js's window click handler calls `onAlertClick()`, which notifies the alert
listener ("alertclickcallback"), and Gecko fires `notificationclick` in the service worker
just as for a person's click. `wait_for_tab(url)` then checks the tab the worker opened.

Profile prefs (user.js), and why each is there:

Push and notifications
- dom.push.enabled = true; dom.serviceWorkers.enabled = true: the features under test.
- dom.push.connection.enabled = true: Marionette's recommended prefs turn it off for
  automation; a pref set in user.js wins, because recommended prefs skip prefs that
  already have a user value.
- dom.push.serverURL = the stand-in's ws:// URL: where Firefox's push client connects.
- dom.push.testing.allowInsecureServerURL = true: Firefox refuses a ws:// (non-TLS) push
  server without it.
- dom.push.userAgentID = "": a fresh profile has no uaid; the server assigns one.
- dom.push.retryBaseInterval = 1000: reconnect after 1 s, not 5 s, if the socket drops.
- dom.push.loglevel = "debug": PushService logs go to the Firefox log kept for failures.
- dom.serviceWorkers.testing.enabled = true: allows service workers on plain-http origins
  other than 127.0.0.1/localhost and skips the HTTP cache for worker scripts.
- dom.serviceWorkers.disable_open_click_delay = 10000: how long after `notificationclick`
  the worker may call `clients.openWindow()`; 1 s by default, too tight on a loaded CI box.
- permissions.default.desktop-notification = 1: grant notification (and so push)
  permission to every site, so pushManager.subscribe() never shows a prompt.
- alerts.useSystemBackend = false: show notifications as XUL alert windows the harness can
  find and click, not via libnotify/D-Bus, which headless CI does not have.
- alerts.showFavicons = false: no favicon lookup before an alert shows.
- ui.prefersReducedMotion = 1: alert windows skip their slide animation; they then close on
  a fixed 20 s timer and close at once when clicked.
- places.history.enabled (left at its default, true): Firefox's push quota is based on
  visits to the site in history; without history a push to a site with no open tab is
  dropped.

Marionette
- marionette.port = 0: Marionette binds a free port and writes it to
  `<profile>/MarionetteActivePort`, which the harness reads (no race for a port).

Quiet: no first-run pages, prompts or background work that slows or disturbs a test
- browser.shell.checkDefaultBrowser, browser.startup.homepage_override.mstone = "ignore",
  browser.startup.page = 0, browser.startup.homepage and startup.homepage_welcome_url =
  "about:blank", startup.homepage_welcome_url.additional = "", browser.aboutwelcome.enabled,
  browser.newtabpage.enabled, browser.newtab.preload, trailhead.firstrun.didSeeAboutWelcome,
  browser.sessionstore.resume_from_crash, toolkit.startup.max_resumed_crashes = -1,
  browser.tabs.warnOnClose, browser.warnOnQuit, browser.uitour.enabled,
  termsofuse.bypassNotification, datareporting.policy.dataSubmissionPolicyBypassNotification,
  browser.dom.window.dump.enabled and devtools.console.stdout.{chrome,content}: page and
  service worker console output lands in the Firefox log.

Offline: Firefox must only ever talk to loopback. Each service that phones home is switched
off or pointed at nothing:
- telemetry/Glean: toolkit.telemetry.{enabled,unified,archive.enabled,newProfilePing.enabled,
  shutdownPingSender.enabled,updatePing.enabled,bhrPing.enabled,firstShutdownPing.enabled}
  = false, toolkit.telemetry.server = "", datareporting.healthreport.uploadEnabled,
  datareporting.policy.dataSubmissionEnabled, datareporting.usage.uploadEnabled = false,
  telemetry.fog.test.localhost_port = -1 (Glean uploads nowhere), browser.ping-centre.telemetry.
- studies and messaging: app.normandy.enabled = false, app.normandy.api_url = "",
  app.shield.optoutstudies.enabled, messaging-system.rsexperimentloader.enabled,
  browser.discovery.enabled = false.
- updates: app.update.disabledForTesting, app.update.auto = false, extensions.update.enabled,
  extensions.systemAddon.update.enabled, extensions.getAddons.cache.enabled,
  extensions.blocklist.enabled, extensions.quarantinedDomains.enabled = false,
  extensions.getAddons.discovery.api_url, extensions.systemAddon.update.url = "",
  browser.search.update = false, media.gmp-manager.updateEnabled = false and
  media.gmp-manager.url = "" (no OpenH264/Widevine download),
  media.gmp-{gmpopenh264,widevinecdm}.enabled = false.
- remote settings: services.settings.server = "data:,#remote-settings-dummy/v1" (what
  Mozilla's own automation uses), security.remote_settings.{crlite_filters,intermediates}
  .enabled = false. The stand-in answers `broadcast_subscribe` with nothing, so the push
  socket never triggers a Remote Settings sync either.
- safe browsing and tracking protection lists: browser.safebrowsing.{malware,phishing,
  downloads,downloads.remote,blockedURIs,passwords}.enabled = false, every
  browser.safebrowsing.provider.*.{updateURL,gethashURL} = "",
  privacy.trackingprotection.enabled = false.
- network probes: network.captive-portal-service.enabled = false, captivedetect.canonicalURL
  = "", network.connectivity-service.enabled = false, network.manage-offline-status = false
  (also keeps Firefox from going "offline" on a box with only loopback, which would stop the
  push socket), network.trr.mode = 5 (no DNS over HTTPS), network.dns.disablePrefetch,
  network.prefetch-next, network.predictor.enabled = false,
  network.http.speculative-parallel-limit = 0, browser.urlbar.speculativeConnect.enabled
  = false.
- location and search: geo.provider.network.url, browser.region.network.url = "",
  browser.region.update.enabled, browser.search.suggest.enabled,
  browser.urlbar.suggest.searches, browser.urlbar.quicksuggest.enabled = false,
  browser.urlbar.merino.endpointURL = "".
- new tab/pocket/accounts/misc: browser.topsites.contile.enabled,
  browser.newtabpage.activity-stream.{feeds.system.topstories,feeds.section.topstories,
  showSponsored,showSponsoredTopSites,telemetry,feeds.telemetry} = false,
  extensions.pocket.enabled, identity.fxaccounts.enabled, browser.translations.enable,
  browser.ml.enable, browser.backup.{enabled,scheduled.enabled},
  security.certerrors.mitm.priming.enabled = false, security.OCSP.enabled = 0,
  browser.crashReports.unsubmittedCheck.enabled = false, network.sntp.pools = "".
- belt and braces, so a service nobody thought of still cannot leave the machine:
  network.dns.native-is-localhost = true (every host name resolves to 127.0.0.1, without
  asking a DNS server), network.dns.native_https_query = false (no HTTPS-record DNS query),
  network.proxy.type = 1 with network.proxy.{http,ssl} = 127.0.0.1 and
  network.proxy.{http_port,ssl_port} = the port of a recording trap,
  network.proxy.share_proxy_settings = false, network.proxy.no_proxies_on = "",
  network.proxy.failover_direct = false (never fall back to a direct connection).
  Loopback itself is never proxied
  (network.proxy.allow_hijacking_localhost = false), so the page and push servers are
  reached directly while every other HTTP(S)/WebSocket request lands in the trap and is
  listed in `Firefox.stray_requests` (a test can assert it is empty). Firefox is also run
  with MOZ_DISABLE_NONLOCAL_CONNECTIONS=1, which makes it abort on a direct connect to a
  non-local address.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from marionette_driver.marionette import Marionette

PrefValue = bool | int | str
T = TypeVar("T")

FIREFOX_BINARY_ENV = "NEWSFLASH_FIREFOX"
KEEP_PROFILE_ENV = "NEWSFLASH_KEEP_FIREFOX_PROFILE"
ALERT_WINDOW_TYPE = "alert:alert"


# Browsers still running when the interpreter exits (a test run killed mid-way through a
# context manager's body) are torn down here, so no headless Firefox outlives pytest.
_LIVE: weakref.WeakSet[Firefox] = weakref.WeakSet()


def _close_leftovers() -> None:
    for firefox in list(_LIVE):
        with contextlib.suppress(Exception):
            firefox.close()


atexit.register(_close_leftovers)


class FirefoxError(RuntimeError):
    """Firefox could not be started or driven; the message carries the log tail."""


def find_firefox() -> str | None:
    """Path of the firefox-esr binary ($NEWSFLASH_FIREFOX overrides), or None."""
    override = os.environ.get(FIREFOX_BINARY_ENV)
    if override:
        return override if Path(override).is_file() else shutil.which(override)
    return shutil.which("firefox-esr")


def _import_marionette() -> type[Marionette]:
    # mozinfo (imported by marionette_driver) calls the deprecated
    # distro.linux_distribution() and mozrunner imports telnetlib; with pytest's
    # filterwarnings=error those DeprecationWarnings would fail the import.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        from marionette_driver.marionette import Marionette

    return cast("type[Marionette]", Marionette)  # the package ships no type hints


# ---- prefs --------------------------------------------------------------------------------


def push_prefs(push_server_ws_url: str) -> dict[str, PrefValue]:
    """Prefs that point Firefox's push client at our server and let notifications show."""
    return {
        "dom.push.enabled": True,
        "dom.push.connection.enabled": True,
        "dom.push.serverURL": push_server_ws_url,
        "dom.push.testing.allowInsecureServerURL": True,
        "dom.push.userAgentID": "",
        "dom.push.retryBaseInterval": 1000,
        "dom.push.loglevel": "debug",
        "dom.serviceWorkers.enabled": True,
        "dom.serviceWorkers.testing.enabled": True,
        "dom.serviceWorkers.disable_open_click_delay": 10000,
        "permissions.default.desktop-notification": 1,
        "alerts.useSystemBackend": False,
        "alerts.showFavicons": False,
        "ui.prefersReducedMotion": 1,
    }


def quiet_prefs() -> dict[str, PrefValue]:
    """Prefs that skip first-run UI, prompts and crash recovery."""
    return {
        "browser.shell.checkDefaultBrowser": False,
        "browser.startup.homepage_override.mstone": "ignore",
        "browser.startup.page": 0,
        "browser.startup.homepage": "about:blank",
        "startup.homepage_welcome_url": "about:blank",
        "startup.homepage_welcome_url.additional": "",
        "browser.aboutwelcome.enabled": False,
        "trailhead.firstrun.didSeeAboutWelcome": True,
        "browser.newtabpage.enabled": False,
        "browser.newtab.preload": False,
        "browser.sessionstore.resume_from_crash": False,
        "toolkit.startup.max_resumed_crashes": -1,
        "browser.tabs.warnOnClose": False,
        "browser.warnOnQuit": False,
        "browser.uitour.enabled": False,
        "termsofuse.bypassNotification": True,
        "datareporting.policy.dataSubmissionPolicyBypassNotification": True,
        "browser.dom.window.dump.enabled": True,
        "devtools.console.stdout.chrome": True,
        "devtools.console.stdout.content": True,
    }


def offline_prefs(trap_port: int) -> dict[str, PrefValue]:
    """Prefs that stop every phone-home service and fence the rest onto loopback."""
    prefs: dict[str, PrefValue] = {
        # Telemetry and Glean.
        "toolkit.telemetry.enabled": False,
        "toolkit.telemetry.unified": False,
        "toolkit.telemetry.archive.enabled": False,
        "toolkit.telemetry.newProfilePing.enabled": False,
        "toolkit.telemetry.shutdownPingSender.enabled": False,
        "toolkit.telemetry.updatePing.enabled": False,
        "toolkit.telemetry.bhrPing.enabled": False,
        "toolkit.telemetry.firstShutdownPing.enabled": False,
        "toolkit.telemetry.server": "",
        "datareporting.healthreport.uploadEnabled": False,
        "datareporting.policy.dataSubmissionEnabled": False,
        "datareporting.usage.uploadEnabled": False,
        "telemetry.fog.test.localhost_port": -1,
        "browser.ping-centre.telemetry": False,
        # Studies and messaging.
        "app.normandy.enabled": False,
        "app.normandy.api_url": "",
        "app.shield.optoutstudies.enabled": False,
        "messaging-system.rsexperimentloader.enabled": False,
        "browser.discovery.enabled": False,
        # Updates of Firefox, add-ons, search engines and media plugins.
        "app.update.disabledForTesting": True,
        "app.update.auto": False,
        "extensions.update.enabled": False,
        "extensions.systemAddon.update.enabled": False,
        "extensions.systemAddon.update.url": "",
        "extensions.getAddons.cache.enabled": False,
        "extensions.getAddons.discovery.api_url": "",
        "extensions.blocklist.enabled": False,
        "extensions.quarantinedDomains.enabled": False,
        "browser.search.update": False,
        "media.gmp-manager.updateEnabled": False,
        "media.gmp-manager.url": "",
        "media.gmp-gmpopenh264.enabled": False,
        "media.gmp-widevinecdm.enabled": False,
        # Remote settings (blocklists, CRLite, search config, ...).
        "services.settings.server": "data:,#remote-settings-dummy/v1",
        "security.remote_settings.crlite_filters.enabled": False,
        "security.remote_settings.intermediates.enabled": False,
        # Safe browsing and tracking-protection lists.
        "browser.safebrowsing.malware.enabled": False,
        "browser.safebrowsing.phishing.enabled": False,
        "browser.safebrowsing.downloads.enabled": False,
        "browser.safebrowsing.downloads.remote.enabled": False,
        "browser.safebrowsing.blockedURIs.enabled": False,
        "browser.safebrowsing.passwords.enabled": False,
        "privacy.trackingprotection.enabled": False,
        # Network probes and speculative connections.
        "network.captive-portal-service.enabled": False,
        "captivedetect.canonicalURL": "",
        "network.connectivity-service.enabled": False,
        "network.manage-offline-status": False,
        "network.trr.mode": 5,
        "network.dns.disablePrefetch": True,
        "network.prefetch-next": False,
        "network.predictor.enabled": False,
        "network.http.speculative-parallel-limit": 0,
        "browser.urlbar.speculativeConnect.enabled": False,
        "network.sntp.pools": "",
        # Location and search.
        "geo.provider.network.url": "",
        "browser.region.network.url": "",
        "browser.region.update.enabled": False,
        "browser.search.suggest.enabled": False,
        "browser.urlbar.suggest.searches": False,
        "browser.urlbar.quicksuggest.enabled": False,
        "browser.urlbar.merino.endpointURL": "",
        # New tab, Pocket, accounts and other network-backed features.
        "browser.topsites.contile.enabled": False,
        "browser.newtabpage.activity-stream.feeds.system.topstories": False,
        "browser.newtabpage.activity-stream.feeds.section.topstories": False,
        "browser.newtabpage.activity-stream.showSponsored": False,
        "browser.newtabpage.activity-stream.showSponsoredTopSites": False,
        "browser.newtabpage.activity-stream.telemetry": False,
        "browser.newtabpage.activity-stream.feeds.telemetry": False,
        "extensions.pocket.enabled": False,
        "identity.fxaccounts.enabled": False,
        "browser.translations.enable": False,
        "browser.ml.enable": False,
        "browser.backup.enabled": False,
        "browser.backup.scheduled.enabled": False,
        "security.certerrors.mitm.priming.enabled": False,
        "security.OCSP.enabled": 0,
        "browser.crashReports.unsubmittedCheck.enabled": False,
        # Fences: names resolve to loopback; HTTP(S) to anything but loopback hits the trap.
        "network.dns.native-is-localhost": True,
        "network.dns.native_https_query": False,
        "network.proxy.type": 1,
        "network.proxy.http": "127.0.0.1",
        "network.proxy.http_port": trap_port,
        "network.proxy.ssl": "127.0.0.1",
        "network.proxy.ssl_port": trap_port,
        "network.proxy.share_proxy_settings": False,
        "network.proxy.no_proxies_on": "",
        "network.proxy.allow_hijacking_localhost": False,
        "network.proxy.failover_direct": False,
    }
    for provider in ("mozilla", "google", "google4", "google5"):
        prefs[f"browser.safebrowsing.provider.{provider}.updateURL"] = ""
        prefs[f"browser.safebrowsing.provider.{provider}.gethashURL"] = ""
    return prefs


def build_prefs(
    push_server_ws_url: str,
    trap_port: int,
    extra: Mapping[str, PrefValue] | None = None,
) -> dict[str, PrefValue]:
    """Every pref the harness writes to user.js (see the module docstring for why)."""
    prefs: dict[str, PrefValue] = {"marionette.port": 0}
    prefs.update(quiet_prefs())
    prefs.update(offline_prefs(trap_port))
    prefs.update(push_prefs(push_server_ws_url))
    if extra:
        prefs.update(extra)
    return prefs


def write_user_js(profile_dir: Path, prefs: Mapping[str, PrefValue]) -> Path:
    lines = [
        f"user_pref({json.dumps(name)}, {json.dumps(value)});" for name, value in prefs.items()
    ]
    path = profile_dir / "user.js"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---- the trap for stray traffic -----------------------------------------------------------


class _TrapHandler(socketserver.BaseRequestHandler):
    server: _TrapServer

    def handle(self) -> None:
        self.request.settimeout(2.0)
        data = b""
        with contextlib.suppress(OSError):
            while b"\r\n" not in data and len(data) < 8192:
                chunk = self.request.recv(4096)
                if not chunk:
                    break
                data += chunk
        request_line = data.split(b"\r\n", 1)[0].decode("latin-1", "replace").strip()
        # "CONNECT host:443 HTTP/1.1" or "GET http://host/path HTTP/1.1": keep method+target.
        target = " ".join(request_line.split(" ")[:2]) if request_line else "<no request line>"
        self.server.record(target)
        with contextlib.suppress(OSError):
            self.request.sendall(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )


class _TrapServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _TrapHandler)
        self.requests: list[str] = []
        self._lock = threading.Lock()

    def record(self, target: str) -> None:
        with self._lock:
            self.requests.append(target)


class StrayTrafficTrap:
    """A proxy on loopback that answers 403 to everything and remembers what was asked."""

    def __init__(self) -> None:
        self._server = _TrapServer()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def requests(self) -> list[str]:
        with self._server._lock:
            return list(self._server.requests)

    def start(self) -> StrayTrafficTrap:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


# ---- the browser --------------------------------------------------------------------------


def _group_has_live_members(pgid: int) -> bool:
    """Whether a process of group `pgid` is still running (zombies don't count).

    Killed content processes are re-parented to PID 1 and linger as zombies until it reaps
    them, which can take seconds in a container; they hold nothing, so don't wait for them.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state ppid pgrp ...
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


@dataclass(frozen=True)
class ShownNotification:
    """A notification on screen: one XUL alert window."""

    title: str
    body: str
    source: str
    clickable: bool


_LIST_ALERTS_JS = """
const out = [];
for (const win of Services.wm.getEnumerator(arguments[0])) {
  if (win.closed || win.document.readyState !== "complete" || !win.gIsActive) {
    continue;
  }
  const doc = win.document;
  const text = id => (doc.getElementById(id) || {}).textContent || "";
  const title = doc.getElementById("alertTitleLabel");
  out.push({
    title: (title && (title.getAttribute("value") || title.textContent)) || "",
    body: text("alertTextLabel"),
    source: (doc.getElementById("alertSourceLabel") || {}).value || "",
    clickable: !!win.gAlertTextClickable,
  });
}
return out;
"""

_CLICK_ALERT_JS = """
const [windowType, wantedTitle] = arguments;
for (const win of Services.wm.getEnumerator(windowType)) {
  if (win.closed || !win.gIsActive) {
    continue;
  }
  const label = win.document.getElementById("alertTitleLabel");
  const title = label && (label.getAttribute("value") || label.textContent);
  if (title !== wantedTitle) {
    continue;
  }
  // A real mouse press and release on the title, in the alert window's own coordinates:
  // Gecko turns it into a click, and alert.js's window click handler runs onAlertClick().
  const rect = label.getBoundingClientRect();
  const x = rect.left + Math.min(rect.width / 2, 20);
  const y = rect.top + rect.height / 2;
  if (typeof win.synthesizeMouseEvent === "function") {
    // Gecko 14x+: chrome-only Window.synthesizeMouseEvent (what EventUtils.js uses).
    const source = win.MouseEvent.MOZ_SOURCE_MOUSE;
    for (const [type, buttons] of [["mousedown", 1], ["mouseup", 0]]) {
      win.synthesizeMouseEvent(type, x, y,
        {button: 0, buttons, clickCount: 1, modifiers: 0, inputSource: source},
        {isDOMEventSynthesized: true});
    }
  } else {
    // Older ESRs: nsIDOMWindowUtils.sendMouseEvent.
    win.windowUtils.sendMouseEvent("mousedown", x, y, 0, 1, 0);
    win.windowUtils.sendMouseEvent("mouseup", x, y, 0, 1, 0);
  }
  return true;
}
return false;
"""

_TAB_URLS_JS = """
const urls = [];
for (const win of Services.wm.getEnumerator("navigator:browser")) {
  for (const tab of win.gBrowser.tabs) {
    const browser = tab.linkedBrowser;
    urls.push({url: browser.currentURI.spec, loading: browser.webProgress
      ? browser.webProgress.isLoadingDocument : false});
  }
}
return urls;
"""


class Firefox:
    """One headless firefox-esr process, its throw-away profile and a Marionette session."""

    def __init__(
        self,
        push_server_ws_url: str,
        *,
        binary: str | None = None,
        extra_prefs: Mapping[str, PrefValue] | None = None,
        startup_timeout_s: float = 45.0,
        command_timeout_s: float = 20.0,
    ) -> None:
        self.push_server_ws_url = push_server_ws_url
        self.binary = binary or find_firefox()
        self.extra_prefs = dict(extra_prefs or {})
        self.startup_timeout_s = startup_timeout_s
        self.command_timeout_s = command_timeout_s
        self._workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._trap: StrayTrafficTrap | None = None
        self._marionette: Marionette | None = None

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> Firefox:
        if self.binary is None:
            raise FirefoxError("firefox-esr is not installed (apt-get install firefox-esr)")
        try:
            self._start()
        except BaseException:
            tail = self.log_tail()
            self.close()
            if tail:
                sys.stderr.write(f"---- firefox log tail ----\n{tail}\n")
            raise
        return self

    def _start(self) -> None:
        assert self.binary is not None
        self._workdir = Path(tempfile.mkdtemp(prefix="newsflash-firefox-"))
        profile = self._workdir / "profile"
        profile.mkdir()
        self._trap = StrayTrafficTrap().start()
        prefs = build_prefs(self.push_server_ws_url, self._trap.port, self.extra_prefs)
        write_user_js(profile, prefs)

        env = dict(os.environ)
        env.update(
            {
                "MOZ_HEADLESS": "1",
                "MOZ_CRASHREPORTER_DISABLE": "1",
                "MOZ_DISABLE_AUTO_SAFE_MODE": "1",
                # Abort instead of connecting anywhere but loopback (see module docstring).
                "MOZ_DISABLE_NONLOCAL_CONNECTIONS": "1",
            }
        )
        self._log_file = (self._workdir / "firefox.log").open("wb")
        cmd = [
            self.binary,
            "--headless",
            "--marionette",
            # Firefox 138+ only lets Marionette run chrome-context scripts with this flag.
            "--remote-allow-system-access",
            "--no-remote",
            "--new-instance",
            "--profile",
            str(profile),
            "about:blank",
        ]
        _LIVE.add(self)
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            # Own process group, so close() can kill content processes too.
            start_new_session=True,
        )
        port = self._wait_for_marionette_port(profile / "MarionetteActivePort")

        marionette_cls = _import_marionette()
        # socket_timeout bounds every single command, so no call can hang the test.
        client = marionette_cls(
            host="127.0.0.1",
            port=port,
            socket_timeout=self.command_timeout_s + 10,
            startup_timeout=int(self.startup_timeout_s),
        )
        self._marionette = client  # before start_session, so close() always disconnects it
        client.start_session(timeout=self.startup_timeout_s)
        client.timeout.script = self.command_timeout_s
        client.timeout.page_load = self.command_timeout_s

    def _wait_for_marionette_port(self, port_file: Path) -> int:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise FirefoxError(
                    f"firefox exited with {self._proc.returncode} during startup\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError, ValueError):
                port = int(port_file.read_text().strip())
                if port > 0:
                    return port
            time.sleep(0.1)
        raise FirefoxError(
            f"Marionette did not start within {self.startup_timeout_s:.0f}s\n{self.log_tail()}"
        )

    def close(self) -> None:
        """End the session, kill Firefox's process group and delete the profile."""
        if self._marionette is not None:
            client, self._marionette = self._marionette, None
            with contextlib.suppress(Exception):
                # A hung Firefox must not stall teardown for the full command timeout.
                client.client.socket_timeout = 5
            with contextlib.suppress(Exception):
                client.cleanup()  # delete_session + close the socket (no ResourceWarning)
            with contextlib.suppress(Exception):
                if client.client is not None:
                    client.client.close()
        if self._proc is not None:
            self._kill_process_group(self._proc)
            self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._trap is not None:
            self._trap.stop()
            self._trap = None
        if self._workdir is not None:
            if os.environ.get(KEEP_PROFILE_ENV):
                sys.stderr.write(f"kept Firefox profile and log in {self._workdir}\n")
            else:
                shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        _LIVE.discard(self)

    @staticmethod
    def _kill_process_group(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
        # The group id is the pid we started (start_new_session): never a broad kill.
        pgid = proc.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
        # Whether or not the parent went quietly, no content/GPU/utility process may linger.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
        # SIGKILL is asynchronous: wait (bounded) until no process of the group still runs.
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _group_has_live_members(pgid):
            time.sleep(0.05)

    def __enter__(self) -> Firefox:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            tail = self.log_tail()
            if tail:
                sys.stderr.write(f"---- firefox log tail ----\n{tail}\n")
        self.close()

    # ---- state ---------------------------------------------------------------------------

    @property
    def marionette(self) -> Marionette:
        if self._marionette is None:
            raise FirefoxError("Firefox is not running")
        return self._marionette

    @property
    def profile_dir(self) -> Path:
        if self._workdir is None:
            raise FirefoxError("Firefox is not running")
        return self._workdir / "profile"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def stray_requests(self) -> list[str]:
        """Requests Firefox tried to send off the machine (should stay empty)."""
        return self._trap.requests if self._trap is not None else []

    def log_tail(self, lines: int = 80) -> str:
        if self._workdir is None:
            return ""
        path = self._workdir / "firefox.log"
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # ---- driving -------------------------------------------------------------------------

    def navigate(self, url: str) -> None:
        with self.marionette.using_context("content"):
            self.marionette.navigate(url)

    def execute(self, script: str, *args: Any, timeout_s: float | None = None) -> Any:
        """Run `script` as a function body in the page itself (sandbox=None: page globals).

        A returned promise is awaited (WebDriver semantics); bodies are not async functions,
        so chain with .then() rather than using await.
        """
        return self._run_script("content", script, args, timeout_s, sandbox=None)

    def execute_chrome(self, script: str, *args: Any, timeout_s: float | None = None) -> Any:
        """Run `script` with chrome privileges in the browser window (Services, gBrowser)."""
        return self._run_script("chrome", script, args, timeout_s, sandbox="default")

    def _run_script(
        self,
        context: str,
        script: str,
        args: tuple[Any, ...],
        timeout_s: float | None,
        sandbox: str | None,
    ) -> Any:
        timeout = timeout_s or self.command_timeout_s
        client = self.marionette
        # The socket must outlive the script timeout, or a slow script reads as a dead
        # browser; and it must be bounded, so a dead browser can't hang the test.
        transport = client.client
        previous = transport.socket_timeout
        transport.socket_timeout = max(previous, timeout + 10)
        try:
            with client.using_context(context):
                return client.execute_script(
                    script, script_args=args, sandbox=sandbox, script_timeout=int(timeout * 1000)
                )
        finally:
            transport.socket_timeout = previous

    def click(self, css_selector: str) -> None:
        """A WebDriver element click (a real user gesture) on the page."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            from marionette_driver.by import By
        with self.marionette.using_context("content"):
            self.marionette.find_element(By.CSS_SELECTOR, css_selector).click()

    def wait_until(
        self, probe: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.2
    ) -> T:
        """Poll `probe` until it returns something other than None/False."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = probe()
            if value is not None and value is not False:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout_s:.1f}s waiting for {what}")
            time.sleep(interval_s)

    # ---- notifications and tabs ----------------------------------------------------------

    def notifications(self) -> list[ShownNotification]:
        """Notifications on screen now (XUL alert windows), oldest first."""
        rows = self.execute_chrome(_LIST_ALERTS_JS, ALERT_WINDOW_TYPE)
        return [ShownNotification(**row) for row in rows]

    def wait_for_notification(
        self, title: str | None = None, timeout_s: float = 15.0
    ) -> ShownNotification:
        def probe() -> ShownNotification | None:
            for shown in self.notifications():
                if title is None or shown.title == title:
                    return shown
            return None

        try:
            return self.wait_until(probe, timeout_s, f"notification {title!r}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; on screen: {self.notifications()!r}") from None

    def page_notifications(self, tag: str | None = None) -> list[dict[str, Any]]:
        """The current page's service-worker notifications (title, body, tag, data)."""
        return list(
            self.execute(
                """
                const [tag] = arguments;
                // Script bodies are not async functions: chain, and Marionette awaits.
                return navigator.serviceWorker.ready
                  .then(reg => reg.getNotifications(tag ? {tag} : undefined))
                  .then(list => list.map(n => ({title: n.title, body: n.body, tag: n.tag,
                                                data: n.data, lang: n.lang})));
                """,
                tag,
            )
        )

    def click_notification(self, title: str) -> None:
        """Click the alert window showing `title`, as a person would."""
        if not self.execute_chrome(_CLICK_ALERT_JS, ALERT_WINDOW_TYPE, title):
            raise FirefoxError(f"no notification titled {title!r} to click")

    def tab_urls(self) -> list[str]:
        return [row["url"] for row in self.execute_chrome(_TAB_URLS_JS)]

    def wait_for_tab(self, url: str, timeout_s: float = 15.0) -> str:
        """Wait until some tab has loaded exactly `url`; returns it."""

        def probe() -> str | None:
            for row in self.execute_chrome(_TAB_URLS_JS):
                if row["url"] == url and not row["loading"]:
                    return str(row["url"])
            return None

        try:
            return self.wait_until(probe, timeout_s, f"a tab at {url}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; tabs: {self.tab_urls()!r}") from None


@contextlib.contextmanager
def launch_firefox(
    push_server_ws_url: str,
    *,
    binary: str | None = None,
    extra_prefs: Mapping[str, PrefValue] | None = None,
    startup_timeout_s: float = 45.0,
    command_timeout_s: float = 20.0,
) -> Iterator[Firefox]:
    """Start Firefox for one test and always tear it down (process group, profile, trap)."""
    firefox = Firefox(
        push_server_ws_url,
        binary=binary,
        extra_prefs=extra_prefs,
        startup_timeout_s=startup_timeout_s,
        command_timeout_s=command_timeout_s,
    )
    with firefox:
        yield firefox
